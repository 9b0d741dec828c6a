"""Snakemake job: prompts_seg_train (prompt learning on frozen CLIP). Thin adapter over fmwsss.pipeline.entrypoints."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))

from fmwsss.pipeline.entrypoints import prompts_train  # noqa: E402

prompts_train(snakemake, "prompts_seg_train")
