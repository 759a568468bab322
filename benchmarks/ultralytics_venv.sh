#!/usr/bin/env bash
# Makes (once) the virtual environment the benchmarks run Ultralytics in, never jetkit's own:
# Usage: benchmarks/ultralytics_venv.sh [VENV]   (default runs/ultralytics-venv); prints its python.
set -euo pipefail
VENV=${1:-runs/ultralytics-venv}
if [ ! -x "$VENV/bin/yolo" ]; then
    python3 -m venv "$VENV"
    # A torch and torchvision built together: PyPI's torchvision does not import beside the CPU
    # build of torch that scripts/setup.sh installs ("operator torchvision::nms does not exist"),
    # which Ultralytics' training needs.
    "$VENV/bin/pip" install -q "${ULTRALYTICS_TORCH_SPEC:-torch==2.14.1}" "torchvision==0.29.1" \
        ultralytics onnx onnxslim >&2
fi
echo "$VENV/bin/python"
