"""jetkit's students against Ultralytics YOLOv8n: the same data, image size, epochs, batch and
seed, trained in the same run on this machine, both exported to ONNX and scored by the same
evaluator (`jetkit eval`'s, pycocotools).

Ultralytics runs in its own virtual environment (`benchmarks/ultralytics_venv.sh`; `ultralytics`
from the registry, never a jetkit dependency): `yolov8n.yaml`, no pretrained weights, its own
defaults otherwise, exported with `format=onnx` (`benchmarks/ultralytics_train_export.py`).
jetkit: `n` plain, a teacher (`--teacher`, default `s`), then `n` and `t` distilled from it.

Columns: parameters and GFLOPs are counted on each exported ONNX graph the same way (float
initializers; 2 × multiply-adds of every Conv at the training size), so neither tool's own
counter decides. `train s` is the training wall time with each tool's per-epoch validation;
`img/s` = epochs × train images / `train s`. mAP50-95, mAP50 and AP-small (boxes under 32²
pixels, COCO's) on the val split.

Data: `--data DATA.yaml` (any YOLO data set), or by default a `jetkit data synth` set written
here (`--train-images`, `--val-images`, `--synth-imgsz`, `--seed`).

Goals (issue 18): `n` plain ≥ YOLOv8n's mAP50-95 at ≤ its GFLOPs and ≤ its training time; `n`
distilled ≥ YOLOv8n + 2 points; `t` distilled's mAP at ≤ 1/4 of YOLOv8n's GFLOPs, reported;
training img/s ≥ Ultralytics'.

Schedules (each option given overrides its value): the CPU one (600 train / 150 val images of
320 px, 30 epochs at 256 px, batch 16, teacher `s`) is about an hour on 2 cores, all five rows;
the teacher `s` costs about 3.5× a student `n` per image, so 800 / 40 epochs at 320 px takes
about 55 minutes without the teacher (`--skip-teacher`) and 2.5 hours with it. `--gpu` trains
both tools on CUDA (AMP for jetkit) on a longer schedule at YOLO's usual size: 2000 train / 500
val images of 640 px, 100 epochs at 640 px, batch 32.

Every finished row leaves `row.json` in its folder (training settings, wall time, files);
`--reuse` takes a row from there instead of training it again when its settings are identical
(the schedule, jetkit's whole training config with its defaults, the teacher checkpoint's
digest; a user's data.yaml by its path), e.g. to re-run only the distilled rows with other
distillation settings. The table marks reused rows, whose wall times come from the earlier run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import environment, finish, report, table

from edge.datasets import DetectionSet, load_dataset
from edge.detector import Detector
from edge.evaluate import EVAL_THRESHOLDS, evaluate_detector
from edge.models import file_sha256

BENCHMARKS = Path(__file__).resolve().parent
DISTILL_GAIN_POINTS = 2.0
T_GFLOPS_SHARE = 0.25
SCHEDULES = {
    "cpu": {
        "train_images": 600, "val_images": 150, "synth_imgsz": 320, "epochs": 30, "imgsz": 256,
        "batch": 16,
    },
    "gpu": {
        "train_images": 2000, "val_images": 500, "synth_imgsz": 640, "epochs": 100, "imgsz": 640,
        "batch": 32,
    },
}  # fmt: skip
HEADERS = (
    "model", "params M", "GFLOPs", "mAP50-95", "mAP50", "AP-small", "train s", "img/s", "trained",
)  # fmt: skip


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", help="a YOLO data.yaml (default: a jetkit synthetic set)")
    for name in SCHEDULES["cpu"]:
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, help="see Schedules")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--teacher", default="s", help="jetkit size of the teacher (default s)")
    parser.add_argument("--skip-teacher", action="store_true", help="no teacher, no distillation")
    parser.add_argument("--gpu", action="store_true", help="train both on CUDA (AMP for jetkit)")
    parser.add_argument(
        "--reuse", action="store_true", help="take rows with identical settings from row.json"
    )
    parser.add_argument("--venv", default="runs/ultralytics-venv", help="Ultralytics' venv")
    parser.add_argument("--out", default="runs/bench_vs_ultralytics")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    args = parser.parse_args()
    for name, value in SCHEDULES["gpu" if args.gpu else "cpu"].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def onnx_size(path: Path) -> tuple[float, float]:
    """(parameters in millions, GFLOPs) of an exported graph: float initializers, and 2 ×
    multiply-adds of every Conv at the graph's static input size."""
    import onnx
    from onnx import numpy_helper

    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    graph = model.graph
    weights = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    parameters = sum(w.size for w in weights.values() if np.issubdtype(w.dtype, np.floating))
    shapes = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in (*graph.value_info, *graph.output)
    }
    flops = 0
    for node in graph.node:
        if node.op_type != "Conv" or node.input[1] not in weights:
            continue
        out = shapes.get(node.output[0])
        if not out or not all(out):
            raise ValueError(f"{path}: no static shape for {node.name}'s output")
        _, per_group_in, kh, kw = weights[node.input[1]].shape
        flops += 2 * int(np.prod(out)) * per_group_in * kh * kw
    return parameters / 1e6, flops / 1e9


