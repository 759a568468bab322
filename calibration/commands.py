"""`jetkit calibrate`: FP16 or INT8 artifacts from an FP32 ONNX, checked by the accuracy gate.

Only argparse at import time; onnx/onnxruntime load in the handler.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from edge.cli import stderr_log
from edge.commands import add_manifest_overrides
from edge.errors import JetkitError


def _calibrate(args: argparse.Namespace) -> int:
    from calibration.data import calibration_images, check_calibration_images, select_images
    from edge.atomic import write_text_atomic
    from edge.commands import overrides_from_args
    from edge.models import inferred_note, open_manifest

    source = Path(args.model)
    if args.report and not args.val:
        raise JetkitError("--report writes the gate report: give --val too")
    if args.qat is not None and args.precision != "int8":
        raise JetkitError("--qat fine-tunes for INT8: use it with --precision int8")
    overrides = overrides_from_args(args)
    resolved = open_manifest(source, overrides)
    note = inferred_note(resolved)
    if note:
        stderr_log(note)
    manifest = resolved.manifest
    out_dir = Path(args.out or source.parent)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = f"{source.stem}-{args.precision}"
    staging = out_dir / f".{name}.tmp-{os.getpid()}"
    staging.mkdir()
    try:
        artifact = staging / f"{name}.onnx"
        if args.precision == "fp16":
            from calibration.fp16 import convert_fp16

            convert_fp16(source, manifest, artifact, log=stderr_log)
        else:
            from calibration.int8 import quantize_int8, trt_cache_from
            from calibration.trt_cache import write_cache

            if args.data is None:
                raise JetkitError(
                    "--precision int8 needs --data (calibration images or a data.yaml)"
                )
            qat = None
            if args.qat is not None:
                from calibration.qat import QuantizationAware

                qat = QuantizationAware.from_args(args, source, manifest)
            images = select_images(calibration_images(args.data), args.images)
            check_calibration_images(images, args.data, allow_grayscale=args.allow_grayscale)
            score = None
            if args.val and args.method == "auto":
                from calibration.gate import map_scorer
                from edge.datasets import load_dataset

                score = map_scorer(manifest, load_dataset(args.val, splits=("val",)).val)
            result = quantize_int8(
                source,
                manifest,
                images,
                artifact,
                runtime=args.runtime,
                method=args.method,
                exclude=args.exclude or (),
                auto_exclude=args.auto_exclude,
                score=score,
                log=stderr_log,
            )
            if qat is not None:
                result = qat.fine_tune(args, images, artifact, result)
            write_cache(
                trt_cache_from(result, args.cache_tensorrt_version), staging / f"{name}.cache"
            )
        if args.precision == "fp16" or args.runtime == "tensorrt":
            _check_tensorrt_rules(artifact)
        if args.val:
            from calibration.gate import run_gate
            from edge.datasets import load_dataset

            report = run_gate(
                source,
                artifact,
                load_dataset(args.val, splits=("val",)).val,
                args.max_map_drop,
                overrides,
            )
            print(report.describe(), file=sys.stderr)
            report_text = json.dumps(report.to_dict(), indent=2)
            (staging / f"{name}.gate.json").write_text(report_text)
            if args.report:
                Path(args.report).parent.mkdir(parents=True, exist_ok=True)
                write_text_atomic(Path(args.report), report_text + "\n")
            if not report.passed:
                print(
                    f"jetkit: refused: {name} loses {report.map_drop:.2f} mAP50-95 points "
                    f"(limit {args.max_map_drop:.2f}); nothing written. Calibrate on images like "
                    "the deployment's, try --method, --exclude or --auto-exclude, fine-tune a jetkit "
                    "student with --qat 2, or raise --max-map-drop",
                    file=sys.stderr,
                )
                return 1
        for path in sorted(staging.iterdir()):
            os.replace(path, out_dir / path.name)
            print(out_dir / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return 0


def _check_tensorrt_rules(artifact: Path) -> None:
    """An artifact for TensorRT that no TensorRT jetkit targets would build is refused here,
    before it is written (`calibration.trt_rules`)."""
    from calibration.trt_rules.check import (
        DEFAULT_VERSIONS,
        check_versions,
        load_onnx,
        require_some_version_builds,
    )

    results = check_versions(load_onnx(artifact), DEFAULT_VERSIONS)
    require_some_version_builds(results, artifact.name, DEFAULT_VERSIONS, stderr_log)


def register_calibrate(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "calibrate",
        help="FP16 or INT8 (Q/DQ) artifacts from an FP32 ONNX, with an accuracy gate",
        description="INT8: a Q/DQ ONNX calibrated on images preprocessed as the model's manifest "
        "says (symmetric int8 for TensorRT, uint8 activations for ONNX Runtime on CPUs), plus a "
        "TensorRT calibration cache from the same ranges. FP16: float16 inside, float32 I/O. "
        "With --val the artifact is refused (exit 1) when mAP50-95 drops too much.",
    )
    parser.add_argument(
        "model", help="the FP32 ONNX model (its manifest embedded, beside it, or inferred)"
    )
    parser.add_argument("--precision", choices=("int8", "fp16"), required=True)
    parser.add_argument("--data", help="calibration images: a folder, or a data.yaml (train split)")
    parser.add_argument(
        "--runtime",
        choices=("tensorrt", "cpu"),
        default="tensorrt",
        help="what will run the INT8 model (default tensorrt)",
    )
    parser.add_argument(
        "--method",
        default="auto",
        metavar="METHOD",
        help="how activation ranges are chosen: auto, entropy, minmax, percentile or "
        "percentile:P. auto (default) tries entropy, percentiles 99.9/99.99/99.999 and minmax "
        "from one pass of histograms and keeps the best on --val; without --val it uses "
        "percentile:99.999, the best on jetkit's benchmark models",
    )
    parser.add_argument(
        "--images",
        type=int,
        default=256,
        help="calibration images to use (default 256; too few to histogram are refused)",
    )
    parser.add_argument(
        "--allow-grayscale",
        action="store_true",
        help="calibrate on grayscale images (only for cameras that really are monochrome)",
    )
    parser.add_argument("--exclude", nargs="+", metavar="NODE", help="nodes to keep in float")
    parser.add_argument(
        "--auto-exclude",
        type=int,
        default=0,
        metavar="N",
        help="also keep in float up to N layers (Conv, MatMul, Gemm) whose INT8 quantization moves "
        "the raw outputs most: each in float in turn, re-quantized from the same ranges and run "
        "on 8 of the images. Costs about a second per layer (a minute for a 60-conv model) and "
        "the chosen layers run in float (default 0)",
    )
    parser.add_argument(
        "--qat",
        type=int,
        metavar="EPOCHS",
        help="then fine-tune a jetkit student for EPOCHS with INT8 fake quantization from the "
        "calibrated ranges (torch; --data must be its data.yaml) and write it in the same Q/DQ "
        "layout: for a student whose PTQ the gate refuses",
    )
    parser.add_argument(
        "--checkpoint",
        help="with --qat: the training checkpoint of the model (default: the one its manifest "
        "records)",
    )
    parser.add_argument(
        "--qat-lr", type=float, default=1e-4, help="with --qat: learning rate (default 1e-4)"
    )
    parser.add_argument(
        "--qat-batch", type=int, default=16, help="with --qat: batch size (default 16)"
    )
    parser.add_argument(
        "--cache-tensorrt-version",
        default="8.6.1",
        help="TensorRT version in the calibration cache header (default 8.6.1)",
    )
    parser.add_argument("--val", help="data.yaml whose val split gates the artifact")
    parser.add_argument(
        "--max-map-drop",
        type=float,
        default=1.0,
        help="largest mAP50-95 loss in points (default 1.0)",
    )
    parser.add_argument(
        "--report",
        metavar="FILE",
        help="with --val: also write the gate report here, whether the artifact passed or not",
    )
    parser.add_argument("--out", help="output folder (default: beside the model)")
    add_manifest_overrides(parser)
    parser.set_defaults(handler=_calibrate)
