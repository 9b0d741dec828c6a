"""Snakemake job: one shard of cams_coarse_dump. Thin adapter over fmwsss.pipeline.entrypoints."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))

from fmwsss.pipeline.entrypoints import cams_dump  # noqa: E402

cams_dump(snakemake, "cams_coarse_dump")
