"""Snakemake job: score the current entry of a CAM or seed stage against the ground truth (rule score)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))

from fmwsss.pipeline.entrypoints import score  # noqa: E402

score(snakemake)
