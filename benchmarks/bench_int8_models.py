"""INT8 on the models people bring: Ultralytics YOLOv8n and YOLO11n exports and a jetkit student,
calibrated by jetkit with no extra flags, with `--val`, with the previous recipe (decode tail
only, entropy) and by NVIDIA's Model Optimizer, side by side in one run on this CPU.

Models: ONNX files trained on the same data set (`benchmarks/ultralytics_train_export.py` trains
and exports the Ultralytics ones in their own virtual environment; `jetkit train` + `export` the
student). Calibration: `--images` of the train split (`select_images`), the same images for
every row, Model Optimizer included (its calibration data is those images preprocessed by the
model's manifest, as one `.npy`).

Validation: the val split in two halves by position. `--val` rows choose their method on the
even half; every row's mAP50-95 is measured on the odd half, which no choice has seen (mAP
through `jetkit eval`'s evaluator). Drop = FP32 − artifact, in points.

Rows per model:
- `jetkit cpu` / `jetkit tensorrt`: `jetkit calibrate --runtime cpu|tensorrt` as a user runs it,
  no flags: float islands, the default method;
- `… --val`: the same with `--val` (each candidate method scored, the best kept);
- `… before`: only the decode tail in float and entropy ranges, the recipe before float islands;
- `modelopt`: `python -m modelopt.onnx.quantization --quantize_mode int8 --calibration_eps cpu`,
  defaults otherwise (entropy, FP16 outside the Q/DQ layers), in its own virtual environment.
TensorRT-format rows (symmetric INT8, the Q/DQ graph TensorRT reads) run here on ONNX Runtime's
CPU provider as the closest stand-in for accuracy; `trt rules` is how many TensorRT Q/DQ rule
errors `jetkit check` finds on the versions jetkit targets (0: builds everywhere).

Latency: ONNX Runtime CPU, 2 threads, batch 1, model only, the FP32 model and the CPU-format
INT8 rows interleaved (`bench_calibration.alternating_ms`); speed-up = FP32 ms / INT8 ms. The
CPU INT8 artifact computes its float softmax as element-wise arithmetic (`calibration.cpu_graph`),
a rewrite that would speed up FP32 too: the `fp32 rewritten` row is the FP32 model with that
rewrite alone, and `vs rw` the speed-up over it, so the part INT8 itself brings is on the table.
`e2e` is the speed-up per frame end to end (preprocess, model, decode and NMS at the manifest's
thresholds), what `jetkit bench` reports as throughput at batch 1.
Goals: drop ≤ 1.0 point for every model and both runtimes with no flags; CPU INT8 ≥ 1.8× FP32.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from _common import environment, finish, median, report, table
from bench_calibration import BACKEND_OPTIONS, THREADS, latencies_ms

from calibration.cpu_graph import decompose_float_softmax
from calibration.data import CalibrationBatches, calibration_images, select_images
from calibration.gate import map_scorer
from calibration.int8 import quantize_int8
from calibration.ranges import AUTO_CANDIDATES
from calibration.trt_rules.check import DEFAULT_VERSIONS, check_versions, load_onnx
from edge.backends import open_backend
from edge.datasets import Sample, load_dataset
from edge.detector import Detector
from edge.evaluate import EVAL_THRESHOLDS, evaluate_detector
from edge.images import read_image
from edge.manifest import Manifest

MAX_DROP_POINTS = 1.0
MIN_SPEEDUP = 1.8
REWRITTEN = "fp32 rewritten"
# (label, runtime, method, island reasons or None for all, scored on --val)
JETKIT_ROWS: tuple[tuple[str, str, str, tuple[str, ...] | None, bool], ...] = (
    ("jetkit cpu before", "cpu", "entropy", ("decode",), False),
    ("jetkit cpu", "cpu", "auto", None, False),
    ("jetkit cpu --val", "cpu", "auto", None, True),
    ("jetkit tensorrt before", "tensorrt", "entropy", ("decode",), False),
    ("jetkit tensorrt", "tensorrt", "auto", None, False),
    ("jetkit tensorrt --val", "tensorrt", "auto", None, True),
)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("models", nargs="+", help="FP32 ONNX files (manifest embedded or inferred)")
    parser.add_argument("--data", required=True, help="data.yaml: train calibrates, val evaluates")
    parser.add_argument("--images", type=int, default=128, help="calibration images")
    parser.add_argument("--repeats", type=int, default=15, help="interleaved latency repeats")
    parser.add_argument("--modelopt-python", help="python of a venv with nvidia-modelopt[onnx]")
    parser.add_argument("--out", default="runs/bench_int8_models", help="artifact folder")
    parser.add_argument(
        "--speed-only",
        action="store_true",
        help="only time FP32 against the CPU INT8 artifacts an earlier run left in --out (for a "
        "quiet machine after a run that shared it)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    return parser.parse_args()


def detector_for(path: Path, manifest: Manifest) -> Detector:
    """Any of the row's files read with the FP32 model's manifest (Model Optimizer's output
    carries none)."""
    backend = open_backend(str(path), **BACKEND_OPTIONS)  # type: ignore[arg-type]
    return Detector(backend, manifest, **EVAL_THRESHOLDS.detector_options())


def modelopt_int8(
    python: str, source: Path, manifest: Manifest, images: Sequence[Path], out: Path
) -> float:
    """Model Optimizer's INT8 of `source` at `out`; returns its wall seconds (the images are
    preprocessed beforehand, outside the timing, as a user hands it a `.npy`)."""
    with tempfile.TemporaryDirectory(prefix="jetkit-modelopt-") as scratch:
        calib = Path(scratch) / "calib.npy"
        np.save(calib, np.concatenate(list(CalibrationBatches(list(images), manifest))))
        started = time.perf_counter()
        subprocess.run(
            [
                python, "-m", "modelopt.onnx.quantization", "--onnx_path", str(source),
                "--quantize_mode", "int8", "--calibration_data_path", str(calib),
                "--calibration_eps", "cpu", "--output_path", str(out), "--log_level", "WARNING",
            ],
            check=True,
        )  # fmt: skip
        return time.perf_counter() - started


def trt_rule_errors(path: Path) -> int:
    results = check_versions(load_onnx(path), DEFAULT_VERSIONS)
    return sum(1 for finding, _ in results if finding.severity == "error")


def artifact_path(out_dir: Path, source: Path, label: str) -> Path:
    return out_dir / f"{source.stem}-{label.replace(' ', '-').replace('--', '')}.onnx"


def fp32_rows(source: Path, out_dir: Path) -> list[dict[str, Any]]:
    """The FP32 model as given, and with the CPU artifact's graph rewrite alone."""
    model = onnx.load(str(source))
    decompose_float_softmax(model)
    rewritten = artifact_path(out_dir, source, REWRITTEN)
    onnx.save(model, str(rewritten))
    return [
        {"label": "fp32", "path": source, "runtime": "cpu"},
        {"label": REWRITTEN, "path": rewritten, "runtime": "cpu"},
    ]


