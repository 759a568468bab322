"""Training throughput on a CUDA GPU (AMP, pinned memory, loader workers) against this machine's
CPU, through the real training loop (`trainer.engine.train`) on the built-in synthetic data set.

Each device trains the same model on the same data for about --steps optimizer steps; the figure
is the median images/s over the epochs after the first (which pays for start-up). Where no CUDA
GPU is visible, only the CPU row is printed and the GPU row says so. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

import torch
from _common import environment, report, table

from trainer.config import TrainConfig
from trainer.engine import train
from trainer.synth import SynthConfig, write_synth_dataset


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="n", help="family size (default n, the teacher)")
    parser.add_argument("--imgsz", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps per device")
    parser.add_argument("--images", type=int, default=320, help="synthetic training images")
    parser.add_argument("--workers", type=int, default=4, help="loader workers on the GPU run")
    parser.add_argument("--out", default="runs/bench_train_gpu")
    parser.add_argument("--json", metavar="FILE")
    return parser.parse_args()


def images_per_s(args: argparse.Namespace, data: Path, device: str, workers: int) -> float:
    steps_per_epoch = max(1, args.images // args.batch)
    epochs = max(2, math.ceil(args.steps / steps_per_epoch))
    config = TrainConfig(
        data=str(data),
        out=f"{args.out}/{device}",
        model=args.model,
        epochs=epochs,
        imgsz=args.imgsz,
        batch=args.batch,
        device=device,
        workers=workers,
        patience=0,
    )
    history = train(config, exist_ok=True, log=lambda _m: None).history
    return statistics.median(row["images_per_s"] for row in history[1:])


def main() -> int:
    args = parse_args()
    data = write_synth_dataset(
        Path(args.out) / "data",
        SynthConfig(train_images=args.images, val_images=16, imgsz=args.imgsz, seed=0),
    )
    rows = []
    cpu = images_per_s(args, data, "cpu", workers=0)
    rows.append(["cpu", "-", f"{cpu:.1f}", "1.00"])
    result = {"cpu_images_per_s": cpu}
    if torch.cuda.is_available():
        gpu_name = torch.cuda.get_device_name(0)
        gpu = images_per_s(args, data, "cuda", workers=args.workers)
        rows.append([f"cuda ({gpu_name})", "fp16 AMP", f"{gpu:.1f}", f"{gpu / cpu:.2f}"])
        result.update(gpu=gpu_name, gpu_images_per_s=gpu)
    else:
        rows.append(["cuda", "-", "no CUDA GPU visible here", "-"])
    report(
        f"training throughput: model {args.model}, {args.imgsz}px, batch {args.batch}, "
        f"~{args.steps} steps per device",
        environment("torch"),
        table(["device", "precision", "images/s", "× CPU"], rows),
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
