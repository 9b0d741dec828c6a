"""Snakemake job: check and gather the shards of cams_coarse_dump, score them where ground truth exists, write spec.json."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))

from fmwsss.pipeline.entrypoints import cams_gather  # noqa: E402

cams_gather(snakemake, "cams_coarse_dump")
