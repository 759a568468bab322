"""Distillation from a teacher on unlabelled footage (issue 19): how much of the gap between a
student trained on 10% of the labels and one trained on all of them the teacher's pseudo-labels
on the other 90% recover, and whether a foreign (Ultralytics) teacher serves as well as a jetkit
one of equal accuracy.

Rows, all the same student size (`t`) and schedule, scored by jetkit's evaluator on the val split:
- teacher: jetkit `n` on all labels, exported to ONNX (the file the students are distilled from);
- (a) the student on the 10% labelled alone, for as many optimizer steps as (c) takes (10× the
  epochs over a tenth of the images), per seed;
- (b) `jetkit distill --teacher teacher.onnx --unlabeled <the other 90%'s images>` on the 10%
  labelled (pseudo-label threshold chosen on val by the teacher's best F1), per seed;
- (c) the student on all labels, per seed;
- (d) the student on all labels distilled from the same ONNX teacher, per seed: what the teacher
  gives beyond labels, so that (b) against (c) is not read as pseudo-labels beating labels;
- (b, torch teacher): (b) with the teacher's checkpoint in torch (feature imitation on), seed
  0, uncalibrated: the time per epoch of the ONNX Runtime teacher against it;
- with `--sections ultralytics`: YOLOv8n trained by Ultralytics on all labels in its own venv
  (`benchmarks/ultralytics_venv.sh`) for each of `--ultralytics-epochs` and exported with
  `format=onnx`, and the jetkit teacher's epoch whose val mAP is closest to it, exported too:
  (b) from each, per seed.
Every distillation row runs with the teacher calibrated to its operating point on val (the
default) and again without (", uncalibrated"), which is what the calibration is measured by
(for the Ultralytics pairs, on the first only).

Goal: (b) recovers >= half of the (a)→(c) gap (medians over seeds; every seed shown), and the
Ultralytics teacher's (b) is within the spread of the equal-accuracy jetkit teacher's.
Every row leaves row.json (its whole training config and the teacher's digest); `--reuse` takes
a row from there when they are identical.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import environment, finish, report, table
from bench_vs_ultralytics import absolute_data_yaml

from edge.datasets import load_dataset
from edge.detector import Detector
from edge.evaluate import EVAL_THRESHOLDS, evaluate_detector
from edge.models import file_sha256

BENCHMARKS = Path(__file__).resolve().parent
RECOVERY_GOAL = 0.5
UNCALIBRATED = ", uncalibrated"
HEADERS = ("row", "seed", "teacher", "mAP50-95", "mAP50", "train s", "s/epoch", "notes")


def log(message: str) -> None:
    print(f"[bench_unlabeled] {message}", file=sys.stderr, flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/bench_unlabeled")
    parser.add_argument("--train-images", type=int, default=500)
    parser.add_argument("--val-images", type=int, default=120)
    parser.add_argument("--synth-imgsz", type=int, default=256)
    parser.add_argument("--imgsz", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=20, help="student epochs over all images")
    parser.add_argument("--teacher-epochs", type=int, default=30)
    parser.add_argument(
        "--ultralytics-epochs",
        default="30,100",
        help="YOLOv8n teachers trained this long; each against the jetkit epoch of its accuracy",
    )
    parser.add_argument("--teacher", default="n", help="the jetkit teacher's size")
    parser.add_argument("--student", default="t")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--label-share", type=float, default=0.1)
    parser.add_argument(
        "--pseudo-threshold", type=float, help="default: the teacher's best F1 on val"
    )
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--sections", default="jetkit,ultralytics")
    parser.add_argument("--venv", default="runs/ultralytics-venv")
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--json", help="write the results here too")
    return parser.parse_args()


def split_labels(data: Path, share: float, out: Path) -> tuple[Path, Path, int]:
    """A data.yaml of `share` of the train images (seed 0's pick) with the full val split, and
    a folder of links to the rest of the train images (no labels beside them): the footage."""
    import yaml

    dataset = load_dataset(data)
    order = np.random.default_rng(0).permutation(len(dataset.train))
    count = max(1, round(share * len(dataset.train)))
    labelled = [dataset.train[i].image_path for i in sorted(order[:count])]
    footage = out / "footage"
    footage.mkdir(parents=True, exist_ok=True)
    for index in sorted(order[count:]):
        link = footage / dataset.train[index].image_path.name
        if not link.exists():
            link.symlink_to(dataset.train[index].image_path.resolve())
    (out / "labelled.txt").write_text("".join(f"{p.resolve()}\n" for p in labelled))
    (out / "val.txt").write_text("".join(f"{s.image_path.resolve()}\n" for s in dataset.val))
    config = {
        "path": str(out.resolve()),
        "train": "labelled.txt",
        "val": "val.txt",
        "names": list(dataset.names),
    }
    (out / "labelled.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return out / "labelled.yaml", footage, count


def jetkit_run(
    args: argparse.Namespace, folder: Path, images: int, **config_values: Any
) -> dict[str, Any]:
    """Train (or, with --reuse, find) one run over `images` training images; its row: best.pt,
    training seconds, median training seconds per epoch (validation excluded)."""
    from edge.atomic import write_text_atomic
    from trainer.config import TrainConfig
    from trainer.engine import train

    config = TrainConfig(out=str(folder), batch=args.batch, imgsz=args.imgsz, patience=0,
                         device="cpu", **config_values)  # fmt: skip
    settings = json.loads(json.dumps({
        "config": {k: v for k, v in config.to_dict().items() if k not in ("out", "cache_dir")},
        "teacher_sha256": file_sha256(config.teacher) if config.teacher else None,
    }))  # fmt: skip
    record_path = folder / "row.json"
    if args.reuse and record_path.is_file():
        record = json.loads(record_path.read_text())
        if record["settings"] == settings:
            log(f"{folder}: reusing the recorded run")
            return {**record["row"], "reused": True}
    started = time.perf_counter()
    result = train(config, exist_ok=True, log=lambda m: None if m.startswith("  ") else log(m))
    rates = [row["images_per_s"] for row in result.history]
    row = {
        "best": str(result.best_path),
        "train_s": time.perf_counter() - started,
        "epoch_s": float(np.median([images / rate for rate in rates])),
    }
    write_text_atomic(record_path, json.dumps({"settings": settings, "row": row}, indent=2))
    return {**row, "reused": False}


def export(best: Path, folder: Path, val_images: list[Path]) -> Path:
    from trainer.export import export_checkpoint

    onnx = folder / "model.onnx"
    if not onnx.is_file() or onnx.stat().st_mtime < best.stat().st_mtime:
        export_checkpoint(best, folder, val_images, dynamic_batch=True, max_batch=16)
    return onnx


def score(model: Path, val: Any) -> tuple[float, float]:
    detector = Detector.open(model, **EVAL_THRESHOLDS.detector_options())
    result = evaluate_detector(detector, val.val, names=val.names)
    return result.map50_95, result.map50


def ultralytics_teacher(args: argparse.Namespace, data: Path, out: Path, epochs: int) -> Path:
    folder = out / f"ultralytics-{epochs}e"
    onnx = folder / "yolov8n.onnx"
    if args.reuse and onnx.is_file():
        return onnx
    python = subprocess.run(
        ["bash", str(BENCHMARKS / "ultralytics_venv.sh"), args.venv],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [python, str(BENCHMARKS / "ultralytics_train_export.py"), "yolov8n.yaml",
         str(absolute_data_yaml(data, folder)), str(folder), str(epochs),
         str(args.imgsz), "0", str(args.batch), "cpu"],
        check=True,
    )  # fmt: skip
    return onnx


def closest_epoch(teacher_dir: Path, target_map: float) -> tuple[int, float]:
    """The teacher's epoch (with an epochN.pt) whose val mAP50-95 is nearest `target_map`."""
    import csv

    with open(teacher_dir / "results.csv", newline="") as handle:
        rows = [(int(float(r["epoch"])), float(r["val/map50_95"])) for r in csv.DictReader(handle)]
    rows = [r for r in rows if (teacher_dir / f"epoch{r[0]}.pt").is_file()]
    return min(rows, key=lambda r: abs(r[1] - target_map))


def spread(values: list[float]) -> str:
    return f"{np.median(values):.4f} [{min(values):.4f}-{max(values):.4f}]"


def share_of_gap(low: list[float], mid: list[float], high: list[float]) -> float:
    """How much of the gap between the medians of `low` and `high` the median of `mid` closes."""
    gap = float(np.median(high) - np.median(low))
    return float(np.median(mid) - np.median(low)) / gap if gap > 0 else float("nan")


def main() -> int:
    from trainer.distill import DistillConfig
    from trainer.synth import SynthConfig, write_synth_dataset

    args = parse_args()
    # The default (the teacher calibrated to its operating point on val) and without it.
    variants = (("", DistillConfig()), (UNCALIBRATED, DistillConfig(calibrate=False)))
    seeds = [int(s) for s in args.seeds.split(",")]
    sections = set(args.sections.split(","))
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "cache"
    data = write_synth_dataset(
        out / "data", SynthConfig(args.train_images, args.val_images, args.synth_imgsz, 0)
    )
    labelled, footage, labelled_count = split_labels(data, args.label_share, out / "split")
    val = load_dataset(data, splits=("val",))
    val_images = [s.image_path for s in val.val]
    footage_count = len(list(footage.iterdir()))
    total = labelled_count + footage_count
    log(
        f"{labelled_count} labelled + {footage_count} unlabelled train images, {len(val_images)} val"
    )

    teacher = jetkit_run(args, out / "teacher", total, data=str(data), model=args.teacher,
                         epochs=args.teacher_epochs, seed=0, save_period=1)  # fmt: skip
    teacher_onnx = export(Path(teacher["best"]), out / "teacher" / "onnx", val_images)
    rows: list[dict[str, Any]] = [{"row": f"teacher {args.teacher}, all labels", "seed": 0,
                                   "teacher": "-", **teacher, "model": teacher_onnx}]  # fmt: skip
    student = dict(model=args.student, cache_dir=str(cache))
    footage_options = dict(unlabeled=str(footage), pseudo_threshold=args.pseudo_threshold)
    steps_gain = max(1, round(total / labelled_count))
    for seed in seeds:
        rows.append({"row": "(a) 10% labels", "seed": seed, "teacher": "-", **jetkit_run(
            args, out / f"a-{seed}", labelled_count, data=str(labelled),
            epochs=args.epochs * steps_gain, seed=seed, **student)})  # fmt: skip
        rows.append({"row": "(c) all labels", "seed": seed, "teacher": "-", **jetkit_run(
            args, out / f"c-{seed}", total, data=str(data), epochs=args.epochs, seed=seed,
            **student)})  # fmt: skip
        for suffix, distill in variants:
            rows.append({"row": "(b) 10% + 90% unlabelled", "seed": seed,
                         "teacher": f"jetkit ONNX{suffix}",
                         **jetkit_run(args, out / f"b-{seed}{suffix.replace(', ', '-')}", total,
                                      data=str(labelled), epochs=args.epochs, seed=seed,
                                      teacher=str(teacher_onnx), distill=distill,
                                      **footage_options, **student)})  # fmt: skip
            rows.append({"row": "(d) all labels + teacher", "seed": seed,
                         "teacher": f"jetkit ONNX{suffix}",
                         **jetkit_run(args, out / f"d-{seed}{suffix.replace(', ', '-')}", total,
                                      data=str(data), epochs=args.epochs, seed=seed,
                                      teacher=str(teacher_onnx), distill=distill,
                                      **student)})  # fmt: skip
    # Only for the time per epoch, which calibration does not change: against uncalibrated ONNX.
    rows.append({"row": "(b) 10% + 90% unlabelled", "seed": 0,
                 "teacher": "jetkit torch" + UNCALIBRATED,
                 **jetkit_run(args, out / "b-torch-0-uncalibrated", total, data=str(labelled),
                              epochs=args.epochs, seed=0, teacher=teacher["best"],
                              distill=variants[1][1], **footage_options, **student)})  # fmt: skip
    pairs: list[tuple[str, str]] = []  # (Ultralytics teacher label, jetkit teacher label)
    notes: list[str] = []
    if "ultralytics" in sections:
        for index, epochs in enumerate(int(e) for e in args.ultralytics_epochs.split(",")):
            v8n = ultralytics_teacher(args, data, out, epochs)
            v8n_map, _ = score(v8n, val)
            epoch, epoch_map = closest_epoch(out / "teacher", v8n_map)
            equal = export(
                out / "teacher" / f"epoch{epoch}.pt", out / f"teacher-epoch{epoch}", val_images
            )
            rows.append({"row": f"teacher YOLOv8n (Ultralytics, {epochs} epochs), all labels",
                         "seed": 0, "teacher": "-", "model": v8n, "train_s": float("nan"),
                         "epoch_s": float("nan"), "reused": False})  # fmt: skip
            rows.append({"row": f"teacher {args.teacher} epoch {epoch} (equal accuracy)",
                         "seed": 0, "teacher": "-", "model": equal, "train_s": float("nan"),
                         "epoch_s": float("nan"), "reused": False})  # fmt: skip
            labels = (f"Ultralytics {epochs}e ONNX", f"jetkit epoch {epoch} ONNX")
            pairs.append(labels)
            # The calibration ablation is measured on the first pair only.
            teachers = ((labels[0], v8n, f"ultralytics{epochs}e"),
                        (labels[1], equal, f"epoch{epoch}"))  # fmt: skip
            for seed in seeds:
                for label, model, tag in teachers:
                    for suffix, distill in variants if index == 0 else variants[:1]:
                        folder = out / f"b-{tag}-{seed}{suffix.replace(', ', '-')}"
                        rows.append({"row": "(b) 10% + 90% unlabelled", "seed": seed,
                                     "teacher": label + suffix,
                                     **jetkit_run(args, folder, total, data=str(labelled),
                                                  epochs=args.epochs, seed=seed,
                                                  teacher=str(model), distill=distill,
                                                  **footage_options, **student)})  # fmt: skip
            notes.append(f"YOLOv8n ({epochs} epochs) val mAP50-95 {v8n_map:.4f}; jetkit teacher "
                         f"epoch {epoch}: {epoch_map:.4f} (results.csv, EMA weights)")  # fmt: skip

    for row in rows:
        model = row.get("model") or export(Path(row["best"]), Path(row["best"]).parent / "onnx",
                                           val_images)  # fmt: skip
        row["map50_95"], row["map50"] = score(Path(model), val)

    def maps(label: str, teacher_label: str = "-") -> list[float]:
        return [r["map50_95"] for r in rows if r["row"] == label and (
            teacher_label == "-" or r["teacher"] == teacher_label)]  # fmt: skip

    a, b, c = maps("(a) 10% labels"), maps("(b) 10% + 90% unlabelled", "jetkit ONNX"), maps(
        "(c) all labels")  # fmt: skip
    d = maps("(d) all labels + teacher", "jetkit ONNX")
    recovered = share_of_gap(a, b, c)
    lines = [
        f"medians over seeds {seeds}: (a) {np.median(a):.4f} [{min(a):.4f}-{max(a):.4f}], "
        f"(b) {np.median(b):.4f} [{min(b):.4f}-{max(b):.4f}], (c) {np.median(c):.4f} "
        f"[{min(c):.4f}-{max(c):.4f}]",
        f"(b) recovers {recovered:.0%} of the (a)->(c) gap (goal >= {RECOVERY_GOAL:.0%}): "
        + ("yes" if recovered >= RECOVERY_GOAL else "no"),
        f"(d), the same teacher on all labels: {np.median(d):.4f} [{min(d):.4f}-{max(d):.4f}]; "
        f"(b) reaches {share_of_gap(a, b, d):.0%} of the (a)->(d) gap",
    ]
    onnx_s = [r["epoch_s"] for r in rows
              if r["teacher"] == "jetkit ONNX" + UNCALIBRATED and r["seed"] == 0]  # fmt: skip
    torch_s = [r["epoch_s"] for r in rows if r["teacher"] == "jetkit torch" + UNCALIBRATED]
    lines.append(f"s/epoch (training only), seed 0: ONNX Runtime teacher {onnx_s[0]:.1f}, torch "
                 f"teacher {torch_s[0]:.1f} ({onnx_s[0] / torch_s[0]:.2f}x)")  # fmt: skip
    lines += notes
    for label in ("(b) 10% + 90% unlabelled", "(d) all labels + teacher"):
        lines.append(f"{label[:3]} calibrated {spread(maps(label, 'jetkit ONNX'))}, uncalibrated "
                     f"{spread(maps(label, 'jetkit ONNX' + UNCALIBRATED))}")  # fmt: skip
    for index, (ultra_label, jetkit_label) in enumerate(pairs):
        for suffix, _ in variants if index == 0 else variants[:1]:
            ultra = maps("(b) 10% + 90% unlabelled", ultra_label + suffix)
            same = maps("(b) 10% + 90% unlabelled", jetkit_label + suffix)
            lines.append(
                f"(b){suffix or ', calibrated'}: from {ultra_label} {spread(ultra)} against the "
                f"equal-accuracy {jetkit_label} {spread(same)}: within its spread: "
                + ("yes" if min(same) <= np.median(ultra) else "no")
            )
    table_rows = [
        [r["row"], r["seed"], r["teacher"], f"{r['map50_95']:.4f}", f"{r['map50']:.4f}",
         "-" if np.isnan(r["train_s"]) else f"{r['train_s']:.0f}",
         "-" if np.isnan(r["epoch_s"]) else f"{r['epoch_s']:.1f}",
         "reused" if r["reused"] else ""]
        for r in rows
    ]  # fmt: skip
    env = environment("torch", "onnxruntime", "numpy")
    report(
        f"synth {args.train_images}/{args.val_images} images of {args.synth_imgsz} px; student "
        f"{args.student}, {args.epochs} epochs at {args.imgsz} px ((a): {args.epochs * steps_gain}"
        f" epochs, the same steps), batch {args.batch}; {os.cpu_count()} CPUs",
        env,
        table(HEADERS, table_rows) + "\n\n" + "\n".join(lines),
    )
    result = {
        "benchmark": "unlabeled",
        "environment": env,
        "settings": {k: v for k, v in vars(args).items() if k != "json"},
        "rows": [{k: str(v) if isinstance(v, Path) else v for k, v in r.items()} for r in rows],
        "recovered": recovered,
    }
    return finish(args, result, True)


if __name__ == "__main__":
    sys.exit(main())
