"""Snakemake job: check and gather the shards of seeds_coarse into palette PNGs, write spec.json."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))

from fmwsss.pipeline.entrypoints import seeds_gather  # noqa: E402

seeds_gather(snakemake, "seeds_coarse")
