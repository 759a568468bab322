"""One training-recipe change at a time: jetkit `n` trained with the defaults and with each
variant, on the same synthetic data, over several seeds, in one run (issue 18: "each change
measured, kept only where it helps").

A variant is `NAME:KEY=VALUE,...` over `TrainConfig` fields (values as Python literals; dotted keys
reach nested configs, e.g. `loss.dfl_gain=0`); `NAME:` alone is the defaults. Every run trains
from scratch and reports its best val mAP50-95 (jetkit's evaluator, pycocotools), AP-small and
training seconds; the table shows each seed and the median.

    .venv/bin/python benchmarks/bench_recipe.py --variant base: --variant no-dfl:reg_max=1
"""

from __future__ import annotations

import argparse
import ast
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _common import environment, finish, report, table

BENCHMARKS = Path(__file__).resolve().parent


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """`"name:a=1,loss.b='x'"` → `("name", {"a": 1, "loss": {"b": "x"}})`."""
    name, _, assignments = text.partition(":")
    if not name:
        raise SystemExit(f"--variant {text!r}: expected NAME:KEY=VALUE,...")
    changes: dict[str, Any] = {}
    for item in filter(None, assignments.split(",")):
        key, _, value = item.partition("=")
        *parents, leaf = key.strip().split(".")
        target = changes
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = ast.literal_eval(value.strip())
    return name, changes


def merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        out[key] = merged(base.get(key) or {}, value) if isinstance(value, dict) else value
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variant", action="append", required=True, metavar="NAME:K=V,...")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--model", default="n")
    parser.add_argument("--train-images", type=int, default=400)
    parser.add_argument("--val-images", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--out", default="runs/bench_recipe")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    args = parser.parse_args()
    variants = [parse_variant(v) for v in args.variant]

    from trainer.config import TrainConfig
    from trainer.engine import train
    from trainer.synth import SynthConfig, write_synth_dataset

    out = Path(args.out)
    synth = SynthConfig(args.train_images, args.val_images, args.imgsz, args.data_seed)
    data = write_synth_dataset(out / "data", synth)
    base = TrainConfig(
        data=str(data), model=args.model, epochs=args.epochs, imgsz=args.imgsz, batch=args.batch
    ).to_dict()
    rows, records = [], []
    for name, changes in variants:
        scores, small, seconds = [], [], []
        for seed in args.seeds:
            config = TrainConfig.from_dict(
                merged(base, {**changes, "seed": seed, "out": str(out / f"{name}-{seed}")})
            )
            log(f"{name} seed {seed}: {changes or 'defaults'}")
            started = time.perf_counter()
            result = train(config, exist_ok=True, log=lambda m: None)
            seconds.append(time.perf_counter() - started)
            scores.append(result.metrics["map50_95"])
            small.append(result.metrics.get("map_small", float("nan")))
            log(f"  mAP50-95 {scores[-1]:.4f} in {seconds[-1]:.0f} s")
        records.append({"variant": name, "changes": changes, "seeds": args.seeds,
                        "map50_95": scores, "map_small": small, "train_s": seconds})  # fmt: skip
        rows.append(
            [name, *(f"{s:.4f}" for s in scores), f"{statistics.median(scores):.4f}",
             f"{statistics.median(small):.4f}", f"{statistics.median(seconds):.0f}"]
        )  # fmt: skip
    env = environment("torch", "numpy")
    report(
        f"jetkit {args.model}: {args.train_images}/{args.val_images} synthetic images, "
        f"{args.epochs} epochs at {args.imgsz} px, batch {args.batch}",
        env,
        table(
            ["variant", *(f"seed {s}" for s in args.seeds), "median", "AP-small", "train s"], rows
        ),
    )
    return finish(args, {"benchmark": "recipe", "environment": env, "runs": records}, True)


if __name__ == "__main__":
    sys.exit(main())
