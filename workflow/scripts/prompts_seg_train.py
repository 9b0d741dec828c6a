"""Snakemake job: stage prompts_seg_train (not built yet: fails loudly, writes nothing). Thin adapter over fmwsss.pipeline.entrypoints."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))

from fmwsss.pipeline.entrypoints import not_built  # noqa: E402

not_built(snakemake)
