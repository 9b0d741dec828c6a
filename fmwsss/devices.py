"""Where torch work runs: one rule for the pipeline, the CLI and the library."""
from __future__ import annotations

import torch


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` or ``"auto"`` = cuda when present (on SLURM: the GPU the job was granted), else cpu;
    anything else is taken as given."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
