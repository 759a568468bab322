#!/usr/bin/env bash
# The README's quickstart with a model nobody here wrote: a real Ultralytics YOLOv8n export (from
# yolov8n.yaml, untrained: no weights are downloaded) and an MPEG-4 .mp4 as OpenCV writes it.
# Ultralytics lives in its own virtual environment (runs/ultralytics-venv), never in jetkit's.
# Usage: benchmarks/check_ultralytics_quickstart.sh [WORK_DIR]   (after `make setup`)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=${1:-runs/ultralytics-quickstart}
VENV=runs/ultralytics-venv
JETKIT=$ROOT/.venv/bin/jetkit

bash benchmarks/ultralytics_venv.sh "$VENV" >/dev/null
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK"
"$ROOT/$VENV/bin/python" -c "
from ultralytics import YOLO
YOLO('yolov8n.yaml').export(format='onnx', imgsz=320, simplify=False)" >export.log 2>&1
"$ROOT/.venv/bin/python" - <<'PY'
import os

import cv2

from edge.samples import draw_blob_scene

os.makedirs("calib", exist_ok=True)
for i in range(8):
    cv2.imwrite(f"calib/{i}.jpg", draw_blob_scene((640, 480), {"red": (50 + 10 * i, 60, 300, 260)}, seed=i))
cv2.imwrite("photo.jpg", draw_blob_scene((640, 480), {"red": (50, 60, 300, 260)}))
writer = cv2.VideoWriter("clip.mp4", cv2.VideoWriter.fourcc(*"mp4v"), 15, (640, 480))
for i in range(30):
    writer.write(draw_blob_scene((640, 480), {"red": (50 + 5 * i, 60, 300, 260)}, seed=i))
writer.release()
PY
step() { printf '\n$ jetkit %s\n' "$*"; "$JETKIT" "$@"; }
step inspect yolov8n.onnx
step detect yolov8n.onnx photo.jpg --json
step calibrate yolov8n.onnx --precision int8 --runtime cpu --data calib/ --images 8 --out int8
# TensorRT's documented rules on the export and on both INT8 formats: the TensorRT Q/DQ passes
# on every version, ONNX Runtime's CPU format (INT32 biases, UINT8 activations) is refused.
step check yolov8n.onnx
step calibrate yolov8n.onnx --precision int8 --data calib/ --images 8 --out int8-trt
step check int8-trt/yolov8n-int8.onnx
step check yolov8n.onnx --tensorrt 10.3 --dla --batch 1 --precision fp16 | tail -1
printf '\n$ jetkit check int8/yolov8n-int8.onnx   (must be refused)\n'
if "$JETKIT" check int8/yolov8n-int8.onnx >check-cpu-int8.txt; then
    echo "error: the CPU-format INT8 passed TensorRT's rules" >&2
    exit 1
fi
grep -c "qdq.int32-bias" check-cpu-int8.txt | sed 's/^/INT32 bias DequantizeLinear nodes: /'
tail -1 check-cpu-int8.txt
step bundle yolov8n.onnx -o det-1.0.0.jkb
step flash det-1.0.0.jkb --target "file://$PWD/device"
step run clip.mp4 --model yolov8n.onnx --sink jsonl://results.jsonl
test "$(wc -l <results.jsonl)" -eq 30
printf '\nok: every quickstart command ran on the Ultralytics export and the .mp4\n'
