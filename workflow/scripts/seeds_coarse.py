"""Snakemake job: one shard of seeds_coarse. Thin adapter over fmwsss.pipeline.entrypoints."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))

from fmwsss.pipeline.entrypoints import seeds_shard  # noqa: E402

seeds_shard(snakemake, "seeds_coarse")