def speed_rows(source: Path, out_dir: Path) -> list[dict[str, Any]]:
    """FP32 and the CPU INT8 artifacts of an earlier run, for `--speed-only`."""
    rows = fp32_rows(source, out_dir)
    for label, runtime, *_ in JETKIT_ROWS:
        path = artifact_path(out_dir, source, label)
        if runtime == "cpu" and path.is_file():
            rows.append({"label": label, "path": path, "runtime": runtime})
    return rows


def time_rows(
    rows: list[dict[str, Any]], detectors: dict[str, Detector], frame_path: Path, repeats: int
) -> None:
    timed = [row for row in rows if row.get("runtime") == "cpu" or row["label"] == "fp32"]
    frame = read_image(frame_path)
    tensor = np.array(detectors["fp32"].preprocessor([frame])[0])
    samples, end_to_end = latencies_ms(
        {row["label"]: detectors[row["label"]] for row in timed}, tensor, frame, repeats
    )
    for row in timed:
        row["model_ms"] = median(samples[row["label"]])
        row["speedup"] = median(samples["fp32"]) / row["model_ms"]
        row["speedup_rewritten"] = median(samples[REWRITTEN]) / row["model_ms"]
        row["end_to_end_ms"] = median(end_to_end[row["label"]])
        row["speedup_end_to_end"] = median(end_to_end["fp32"]) / row["end_to_end_ms"]