def synthetic_data(args: argparse.Namespace, out: Path) -> Path:
    from trainer.synth import SynthConfig, write_synth_dataset

    config = SynthConfig(args.train_images, args.val_images, args.synth_imgsz, args.seed)
    return write_synth_dataset(out / "data", config)


def absolute_data_yaml(data: Path, folder: Path) -> Path:
    """`data` with an absolute `path`: Ultralytics reads a relative one against its own
    datasets folder, not the yaml's."""
    import yaml

    config = yaml.safe_load(data.read_text(encoding="utf-8"))
    config["path"] = str((data.parent / config.get("path", ".")).resolve())
    target = folder / "data.yaml"
    target.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return target


TRAINING_SETTINGS = ("data", "seed", "gpu", *SCHEDULES["cpu"])


def row_settings(args: argparse.Namespace, **model: Any) -> dict[str, Any]:
    """What decides a row's training: the run's data and schedule and the row's own model, as
    JSON would give it back (tuples as lists), so that a recorded row compares equal."""
    settings = {**{name: getattr(args, name) for name in TRAINING_SETTINGS}, **model}
    return json.loads(json.dumps(settings))


def reused_row(args: argparse.Namespace, folder: Path, settings: dict[str, Any]) -> dict | None:
    """The row recorded in `folder` when `--reuse` is on and it was trained with `settings`."""
    path = folder / "row.json"
    if not args.reuse or not path.is_file():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    if record.get("settings") != settings:
        log(f"{folder}: recorded with other settings, training again")
        return None
    log(f"{folder}: reusing the recorded row")
    return {**record["row"], "reused": True}


def record_row(folder: Path, settings: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    from edge.atomic import write_text_atomic

    plain = {k: str(v) if isinstance(v, Path) else v for k, v in row.items()}
    record = {"settings": settings, "row": plain}
    write_text_atomic(folder / "row.json", json.dumps(record, indent=2))
    return {**plain, "reused": False}


def ultralytics_row(args: argparse.Namespace, data: Path, out: Path) -> dict[str, Any]:
    folder = out / "ultralytics"
    settings = row_settings(args, model="yolov8n.yaml", tool="ultralytics")
    if (row := reused_row(args, folder, settings)) is not None:
        return row
    python = subprocess.run(
        ["bash", str(BENCHMARKS / "ultralytics_venv.sh"), args.venv],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            python, str(BENCHMARKS / "ultralytics_train_export.py"), "yolov8n.yaml",
            str(absolute_data_yaml(data, folder)), str(folder), str(args.epochs), str(args.imgsz),
            str(args.seed),
            str(args.batch), "0" if args.gpu else "cpu",
        ],
        check=True,
    )  # fmt: skip
    record = json.loads((folder / "yolov8n.train.json").read_text())
    row = {"label": "Ultralytics YOLOv8n", "onnx": folder / "yolov8n.onnx", **record}
    return record_row(folder, settings, row)


def jetkit_row(
    args: argparse.Namespace,
    data: Path,
    out: Path,
    label: str,
    size: str,
    val_images: list[Path],
    teacher: dict[str, Any] | None = None,
) -> dict[str, Any]:
    from trainer.config import TrainConfig
    from trainer.distill import DistillConfig
    from trainer.engine import train
    from trainer.export import export_checkpoint

    run = out / label.replace(" ", "-")
    config = TrainConfig(
        data=str(data),
        out=str(run),
        model=size,
        epochs=args.epochs,
        imgsz=args.imgsz,
        batch=args.batch,
        seed=args.seed,
        device="cuda" if args.gpu else "cpu",
        teacher=None if teacher is None else str(teacher["best"]),
        distill=None if teacher is None else DistillConfig(),
    )
    # The whole config (jetkit's defaults included) and the teacher's bytes: a row is reused
    # only if it would be trained the same way from the same teacher.
    settings = row_settings(
        args,
        tool="jetkit",
        config=config.to_dict(),
        teacher_sha256=None if teacher is None else file_sha256(teacher["best"]),
    )
    if (row := reused_row(args, run, settings)) is not None:
        return row
    started = time.perf_counter()
    result = train(config, exist_ok=True, log=lambda m: None if m.startswith("  ") else log(m))
    train_s = time.perf_counter() - started
    exported = export_checkpoint(result.best_path, run / "onnx", val_images)
    row = {"label": label, "onnx": exported.onnx_path, "train_s": train_s, "best": result.best_path}
    return record_row(run, settings, row)


