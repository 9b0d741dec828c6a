"""Snakemake job: one shard of SAM masks. Thin adapter over fmwsss.pipeline.entrypoints."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))

from fmwsss.pipeline.entrypoints import sam_masks  # noqa: E402

sam_masks(snakemake)
