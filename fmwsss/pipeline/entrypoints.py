"""What each Snakemake job runs. Scripts in workflow/scripts/ are one call into here.

Each function takes the job's ``snakemake`` object (input, output, params, threads, log, wildcards), sets up
logging and threads, and calls one library function. Params hold the canonical spec and the runtime knobs,
so a job never re-reads config.yaml.
"""
from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from fmwsss.pipeline.stages import StageNotBuiltError
from fmwsss.pipeline.store import clean_stale_temps, make_alias, write_spec


def pick_device(requested: str) -> str:
    """``auto`` = cuda when present (the GPU SLURM granted), else cpu."""
    if requested != "auto":
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@contextlib.contextmanager
def job_log(path: str | None) -> Iterator[Callable[[str], None]]:
    """Send stderr to the rule's log file (fresh per attempt) and yield a line logger."""
    if path is None:
        yield lambda msg: print(msg, file=sys.stderr, flush=True)
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", buffering=1) as fh:
        old = sys.stderr
        sys.stderr = fh
        try:
            yield lambda msg: print(f"{time.strftime('%H:%M:%S')} {msg}", file=fh, flush=True)
        except BaseException:
            import traceback

            traceback.print_exc(file=fh)
            raise
        finally:
            sys.stderr = old


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, int(threads)))


def _log_path(smk: Any) -> str | None:
    return smk.log[0] if len(smk.log) else None


def _runtime(smk: Any) -> dict:
    """The unhashed runtime knobs, read from the job's config (never params: they would trigger reruns)."""
    from fmwsss.pipeline.config import Config

    return Config(smk.config).runtime


def sam_masks(smk: Any) -> None:
    """One shard of SAM masks: resumable per image in the stage's .partial directory."""
    from fmwsss.models.weights import get_weight
    from fmwsss.sam.run import run_sam_shard

    with job_log(_log_path(smk)) as log:
        _set_threads(smk.threads)
        p = smk.params
        runtime = _runtime(smk)
        final = Path(smk.output.shard)
        partial_dir = Path(p.partial)
        partial_dir.mkdir(parents=True, exist_ok=True)
        clean_stale_temps(final.parent)
        weight = get_weight(p.weights)
        log(f"sam_masks: shard {final.stem} of {p.dataset}, {len(p.images)} images, weights {p.weights}")
        run_sam_shard(
            items=[(i, Path(path)) for i, path in p.images],
            model_path=Path(smk.input.weights),
            arch=weight.arch,
            settings=p.spec["settings"]["sam"],
            partial_path=partial_dir / final.name,
            final_path=final,
            device=pick_device(runtime["device"]),
            points_per_batch=runtime["sam_points_per_batch"],
            rsw_chunk=runtime["rsw_chunk"],
            log=log,
        )


def finalize_job(shards: list[str], spec_path: str, spec: dict, wildcards: Any, log_path: str) -> None:
    """Check every shard of a sharded stage is complete, then write spec.json (marks the entry done)."""
    from fmwsss.io.shards import require_complete

    with job_log(log_path) as log:
        for shard in shards:
            require_complete(shard)
        write_spec(Path(spec_path).parent, wildcards.key, spec, wildcards.dataset)
        log(f"{spec['stage']}: {len(shards)} shards complete, wrote {spec_path}")


def alias_job(target: str, link: str, log_path: str) -> None:
    """Re-point results/{dataset}/{alias} at the current store entry."""
    with job_log(log_path) as log:
        make_alias(target, link)
        log(f"{link} -> {target}")


def fetch_weights_job(name: str, dest: str, log_path: str) -> None:
    """Download one registered weight file, verified by size and sha256, written atomically."""
    from fmwsss.models.download import fetch_weight

    with job_log(log_path) as log:
        path = fetch_weight(name, dest_dir=Path(dest).parent)
        log(f"weights {name}: {path} verified")


def make_tiny_job(clip_path: str, sam_path: str, seed: int, log_path: str) -> None:
    """Create the tiny random-weight test models (an explicit choice of `models: tiny_*`, never a fallback)."""
    from fmwsss.models.clip import create_tiny_clip
    from fmwsss.models.tiny_sam import create_tiny_sam

    with job_log(log_path) as log:
        create_tiny_clip(Path(clip_path), seed=seed)
        create_tiny_sam(Path(sam_path), seed=seed)
        log(f"tiny test models (random weights, for tests and the demo only): {clip_path}, {sam_path}")


def not_built(smk: Any) -> None:
    """Stages whose algorithm is not implemented yet fail loudly and write nothing."""
    with job_log(_log_path(smk)):
        raise StageNotBuiltError(smk.rule)
