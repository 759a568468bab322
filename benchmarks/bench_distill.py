"""Distillation benchmark: on the built-in synthetic data set and a recipe's schedule (default: the
demo's), the distilled student against the same student trained without distillation — same
schedule, same seeds — plus the teacher, in one table: mAP50, mAP50-95 (through the edge runtime
on the exported ONNX, the evaluator of `jetkit eval`), parameters, GFLOPs, and CPU latency from
`jetkit bench`.

The teacher is trained once; each seed trains a plain and a distilled student. The summary gives
the mAP50-95 margin (distilled − plain) per seed, its mean and spread, and the student/teacher
parameter and FLOP ratios. Runs already finished under --out are reused (--fresh retrains).
Nothing is asserted: this prints and records.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import environment, report, table

from edge.datasets import load_dataset
from edge.detector import Detector
from edge.evaluate import EVAL_THRESHOLDS, evaluate_detector
from trainer.checkpoint import load_checkpoint, model_from_checkpoint
from trainer.engine import train
from trainer.export import export_checkpoint
from trainer.model import count_gflops, count_parameters
from trainer.recipes import RECIPES
from trainer.synth import write_synth_dataset


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="demo")
    parser.add_argument("--seeds", default="0,1", help="comma-separated student seeds (>= 2)")
    parser.add_argument("--out", default="runs/bench_distill", help="working folder")
    parser.add_argument("--fresh", action="store_true", help="retrain runs that already exist")
    parser.add_argument("--bench-seconds", type=float, default=5.0, help="jetkit bench duration")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    return parser.parse_args()


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def trained(config: Any, fresh: bool) -> Path:
    best = Path(config.out) / "best.pt"
    results = Path(config.out) / "results.json"
    if results.is_file() and best.is_file() and not fresh:
        log(f"reusing {config.out}")
        return best
    started = time.perf_counter()
    train(config, exist_ok=True, log=lambda m: None if m.startswith("  ") else log(m))
    log(f"trained {config.out} in {time.perf_counter() - started:.0f} s")
    return best


def cpu_latency_ms(onnx_path: Path, seconds: float) -> float:
    """Median model latency (batch 1) from the real `jetkit bench` command line."""
    script = Path(sys.executable).with_name("jetkit")
    result = subprocess.run(
        [
            str(script),
            "bench",
            str(onnx_path),
            "--duration",
            str(seconds),
            "--warmup-ms",
            "500",
            "--json",
            "-",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(json.loads(result.stdout)["latency_ms"]["median"])


def measure(
    role: str, seed: int | None, best: Path, data: Path, imgsz: int, seconds: float
) -> dict:
    checkpoint = load_checkpoint(best)
    model = model_from_checkpoint(checkpoint)
    val = load_dataset(data, splits=("val",)).val
    exported = export_checkpoint(best, best.parent / "onnx", [s.image_path for s in val])
    detector = Detector.open(exported.onnx_path, **EVAL_THRESHOLDS.detector_options())
    result = evaluate_detector(detector, val)
    return {
        "model": role,
        "size": checkpoint["model"]["size"],
        "seed": seed,
        "map50": result.map50,
        "map50_95": result.map50_95,
        "params_m": count_parameters(model) / 1e6,
        "gflops": count_gflops(model, (imgsz, imgsz)),
        "cpu_latency_ms": cpu_latency_ms(exported.onnx_path, seconds),
    }


def main() -> int:
    args = parse_args()
    recipe = RECIPES[args.recipe]
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    out = Path(args.out) / recipe.name
    data = write_synth_dataset(out / "data", recipe.synth)
    teacher = trained(recipe.teacher_config(str(data), str(out / "teacher")), args.fresh)
    rows = [measure("teacher", None, teacher, data, recipe.imgsz, args.bench_seconds)]
    for seed in seeds:
        plain = trained(
            recipe.student_config(str(data), str(out / f"plain-{seed}"), seed), args.fresh
        )
        distilled = trained(
            recipe.student_config(str(data), str(out / f"distilled-{seed}"), seed, str(teacher)),
            args.fresh,
        )
        rows.append(measure("plain", seed, plain, data, recipe.imgsz, args.bench_seconds))
        rows.append(measure("distilled", seed, distilled, data, recipe.imgsz, args.bench_seconds))

    body = table(
        ["model", "size", "seed", "mAP50", "mAP50-95", "params M", "GFLOPs", "CPU p50 ms"],
        [
            [
                r["model"],
                r["size"],
                "-" if r["seed"] is None else r["seed"],
                f"{r['map50']:.4f}",
                f"{r['map50_95']:.4f}",
                f"{r['params_m']:.2f}",
                f"{r['gflops']:.3f}",
                f"{r['cpu_latency_ms']:.2f}",
            ]
            for r in rows
        ],
    )
    report(
        f"recipe {recipe.name}: synthetic {recipe.synth.train_images}/{recipe.synth.val_images} "
        f"images at {recipe.imgsz}, teacher {recipe.teacher_model} × {recipe.teacher_epochs} "
        f"epochs, students {recipe.student_model} × {recipe.student_epochs} epochs, seeds {seeds}",
        environment("torch", "onnxruntime"),
        body,
    )
    by_seed = {(r["model"], r["seed"]): r for r in rows}
    margins = [
        by_seed[("distilled", s)]["map50_95"] - by_seed[("plain", s)]["map50_95"] for s in seeds
    ]
    plain_mean = statistics.mean(by_seed[("plain", s)]["map50_95"] for s in seeds)
    distilled_mean = statistics.mean(by_seed[("distilled", s)]["map50_95"] for s in seeds)
    student, teacher_row = rows[1], rows[0]
    summary = {
        "margins_map50_95": margins,
        "mean_margin": statistics.mean(margins),
        "spread": [min(margins), max(margins)],
        "plain_mean_map50_95": plain_mean,
        "distilled_mean_map50_95": distilled_mean,
        "distilled_better_every_seed": all(m > 0 for m in margins),
        "params_ratio": student["params_m"] / teacher_row["params_m"],
        "gflops_ratio": student["gflops"] / teacher_row["gflops"],
    }
    print(
        f"distilled − plain mAP50-95 per seed: {', '.join(f'{m:+.4f}' for m in margins)}; "
        f"mean {summary['mean_margin']:+.4f} (plain {plain_mean:.4f} → distilled "
        f"{distilled_mean:.4f}); student/teacher params {summary['params_ratio']:.3f}, "
        f"GFLOPs {summary['gflops_ratio']:.3f}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "summary": summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
