#!/usr/bin/env bash
# The main job as far as it exists: the built-in synthetic data set → a teacher → a distilled
# student → COCO evaluation → ONNX export → `jetkit detect` and `jetkit bench` on the export; then
# the sample colour-blob detector through inspect/detect/bench. Calibration, flashing and the
# streaming daemon join when they land. DEMO_EPOCHS / DEMO_IMAGES shorten it (the test does).
set -euo pipefail
OUT=${1:-runs/demo}
PY=${PY:-.venv/bin/python}
JETKIT=${JETKIT:-.venv/bin/jetkit}
EPOCHS=${DEMO_EPOCHS:-6}
IMAGES=${DEMO_IMAGES:-200}
IMGSZ=${DEMO_IMGSZ:-192}

echo "== 1/8 synthetic data set -> $OUT/data"
DATA=$("$JETKIT" data synth "$OUT/data" --images "$IMAGES" --val $((IMAGES / 4)) --imgsz "$IMGSZ")
echo "== 2/8 teacher (size s, $EPOCHS epochs) -> $OUT/teacher"
"$JETKIT" train --data "$DATA" --model s --epochs "$EPOCHS" --imgsz "$IMGSZ" --out "$OUT/teacher" --exist-ok
echo "== 3/8 distilled student (size n) -> $OUT/student"
"$JETKIT" distill --data "$DATA" --teacher "$OUT/teacher/best.pt" --model n --epochs "$EPOCHS" \
    --imgsz "$IMGSZ" --out "$OUT/student" --exist-ok
echo "== 4/8 jetkit eval (COCO mAP of the student checkpoint)"
"$JETKIT" eval "$OUT/student/best.pt" --data "$DATA" --json > "$OUT/student-eval.json"
"$JETKIT" eval "$OUT/student/best.pt" --data "$DATA"
echo "== 5/8 jetkit export -> $OUT/student/onnx"
"$JETKIT" export "$OUT/student/best.pt" --out "$OUT/student/onnx" --dynamic-batch --max-batch 4
echo "== 6/8 jetkit detect + bench on the exported student"
"$JETKIT" detect "$OUT/student/onnx/model.onnx" "$OUT/data/images/val" --save "$OUT/student-annotated" > /dev/null
"$JETKIT" bench "$OUT/student/onnx/model.onnx" --duration 2 --json "$OUT/student-bench.json"
echo "== 7/8 sample blob detector -> $OUT/blob.onnx"
"$PY" -m edge.samples "$OUT"
"$JETKIT" inspect "$OUT/blob.onnx"
echo "== 8/8 jetkit detect + bench on the blob detector"
"$JETKIT" detect "$OUT/blob.onnx" "$OUT/images" --save "$OUT/annotated"
"$JETKIT" bench "$OUT/blob.onnx" --duration 2 --json "$OUT/bench.json"
echo "done: $OUT"