def build_rows(
    source: Path,
    manifest: Manifest,
    images: Sequence[Path],
    choose: Sequence[Sample],
    out_dir: Path,
    modelopt_python: str | None,
) -> list[dict[str, Any]]:
    rows = fp32_rows(source, out_dir)
    for label, runtime, method, reasons, scored in JETKIT_ROWS:
        path = artifact_path(out_dir, source, label)
        score: Callable[[Path], float] | None = map_scorer(manifest, choose) if scored else None
        started = time.perf_counter()
        options: dict[str, Any] = {} if reasons is None else {"island_reasons": reasons}
        result = quantize_int8(
            source, manifest, images, path, runtime=runtime, method=method, score=score, **options
        )
        rows.append(
            {
                "label": label,
                "runtime": runtime,
                "path": path,
                "calibration_s": time.perf_counter() - started,
                "method": str(result.method),
                "method_scores": dict(result.method_scores),
                "islands": len(result.islands),
            }
        )
        log(f"{source.name}: {label} ({result.method}) in {rows[-1]['calibration_s']:.1f} s")
    if modelopt_python:
        path = out_dir / f"{source.stem}-modelopt.onnx"
        seconds = modelopt_int8(modelopt_python, source, manifest, images, path)
        rows.append(
            {"label": "modelopt", "runtime": "tensorrt", "path": path, "calibration_s": seconds}
        )
        log(f"{source.name}: modelopt in {seconds:.1f} s")
    for row in rows[1:]:
        if row["runtime"] == "tensorrt":
            row["trt_rule_errors"] = trt_rule_errors(row["path"])
    return rows


def measure(
    rows: list[dict[str, Any]], manifest: Manifest, report_on: Sequence[Sample], repeats: int
) -> None:
    detectors = {row["label"]: detector_for(row["path"], manifest) for row in rows}
    for row in rows:
        row["map50_95"] = evaluate_detector(detectors[row["label"]], report_on).map50_95
    fp32 = rows[0]["map50_95"]
    for row in rows:
        row["drop_points"] = 100.0 * (fp32 - row["map50_95"])
    time_rows(rows, detectors, report_on[0].image_path, repeats)


def goal(row: dict[str, Any]) -> str:
    if row["label"] in ("fp32", REWRITTEN, "modelopt") or "before" in row["label"]:
        return "-"
    missed = []
    if row["drop_points"] > MAX_DROP_POINTS:
        missed.append("drop")
    if row.get("runtime") == "cpu" and row["speedup"] < MIN_SPEEDUP:
        missed.append("speed-up")
    if row.get("trt_rule_errors"):
        missed.append("trt rules")
    return "no: " + ", ".join(missed) if missed else "yes"


def format_rows(results: list[tuple[str, list[dict[str, Any]]]]) -> str:
    def cell(row: dict[str, Any], key: str, spec: str) -> str:
        value = row.get(key)
        return "-" if value is None else format(value, spec)

    lines = []
    for model, rows in results:
        for row in rows:
            lines.append(
                [
                    model,
                    row["label"],
                    row.get("method", "-"),
                    cell(row, "calibration_s", ".1f"),
                    f"{row['map50_95']:.4f}",
                    f"{row['drop_points']:+.2f}",
                    cell(row, "model_ms", ".2f"),
                    "-" if "speedup" not in row else f"{row['speedup']:.2f}x",
                    "-" if "speedup" not in row else f"{row['speedup_rewritten']:.2f}x",
                    "-" if "speedup" not in row else f"{row['speedup_end_to_end']:.2f}x",
                    cell(row, "trt_rule_errors", "d"),
                    goal(row),
                ]
            )
    return table(
        [
            "model",
            "artifact",
            "method",
            "calib s",
            "mAP50-95",
            "drop pts",
            "model ms",
            "speed-up",
            "vs rw",
            "e2e",
            "trt rules",
            "goal met",
        ],
        lines,
    )