def measure(row: dict[str, Any], dataset: DetectionSet, train_images: int, epochs: int) -> None:
    detector = Detector.open(row["onnx"], **EVAL_THRESHOLDS.detector_options())
    result = evaluate_detector(detector, dataset.val, names=dataset.names)
    row["params_m"], row["gflops"] = onnx_size(row["onnx"])
    row.update(map50_95=result.map50_95, map50=result.map50, map_small=result.map_small)
    row["images_per_s"] = epochs * train_images / row["train_s"]


def goals(rows: dict[str, dict[str, Any]]) -> list[str]:
    v8n, plain = rows["Ultralytics YOLOv8n"], rows["jetkit n"]
    lines = [
        f"n plain >= YOLOv8n mAP50-95 at <= its GFLOPs and training time: "
        f"{plain['map50_95']:.4f} vs {v8n['map50_95']:.4f}, {plain['gflops']:.2f} vs "
        f"{v8n['gflops']:.2f} GFLOPs, {plain['train_s']:.0f} vs {v8n['train_s']:.0f} s: "
        + _met(
            plain["map50_95"] >= v8n["map50_95"]
            and plain["gflops"] <= v8n["gflops"]
            and plain["train_s"] <= v8n["train_s"]
        ),
        f"training img/s >= Ultralytics': {plain['images_per_s']:.1f} vs "
        f"{v8n['images_per_s']:.1f}: " + _met(plain["images_per_s"] >= v8n["images_per_s"]),
    ]
    if "jetkit n distilled" in rows:
        distilled, t = rows["jetkit n distilled"], rows["jetkit t distilled"]
        lines.append(
            f"n distilled >= YOLOv8n + {DISTILL_GAIN_POINTS:g} points: "
            f"{100 * (distilled['map50_95'] - v8n['map50_95']):+.2f} points: "
            + _met(distilled["map50_95"] - v8n["map50_95"] >= DISTILL_GAIN_POINTS / 100)
        )
        lines.append(
            f"t distilled: mAP50-95 {t['map50_95']:.4f} at {t['gflops'] / v8n['gflops']:.1%} of "
            f"YOLOv8n's GFLOPs (goal <= {T_GFLOPS_SHARE:.0%}): "
            + _met(t["gflops"] <= T_GFLOPS_SHARE * v8n["gflops"])
        )
    return lines


def _met(condition: bool) -> str:
    return "yes" if condition else "no"


def main() -> int:
    args = parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = Path(args.data) if args.data else synthetic_data(args, out)
    train_images = len(load_dataset(data, splits=("train",)).train)
    val = load_dataset(data, splits=("val",))
    images = [s.image_path for s in val.val]
    rows = [ultralytics_row(args, data, out), jetkit_row(args, data, out, "jetkit n", "n", images)]
    if not args.skip_teacher:
        label = f"jetkit {args.teacher} teacher"
        teacher = jetkit_row(args, data, out, label, args.teacher, images)
        rows += [
            teacher,
            jetkit_row(args, data, out, "jetkit n distilled", "n", images, teacher),
            jetkit_row(args, data, out, "jetkit t distilled", "t", images, teacher),
        ]
    for row in rows:
        measure(row, val, train_images, args.epochs)
    lines = [
        [
            row["label"],
            f"{row['params_m']:.2f}",
            f"{row['gflops']:.2f}",
            f"{row['map50_95']:.4f}",
            f"{row['map50']:.4f}",
            "-" if np.isnan(row["map_small"]) else f"{row['map_small']:.4f}",
            f"{row['train_s']:.0f}",
            f"{row['images_per_s']:.1f}",
            "reused" if row["reused"] else "this run",
        ]
        for row in rows
    ]
    by_label = {row["label"]: row for row in rows}
    env = environment("torch", "onnxruntime", "numpy")
    report(
        f"{data}: {train_images} train images; {args.epochs} epochs at {args.imgsz} px, batch "
        f"{args.batch}, seed {args.seed}, {'CUDA' if args.gpu else 'CPU'}",
        env,
        table(HEADERS, lines) + "\n\n" + "\n".join(goals(by_label)),
    )
    result = {
        "benchmark": "vs_ultralytics",
        "environment": env,
        "data": str(data),
        "settings": {k: v for k, v in vars(args).items() if k != "json"},
        "rows": [{k: str(v) if isinstance(v, Path) else v for k, v in r.items()} for r in rows],
    }
    return finish(args, result, True)


if __name__ == "__main__":
    sys.exit(main())
