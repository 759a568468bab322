"""`jetkit data synth`: write the built-in synthetic detection data set (no download needed).

Only argparse at import time: the generator (numpy, OpenCV) loads inside the handler.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

# The option that sets each SynthConfig field, so that errors name what the user typed.
_OPTION_OF_FIELD = {
    "train_images": "--images",
    "val_images": "--val",
    "imgsz": "--imgsz",
    "seed": "--seed",
}


def register_data(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "data",
        help="data sets: write the built-in synthetic one, extract frames from footage",
        description="Data set tools.",
    )
    actions = parser.add_subparsers(dest="data_action", metavar="ACTION")
    actions.required = True
    synth = actions.add_parser(
        "synth",
        help="write the synthetic detection data set (YOLO format, no download)",
        description="Write the built-in synthetic detection data set: six easily confused "
        "shapes at scales from 8 px to 60% of the image, clutter, occlusion, noise, in YOLO "
        "format with a data.yaml. The same seed writes the same files; rerunning with the "
        "same settings reuses the folder.",
    )
    synth.add_argument("out", metavar="OUT", help="folder to create")
    synth.add_argument("--images", type=int, metavar="N", help="training images (default: 800)")
    synth.add_argument("--val", type=int, metavar="N", help="validation images (default: 200)")
    synth.add_argument(
        "--imgsz",
        type=int,
        metavar="N",
        help="base image size; each side varies in 0.6-1.4 times it (default: 320)",
    )
    synth.add_argument("--seed", type=int, metavar="S", help="random seed (default: 0)")
    synth.set_defaults(handler=run_synth)
    frames = actions.add_parser(
        "frames",
        help="extract frames from videos, cameras or streams for training (near-duplicates out)",
        description="Write every N-th frame of each SOURCE (a video file, rtsp://…, "
        "images://DIR, v4l2://…, csi://…) as JPEG into OUT, optionally dropping near-duplicates "
        "of the last frame kept (a static camera's copies). Nothing is written unless every "
        "source reads to its end (or --duration / --max-frames).",
    )
    frames.add_argument("sources", metavar="SOURCE", nargs="+", help="video file or source URI")
    frames.add_argument("--out", required=True, help="folder for the frames")
    frames.add_argument("--every", type=int, default=1, help="keep every N-th frame (default 1)")
    frames.add_argument(
        "--dedupe", action="store_true", help="drop frames that barely differ from the last kept"
    )
    frames.add_argument("--max-frames", type=int, help="keep at most N frames per source")
    frames.add_argument(
        "--duration", type=float, metavar="S", help="read live sources for S seconds"
    )
    frames.set_defaults(handler=run_frames)


def run_synth(args: argparse.Namespace) -> int:
    from edge.errors import JetkitError
    from trainer.progress import ProgressBar
    from trainer.synth import SYNTH_CLASSES, SynthConfig, SynthConfigError, write_synth_dataset

    given = {
        field: getattr(args, option.lstrip("-"))
        for field, option in _OPTION_OF_FIELD.items()
        if getattr(args, option.lstrip("-")) is not None
    }
    try:
        config = SynthConfig(**given)
    except SynthConfigError as exc:
        raise JetkitError(f"{_OPTION_OF_FIELD[exc.field]} {exc.problem}") from None
    total = config.train_images + config.val_images
    bar = ProgressBar(total, "synth")
    done = [0]

    def progress(count: int, _total: int) -> None:
        done[0] = count
        bar.update(count, "images")

    data_yaml = write_synth_dataset(Path(args.out), config, progress=progress)
    if done[0]:
        bar.close(done[0], "images")
    else:
        print(f"synth: {args.out} already holds this data set; reusing it", file=sys.stderr)
    print(label_summary(data_yaml.parent, SYNTH_CLASSES), file=sys.stderr)
    print(data_yaml)
    return 0


def run_frames(args: argparse.Namespace) -> int:
    from edge.cli import stderr_log
    from edge.footage import FramesConfig, extract_frames

    config = FramesConfig(
        every=args.every,
        dedupe=args.dedupe,
        max_frames=args.max_frames,
        duration_s=args.duration,
    )
    report = extract_frames(args.sources, Path(args.out), config, log=stderr_log)
    duplicates = sum(report.duplicates.values())
    print(
        f"frames: {len(report.written)} written to {args.out} from {sum(report.read.values())} "
        f"read" + (f" ({duplicates} near-duplicates dropped)" if args.dedupe else ""),
        file=sys.stderr,
    )
    print(args.out)
    return 0


def label_summary(root: Path, names: tuple[str, ...]) -> str:
    """One line from the YOLO label files under `root/labels/<split>/`: images per split,
    background images, boxes in all and per class."""
    per_split: Counter[str] = Counter()
    per_class: Counter[int] = Counter()
    background = 0
    for label_file in sorted(root.glob("labels/*/*.txt")):
        per_split[label_file.parent.name] += 1
        ids = [int(line.split()[0]) for line in label_file.read_text().splitlines() if line]
        background += not ids
        per_class.update(ids)
    images = ", ".join(f"{count} {split}" for split, count in sorted(per_split.items()))
    classes = ", ".join(f"{name} {per_class[index]}" for index, name in enumerate(names))
    return (
        f"synth: {sum(per_split.values())} images ({images}, {background} background), "
        f"{sum(per_class.values())} boxes: {classes}"
    )