def method_table(results: list[tuple[str, list[dict[str, Any]]]]) -> str:
    """Each candidate method's mAP50-95 on the choosing half, per model and runtime."""
    lines = []
    for model, rows in results:
        for row in rows:
            if row.get("method_scores"):
                scores = row["method_scores"]
                lines.append(
                    [model, row["runtime"], *(f"{scores[m]:.4f}" for m in AUTO_CANDIDATES)]
                )
    return table(["model", "runtime", *AUTO_CANDIDATES], lines)


def main() -> int:
    args = parse_args()
    data = load_dataset(args.data)
    images = select_images(calibration_images(args.data), args.images)
    choose, report_on = data.val[0::2], data.val[1::2]
    if args.speed_only:
        return speed_only(args, report_on[0].image_path)
    results = []
    for model in map(Path, args.models):
        manifest = Detector.open(model, backend_options=BACKEND_OPTIONS).manifest
        out_dir = Path(args.out) / model.stem
        out_dir.mkdir(parents=True, exist_ok=True)
        rows = build_rows(model, manifest, images, choose, out_dir, args.modelopt_python)
        measure(rows, manifest, report_on, args.repeats)
        results.append((model.name if model.stem != "model" else model.parent.name, rows))
    env = environment("onnxruntime", "onnx", "numpy")
    report(
        f"{len(images)} calibration images (train split); methods chosen on {len(choose)} val "
        f"images, mAP50-95 on the other {len(report_on)}; ONNX Runtime CPU, {THREADS} threads, "
        f"batch 1, medians of {args.repeats} interleaved repeats (goals: drop <= "
        f"{MAX_DROP_POINTS} pt with no flags, CPU INT8 >= {MIN_SPEEDUP}x)",
        env,
        format_rows(results)
        + "\n\nmAP50-95 per method on the choosing half:\n"
        + method_table(results),
    )
    result = {
        "benchmark": "int8_models",
        "environment": env,
        "calibration_images": len(images),
        "choose_images": len(choose),
        "report_images": len(report_on),
        "results": {
            model: [{**row, "path": str(row["path"])} for row in rows] for model, rows in results
        },
    }
    return finish(args, result, True)


def speed_only(args: argparse.Namespace, frame_path: Path) -> int:
    lines = []
    for model in map(Path, args.models):
        manifest = Detector.open(model, backend_options=BACKEND_OPTIONS).manifest
        rows = speed_rows(model, Path(args.out) / model.stem)
        detectors = {row["label"]: detector_for(row["path"], manifest) for row in rows}
        time_rows(rows, detectors, frame_path, args.repeats)
        name = model.name if model.stem != "model" else model.parent.name
        lines += [
            [
                name,
                r["label"],
                f"{r['model_ms']:.2f}",
                f"{r['speedup']:.2f}x",
                f"{r['speedup_rewritten']:.2f}x",
                f"{r['end_to_end_ms']:.2f}",
                f"{r['speedup_end_to_end']:.2f}x",
            ]
            for r in rows
        ]
    report(
        f"model-only and end-to-end latency: ONNX Runtime CPU, {THREADS} threads, batch 1, medians of "
        f"{args.repeats} interleaved repeats (goal: CPU INT8 >= {MIN_SPEEDUP}x)",
        environment("onnxruntime", "onnx", "numpy"),
        table(["model", "artifact", "model ms", "speed-up", "vs rw", "e2e ms", "e2e"], lines),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
