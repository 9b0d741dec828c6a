#!/usr/bin/env bash
# One prepared GPU suite (at most ~5 minutes on one GPU): SAM fast vs stock on vit_h-shaped random weights
# (fp32 and bf16 autocast, with peak memory against the plan), batched Grad-CAM on ViT-B-16-quickgelu shapes,
# DeepLabV3-R101 training at 512^2 batch 16 with AMP, and the multi-GPU slot check. Each row is printed as it
# finishes. The rows themselves are benchmarks/gpu_suite.py.
#
#   benchmarks/gpu_suite.sh            # on the GPU machine
#   benchmarks/gpu_suite.sh --smoke    # or SMOKE=1: tiny sizes on any machine, CPU included (the tests run it)
#
# Offline machines: it installs nothing from the internet and never touches the torch that is there. The
# project's other dependencies come from the wheel folder benchmarks/wheels/ (fill it here with
# `make gpu-wheels`): every wheel whose distribution the python does not have is installed with
# `pip install --no-index --no-deps --target benchmarks/.gpu-deps` and put on PYTHONPATH; fmwsss itself is
# used from this checkout. Knobs: PYTHON (default python3), GPU_WHEELS, GPU_DEPS_DIR, GPU_SUITE_TIMEOUT
# (seconds, default 300).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=${GPU_WHEELS:-benchmarks/wheels}
DEPS=$(realpath -m "${GPU_DEPS_DIR:-benchmarks/.gpu-deps}")
FLAGS=()
if [[ "${1:-}" == "--smoke" || "${SMOKE:-0}" == "1" ]]; then
    FLAGS+=(--smoke)
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
    echo "== installing from $WHEELS into $DEPS (no index, no deps): ${missing[*]##*/}"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --disable-pip-version-check --upgrade \
        --target "$DEPS" "${missing[@]}"
fi

"$PY" - <<'EOF'
import importlib.util
import sys

absent = [m for m in ("torch", "torchvision", "numpy", "h5py", "cv2", "segment_anything", "open_clip")
          if importlib.util.find_spec(m) is None]
if absent:
    sys.exit(f"gpu_suite: {', '.join(absent)} not found: add the wheels to benchmarks/wheels (make gpu-wheels "
             f"GPU_WHEEL_EXTRA=...); torch and torchvision must be the machine's own")
EOF
exec timeout "${GPU_SUITE_TIMEOUT:-300}" "$PY" benchmarks/gpu_suite.py "${FLAGS[@]}"
