"""Snakemake job: deeplab_eval (stage II segmenter). Thin adapter over fmwsss.pipeline.entrypoints."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))

from fmwsss.pipeline.entrypoints import deeplab_eval  # noqa: E402

deeplab_eval(snakemake)
