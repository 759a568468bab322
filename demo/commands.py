"""`jetkit demo [--out DIR] [--quick]`: the whole chain on the built-in defaults, then the summary
table, `results/summary.json` and `report.html`. Only argparse at import time."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from edge.cli import stderr_log

if TYPE_CHECKING:
    from demo.plan import DemoSettings


def settings_for(args: argparse.Namespace) -> DemoSettings:
    """The recipe (`trainer.recipes`: default, or quick) as demo settings, with the overrides."""
    from demo.plan import DemoSettings
    from trainer.recipes import DEFAULT, QUICK

    recipe = QUICK if args.quick else DEFAULT
    settings = DemoSettings(
        recipe=recipe.name,
        train_images=recipe.synth.train_images,
        val_images=recipe.synth.val_images,
        imgsz=recipe.imgsz,
        batch=recipe.batch,
        teacher_model=recipe.teacher_model,
        teacher_epochs=recipe.teacher_epochs,
        student_model=recipe.student_model,
        student_epochs=recipe.student_epochs,
        seed=recipe.synth.seed,
    )
    overrides = {
        "train_images": args.images,
        "val_images": args.images // 4 if args.images else None,
        "teacher_epochs": args.epochs,
        "student_epochs": args.epochs,
        "imgsz": args.imgsz,
        "serve_s": args.serve_s,
        "bench_s": args.bench_s,
        "max_map_drop": args.max_map_drop,
        "seed": args.seed,
    }
    changes = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(settings, **changes) if changes else settings


def _demo(args: argparse.Namespace) -> int:
    from demo.plan import MODELS, Paths, next_release_version, plan, serve_config_text
    from demo.report import write_report
    from demo.runner import run_steps
    from demo.summary import collect, format_table, model_parameters
    from deploy.device import Layout, installed_releases
    from edge.atomic import write_text_atomic

    settings = settings_for(args)
    paths = Paths(Path(args.out), settings.data_key)
    # What an earlier run made here is made again; an artifact it left that this run's gate
    # refuses must not be bundled, benchmarked or shown as this run's.
    for stale in (paths.onnx_dir, paths.results, paths.logs, paths.out / "samples"):
        shutil.rmtree(stale, ignore_errors=True)
    paths.results.mkdir(parents=True, exist_ok=True)
    write_text_atomic(paths.serve_config, serve_config_text(settings, paths))
    version = next_release_version(installed_releases(Layout(paths.device)))
    steps = plan(settings, paths, version)
    stderr_log(f"jetkit demo ({settings.recipe}): {len(steps)} steps into {paths.out}")
    timings = run_steps(steps, paths.logs, stderr_log, echo=not args.quiet)
    params = {name: model_parameters(paths.run(name) / "best.pt") for name in MODELS}
    summary = collect(settings, paths, timings, params)
    write_text_atomic(paths.result("summary.json"), json.dumps(summary, indent=2) + "\n")
    write_report(paths, summary)
    print(format_table(summary))
    return 0


def register_demo(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="the whole chain on the built-in defaults: train, distil, quantize, flash, serve",
        description="Synthetic data set → teacher → plain and distilled students → evaluation → "
        "ONNX export → FP16 and INT8 artifacts through the accuracy gate → jetkit bench of each "
        "→ bundle → flash to a local device root → jetkit serve on a synthetic stream; then a "
        "summary table, results/summary.json and report.html (static, opens from disk). "
        "Every step is a jetkit command, logged under logs/.",
    )
    parser.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    parser.add_argument(
        "--quick", action="store_true", help="a short schedule: the chain in minutes"
    )
    parser.add_argument("--images", type=int, help="training images (validation: a quarter)")
    parser.add_argument("--epochs", type=int, help="epochs for each model")
    parser.add_argument("--imgsz", type=int, help="image size (a multiple of 32)")
    parser.add_argument("--serve-s", type=float, help="how long the daemon runs (default 15)")
    parser.add_argument("--bench-s", type=float, help="seconds per jetkit bench (default 3)")
    parser.add_argument(
        "--max-map-drop",
        type=float,
        metavar="POINTS",
        help="the FP16/INT8 accuracy gate: largest mAP50-95 loss against FP32 (default 1.0). A "
        "refused INT8 artifact is tried again after quantization-aware fine-tuning (--qat 2) "
        "within 5 minutes; "
        "what is still refused is left out, and the device gets what passed",
    )
    parser.add_argument(
        "--seed", type=int, help="seed of the data set and of every training run (default 0)"
    )
    parser.add_argument(
        "--quiet", action="store_true", help="only the step lines, not their output"
    )
    parser.set_defaults(handler=_demo)
