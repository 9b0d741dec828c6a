#!/usr/bin/env bash
# One prepared GPU suite (at most ~9 minutes on one H100): the measured rows (SAM fast vs stock on vit_h-shaped
# random weights, batched Grad-CAM, DeepLabV3-R101 training, Mask2Former Swin-L training (fp32, bf16), the multi-GPU slot check, SAM post-processing at a
# real load), then the workflow (the demo to its seeds and their check against the CPU run's digests, the
# rehearsal with real-size random-weight models, `fmwsss cost voc/coco --gpus 8`). The rows and parts are
# benchmarks/gpu_suite.py; each part has its own time limit, and a rerun (say after a time-out) reprints the
# parts that ended well instead of running them again (state: benchmarks/.gpu-suite/, git-ignored).
#
#   benchmarks/gpu_suite.sh            # on the GPU machine
#   benchmarks/gpu_suite.sh --smoke    # or SMOKE=1: tiny sizes on any machine, CPU included (the tests run it)
#
# Offline machines: it installs nothing from the internet and never touches the torch that is there. The
# project's other dependencies, Snakemake and its dependencies included, come from the wheel folder
# benchmarks/wheels/ (fill it here with `make gpu-wheels`): every wheel whose distribution the python does not
# have is installed with `pip install --no-index --no-deps --target benchmarks/.gpu-deps` and put on
# PYTHONPATH; fmwsss itself is used from this checkout, as `python -m fmwsss`, and Snakemake as
# `python -m snakemake`. Knobs: PYTHON (default python3), GPU_WHEELS, GPU_DEPS_DIR, GPU_SUITE_STATE,
# GPU_SUITE_TIMEOUT (seconds for all parts, default 540; 1200 with --smoke), GPU_SUITE_WORKDIR (the workflow's
# working folder, default this checkout), GPU_SUITE_CORES (default: all), DEMO_RESULTS (a finished
# results/demo to check instead of running the demo; the smoke test passes its shared run).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=${GPU_WHEELS:-benchmarks/wheels}
DEPS=$(realpath -m "${GPU_DEPS_DIR:-benchmarks/.gpu-deps}")
FLAGS=(--state "$(realpath -m "${GPU_SUITE_STATE:-benchmarks/.gpu-suite}")"
       --workdir "$(realpath -m "${GPU_SUITE_WORKDIR:-.}")" --cores "${GPU_SUITE_CORES:-$(nproc)}")
BUDGET=540
if [[ "${1:-}" == "--smoke" || "${SMOKE:-0}" == "1" ]]; then
    FLAGS+=(--smoke)
    BUDGET=1200
fi
BUDGET=${GPU_SUITE_TIMEOUT:-$BUDGET}
if [[ -n "${DEMO_RESULTS:-}" ]]; then
    FLAGS+=(--demo-results "$(realpath -m "$DEMO_RESULTS")")
fi

export PYTHONPATH="$PWD:$DEPS${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
# Wheels of distributions this python lacks (by distribution name, so nothing already installed is shadowed;
# what an earlier run put into $DEPS counts as installed).
mapfile -t missing < <("$PY" - "$WHEELS" <<'EOF'
import importlib.metadata as md
import pathlib
import re
import sys

folder = pathlib.Path(sys.argv[1])
for wheel in sorted(folder.glob("*.whl")) if folder.is_dir() else []:
    name = re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower()
    try:
        md.distribution(name)
    except md.PackageNotFoundError:
        print(wheel)
EOF
)
if ((${#missing[@]})); then
    echo "== installing from $WHEELS into $DEPS (no index, no deps): ${#missing[@]} wheels: ${missing[*]##*/}"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --disable-pip-version-check \
        --root-user-action=ignore --upgrade --target "$DEPS" "${missing[@]}"
fi

"$PY" - <<'EOF'
import importlib.util
import sys

absent = [m for m in ("torch", "torchvision", "numpy", "h5py", "cv2", "segment_anything", "open_clip", "yaml",
                      "jsonschema", "snakemake") if importlib.util.find_spec(m) is None]
if absent:
    sys.exit(f"gpu_suite: {', '.join(absent)} not found: add the wheels to benchmarks/wheels (make gpu-wheels "
             f"GPU_WHEEL_EXTRA=...); torch and torchvision must be the machine's own")
EOF
# The parts keep within the budget themselves; this outer limit only stops a part that ignores its own
# (a hung CUDA call), leaving time for nothing but the kill.
exec timeout "$((BUDGET + 60))" "$PY" benchmarks/gpu_suite.py --budget "$BUDGET" "${FLAGS[@]}"
