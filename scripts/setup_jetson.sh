#!/usr/bin/env bash
# The device environment of the README's "Jetson install", for `make test-jetson`: a virtual
# environment that sees JetPack's own TensorRT, CUDA bindings and OpenCV (built with GStreamer)
# through --system-site-packages, jetkit without its dependencies, and only what the device
# tests need besides (pytest, onnx, ONNX Runtime to compare against, PyYAML). No torch, no pip
# OpenCV (it would shadow JetPack's), no browser, no broker. Idempotent.
#
# Without TensorRT and CUDA there is nothing to test: it stops, exit 2, naming what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${JETSON_VENV:-.venv-jetson}
PYTHON=${PYTHON:-python3}

fail() {
    echo "jetkit: error: $*" >&2
    exit 2
}

# What JetPack provides and pip cannot: TensorRT's Python bindings with the runtime behind them,
# and a CUDA GPU with a Python binding to it (pycuda, or cuda-python).
missing=$("$PYTHON" - <<'PY'
import importlib.util

missing = []
try:
    import tensorrt
    if not hasattr(tensorrt, "Runtime"):
        missing.append("only type stubs of tensorrt are installed, not TensorRT")
except (ImportError, OSError) as exc:
    missing.append(f"TensorRT's Python bindings do not import ({exc})")
if not any(importlib.util.find_spec(m) for m in ("pycuda", "cuda")):
    missing.append("no CUDA Python binding (pycuda or cuda-python)")
print("; ".join(missing))
PY
)
if [ -n "$missing" ]; then
    fail "make test-jetson runs the TensorRT tests on a Jetson (JetPack 5.1+/6) or a machine with TensorRT and CUDA, and here: $missing. Install JetPack's (sudo apt-get install nvidia-jetpack), or run make test on a machine without them"
fi

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv --system-site-packages "$VENV"
fi
"$VENV/bin/python" -m pip install -q --no-deps -e .
"$VENV/bin/python" -m pip install -q pytest pytest-timeout pyyaml onnx onnxruntime

# The environment must use JetPack's TensorRT and OpenCV, not copies from pip.
"$VENV/bin/python" - <<'PY' || fail "the device environment $VENV is not the README's Jetson install (see above); remove it and run make test-jetson again"
import sys

import cv2
import tensorrt

problems = []
if "site-packages" in tensorrt.__file__ and sys.prefix in tensorrt.__file__:
    problems.append(f"tensorrt comes from pip ({tensorrt.__file__}), not JetPack")
if "GStreamer:                   YES" not in cv2.getBuildInformation():
    problems.append(f"OpenCV at {cv2.__file__} has no GStreamer (pip's opencv-python shadows JetPack's)")
for name in ("torch",):
    try:
        __import__(name)
    except ImportError:
        continue
    print(f"note: {name} is importable here; the device tests do not need it", file=sys.stderr)
if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
print(f"TensorRT {tensorrt.__version__}, OpenCV {cv2.__version__} with GStreamer")
PY
