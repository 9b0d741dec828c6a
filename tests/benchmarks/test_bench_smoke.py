"""Every benchmark script runs in ``--smoke`` mode (tiny sizes, seconds), so an API change breaks the suite,
not the benchmark found broken months later.

The scripts are discovered (``benchmarks/bench_*.py``): a new benchmark without a ``--smoke`` flag fails here
(argparse exits 2). For the known ones, the printed table must hold its rows; timings are never asserted.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import run

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted((REPO / "benchmarks").glob("bench_*.py"))

#: Rows (regular expressions, one per line of output) each known benchmark must print.
EXPECTED_ROWS = {
    "bench_gradcam.py": [
        r"^model=tiny device=\w+ batch=2 positives/image=2 size=64$",
        r"^per-class backward: [\d.]+ ms +batched VJP: [\d.]+ ms +speed-up x[\d.]+$",
        r"^CAM bytes/image \(32x24 grid, 2 classes\): shard [\d.]+ kB vs reference npz [\d.]+ MB +-> x\d+ smaller$",
    ],
    "bench_sams.py": [
        r"^storage \(2 images, .*\):$",
        r"^  sam_masks shards +1 files",
        r"^smoke store: the synthetic inputs read back from the shards$",
        r"^synthetic masks \+ CAMs$",
        r"^\S+ +\d+x\d+ +20 +\d+ +[\d.]+ +[\d.]+ +[\d.]+x$",
        r"^total: loop \d+ ms, vectorised \d+ ms on cpu -> [\d.]+x \(identical seeds on all 2 images\)$",
    ],
    "bench_store.py": [
        r"^sam_masks +2 +6 +[\d.]+ MB +4 +4 ",
        r"^total: [\d.]+ MB on disk; [\d.]+ MB if reused images were copied -> ratio copies / reuse 1\.\d\dx$",
        r"^extrapolated to 82,783 images, shard_size 500 \(166 shards per sharded stage\)",
        r"^  sam_masks +168 files",
    ],
    "bench_index_images.py": [
        r"^VOC tree .*: 72 images \(48 ids \+ val\); best of 1 hashing passes, 1 cold builds$",
        r"^hash every image( +-?[\d.]+){3} +-?[\d.]+x( +-?[\d.]+){3} +-?[\d.]+x$",
        r"^cold index build( +-?[\d.]+){3} +-?[\d.]+x( +-?[\d.]+){3} +-?[\d.]+x$",
        r"^added per image: -?\d+ us wall, -?\d+ us cpu; headers opened: cold 72, warm refresh 0 \(",
    ],
    "bench_index_check.py": [
        r"^index .*/results/coco/index\.sqlite: [\d.]+ MB, 60 ids; best of 3, warm page cache$",
        r"^sha256 check on open \(check_record\) +[\d.]+$",
        r"^record written after each write +[\d.]+$",
        *(rf"^{row} +[\d.]+ +[\d.]+x$" for row in (
            r"open without the check \(job\)", r"  \+ one shard's rows \(500 ids\)",
            r"read_freshness \(main, every run\)", r"PRAGMA quick_check \(all tables\)", r"PRAGMA integrity_check")),
        r"^main process, every run: read_freshness [\d.]+ ms \+ check [\d.]+ ms -> [\d.]+x$",
    ],
    "bench_startup.py": [
        r"^job start-up of demo \(\d+ jobs with a record, ",
        r"^rule +jobs +python +torch +imports +index ",
        *(rf"^{rule} +1( +[\d.]+| +-)+ +[\d.]+x$" for rule in ("sam_masks", "cams_fine_dump", "seeds_fine",
                                                             "prompts_seg_train", "deeplab_eval")),
        r"^baseline: import torch [\d.]+ s \(median of 1 fresh interpreters",
    ],
    "bench_report.py": [
        r"ratio cold / warm CPU",
        r"VOC train_aug \(10582 images\)",
    ],
    "bench_mask2former.py": [
        r"^tiny_mask2former on cpu \(cpu\): [\d,]+ parameters; batch 2 x 64\^2, 1 timed steps per precision$",
        r"^fp32 +[\d.]+ it/s +peak RSS \(process\) [\d.]+ GiB +loss [\d.]+$",
        r"^bf16 autocast +[\d.]+ it/s +peak RSS \(process\) [\d.]+ GiB +loss [\d.]+ +x[\d.]+ vs fp32$",
    ],
    "bench_sam_generator.py": [
        r"^model tiny on cpu, 1 images, 4x4 points, 0 crop layer\(s\), autocast none$",
        r"^stock SamAutomaticMaskGenerator +[\d.]+ images/s",
        r"^fmwsss fast +[\d.]+ images/s",
        r"^ratio fast / stock: [\d.]+x$",
        r"^agreement: 1/1 same count, 1/1 all masks matched",
        r"^fmwsss reference +[\d.]+ images/s",
        r"^ratio fast / reference: [\d.]+x$",
        r"^storage: [\d.]+ kB per image in the SAM shard",
    ],
}


def run_smoke(command: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return run(command, timeout, cwd=REPO, env=env)


def test_benchmarks_are_discovered():
    assert {p.name for p in SCRIPTS} >= set(EXPECTED_ROWS), "a known benchmark script disappeared"


#: Benchmarks that measure a finished run: they get the suite's shared session run (read only).
NEEDS_RUN = {"bench_report.py", "bench_startup.py"}
#: Benchmarks whose --smoke run a dedicated test already makes (with stronger checks): not run twice.
SMOKED_ELSEWHERE = {"bench_planning.py": REPO / "tests/benchmarks/test_bench_planning.py"}


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_benchmark_smoke(script: Path, voc_sample, request):
    if script.name in SMOKED_ELSEWHERE:
        test = SMOKED_ELSEWHERE[script.name].read_text()
        assert script.name in test and '"--smoke"' in test, f"{script.name}: its dedicated smoke test is gone"
        return
    extra = ["--workdir", str(request.getfixturevalue("demo_run").path)] if script.name in NEEDS_RUN else []
    result = run_smoke([sys.executable, str(script), "--smoke", *extra])
    assert result.returncode == 0, f"{script.name} --smoke exited {result.returncode}:\n{result.stderr[-3000:]}"
    lines = result.stdout.splitlines()
    assert lines, f"{script.name} --smoke printed nothing"
    for row in EXPECTED_ROWS.get(script.name, []):
        assert any(re.search(row, line) for line in lines), f"{script.name}: no row /{row}/ in\n{result.stdout}"


GPU_SUITE_ROWS = [
    r"^sam stock fp32 +[\d.]+ images/s +[\d.]+ masks/image$",
    r"^sam fast fp32 +[\d.]+ images/s +[\d.]+ masks/image +x[\d.]+ vs stock +peak ",
    r"^sam fast bf16 autocast +[\d.]+ images/s +[\d.]+ masks/image +x[\d.]+ vs stock",
    r"^gradcam batched +[\d.]+ images/s +x[\d.]+ vs one backward per class",
    r"^deeplab train +[\d.]+ it/s",
    r"^mask2former fp32 +[\d.]+ it/s +\(tiny_mask2former, [\d,]+ parameters, batch 2, 64\^2\)",
    r"^mask2former bf16 autocast +[\d.]+ it/s +x[\d.]+ vs fp32",
    r"^multi-gpu slots +\S",
    r"^sam load stock fp32 +[\d.]+ images/s +masks per image \[\d+\]$",
    r"^sam load fast fp32 +[\d.]+ images/s +masks per image \[\d+\] +x[\d.]+ vs stock +1/1 images with every mask "
    r"matched",
    r"^sam load fast method +[\d.]+ images/s +masks per image \[\d+\] +\(level offsets",
    r"^coarse seeds: 24/24 match$",
    r"^fine seeds: 24/24 match$",
    r"^== make rehearsal \(demo\): random-weight TEST models",
    r"^voc: 10,582 images, ",
    r"^coco: 82,081 images, ",
    r"^WARNING: demo ran with test models",
    *(rf"^{stage} \*? *[\d.]+ s/(image|iteration) " for stage in (
        "sam_masks", "prompts_cls_train", "cams_coarse_dump", "seeds_coarse", "prompts_seg_train", "cams_fine_dump",
        "seeds_fine", "deeplab_train", "deeplab_eval")),
]
#: Every part of the suite, in its order; the smoke checks the shared demo run instead of running one.
GPU_SUITE_PARTS = ["sam", "gradcam", "deeplab", "mask2former", "multi-gpu slots", "sam load", "workflow data", "demo run",
                   "seed check", "rehearsal", "cost voc", "cost coco"]


def run_gpu_suite(tmp_path: Path, smoke: bool, demo_results: Path | None = None) -> subprocess.CompletedProcess:
    """The suite as the GPU machine runs it, with this interpreter; no wheel folder, nothing installed; its
    working folder (the one holding ``demo_results`` when given) and state under ``tmp_path``."""
    env = {**os.environ, "PYTHON": sys.executable, "SMOKE": "1" if smoke else "0",
           "GPU_WHEELS": str(tmp_path / "no-wheels"), "GPU_DEPS_DIR": str(tmp_path / "deps"),
           "GPU_SUITE_STATE": str(tmp_path / "state"),
           "GPU_SUITE_WORKDIR": str(demo_results.parents[1] if demo_results else tmp_path / "work"),
           "GPU_SUITE_CORES": "2"}
    if demo_results:
        env["DEMO_RESULTS"] = str(demo_results)
    return run([str(REPO / "benchmarks" / "gpu_suite.sh")], 900, cwd=tmp_path, env=env)


def summary_lines(stdout: str) -> dict[str, str]:
    """Part name -> status column of the closing summary."""
    lines = stdout[stdout.rindex("== summary"):].splitlines()[1:-1]
    return {line[2:22].strip(): line[23:35].strip() for line in lines}


@pytest.mark.slow
def test_gpu_suite_smoke_runs_every_part_then_a_rerun_reprints_them(tmp_path, demo_run):
    work = demo_run.copy(tmp_path / "work").path  # the finished demo: make rehearsal SMOKE=1 rehearses it
    result = run_gpu_suite(tmp_path, smoke=True, demo_results=work / "results" / "demo")
    assert result.returncode == 0, f"gpu_suite.sh --smoke exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    lines = result.stdout.splitlines()
    for row in GPU_SUITE_ROWS:
        assert any(re.search(row, line) for line in lines), f"no row /{row}/ in\n{result.stdout}"
    expected = {part: "ok" for part in GPU_SUITE_PARTS} | {"demo run": "not run"}
    assert summary_lines(result.stdout) == expected, result.stdout
    assert lines[-1] == "== done: 11/12 parts ok, 0 failed or timed out", result.stdout

    again = run_gpu_suite(tmp_path, smoke=True, demo_results=work / "results" / "demo")
    assert again.returncode == 0, f"the rerun exited {again.returncode}:\n{again.stdout}\n{again.stderr}"
    assert summary_lines(again.stdout) == {part: "ok (saved)" if status == "ok" else status
                                           for part, status in expected.items()}, again.stdout
    for part in set(GPU_SUITE_PARTS) - {"demo run"}:
        assert f"== {part} (saved from an earlier run)" in again.stdout, again.stdout
    saved = again.stdout.splitlines()
    for row in GPU_SUITE_ROWS:
        assert any(re.search(row, line) for line in saved), f"the rerun did not reprint /{row}/:\n{again.stdout}"


def test_gpu_suite_without_cuda_says_not_run(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the full suite would run")
    result = run_gpu_suite(tmp_path, smoke=False)
    assert result.returncode == 0, result.stderr
    skipped = [line[3:].split(": not run")[0] for line in result.stdout.splitlines()
               if line.endswith(": not run: no CUDA device")]
    assert skipped == GPU_SUITE_PARTS, result.stdout
    assert not (tmp_path / "state").exists(), "a part that did not run left saved output"
