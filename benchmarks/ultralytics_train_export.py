"""Runs inside the Ultralytics virtual environment (runs/ultralytics-venv), never jetkit's: trains
an Ultralytics model from its yaml (no pretrained weights) on a YOLO data.yaml and exports it to
ONNX as a user would (`format=onnx`, opset 17, Ultralytics' own defaults otherwise).

Usage: python ultralytics_train_export.py MODEL_YAML DATA_YAML OUT_DIR EPOCHS IMGSZ [SEED [BATCH
[DEVICE]]]  (defaults 0, 16, cpu). Writes OUT_DIR/<model>.onnx and OUT_DIR/<model>.train.json
(training wall time, validation after each epoch included, as Ultralytics trains by default).
"""

import json
import shutil
import sys
import time
from pathlib import Path

from ultralytics import YOLO

model_yaml, data_yaml, out_dir, epochs, imgsz = sys.argv[1:6]
seed = int(sys.argv[6]) if len(sys.argv) > 6 else 0
batch = int(sys.argv[7]) if len(sys.argv) > 7 else 16
device = sys.argv[8] if len(sys.argv) > 8 else "cpu"
out = Path(out_dir).resolve()
out.mkdir(parents=True, exist_ok=True)
stem = Path(model_yaml).stem
model = YOLO(model_yaml)
start = time.perf_counter()
model.train(
    data=data_yaml,
    epochs=int(epochs),
    imgsz=int(imgsz),
    batch=batch,
    device=device,
    workers=2,
    seed=seed,
    deterministic=True,
    plots=False,
    project=str(out / "train"),
    name=stem,
    exist_ok=True,
    verbose=False,
)
train_s = time.perf_counter() - start
best = YOLO(str(out / "train" / stem / "weights" / "best.pt"))
exported = best.export(format="onnx", imgsz=int(imgsz), opset=17)
shutil.copy(exported, out / f"{stem}.onnx")
(out / f"{stem}.train.json").write_text(
    json.dumps(
        {
            "model": model_yaml,
            "epochs": int(epochs),
            "imgsz": int(imgsz),
            "seed": seed,
            "batch": batch,
            "device": device,
            "train_s": round(train_s, 1),
        },
        indent=2,
    )
)
print(out / f"{stem}.onnx")
