#!/usr/bin/env bash
# The best end-to-end path that exists so far: a small real detector, then `jetkit inspect`,
# `jetkit detect` (annotated images saved) and `jetkit bench`. The full chain (train → distil →
# quantize → flash → serve) replaces this when those parts land.
set -euo pipefail
OUT=${1:-runs/demo}
PY=${PY:-.venv/bin/python}
JETKIT=${JETKIT:-.venv/bin/jetkit}

echo "== 1/4 sample detector and scenes -> $OUT"
"$PY" -m edge.samples "$OUT"
echo "== 2/4 jetkit inspect"
"$JETKIT" inspect "$OUT/blob.onnx"
echo "== 3/4 jetkit detect (annotated images in $OUT/annotated)"
"$JETKIT" detect "$OUT/blob.onnx" "$OUT/images" --save "$OUT/annotated"
echo "== 4/4 jetkit bench"
"$JETKIT" bench "$OUT/blob.onnx" --duration 2 --json "$OUT/bench.json"
echo "done: $OUT"
