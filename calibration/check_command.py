"""`jetkit check MODEL`: TensorRT's documented rules over an ONNX model, without TensorRT.

Each finding names the node, the rule and NVIDIA's source for it, and the TensorRT versions it
applies to; exit status 1 when any is an error. Only argparse at import time.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge.errors import JetkitError


def _check(args: argparse.Namespace) -> int:
    from calibration.engine import ENGINE_SUFFIXES
    from calibration.trt_rules.check import DEFAULT_VERSIONS, check_versions, load_onnx
    from calibration.trt_rules.findings import errors
    from calibration.trt_rules.graph import KIND_PRECISION, GraphView, artifact_kind_of

    model_path = Path(args.model)
    if model_path.suffix in ENGINE_SUFFIXES:
        raise JetkitError(
            f"{model_path} is a TensorRT engine; check the ONNX it is built from "
            "(an engine that loads has passed TensorRT's own checks)"
        )
    if not model_path.is_file():
        raise JetkitError(f"model {model_path} not found; give the path of an .onnx file")
    if args.batch is not None and args.dla is None:
        raise JetkitError("--batch is the static batch of a DLA build; give --dla too")
    model = load_onnx(model_path)
    kind = artifact_kind_of(GraphView(model))
    versions = tuple(args.tensorrt or DEFAULT_VERSIONS)
    results = check_versions(
        model, versions, args.precision, args.dla, args.batch, artifact_kind=kind
    )
    error_count = len(errors(finding for finding, _ in results))
    if args.json:
        print(
            json.dumps(
                {
                    "model": str(model_path),
                    "kind": kind,
                    "tensorrt": list(versions),
                    "errors": error_count,
                    "findings": [
                        {**finding.to_dict(), "tensorrt": list(found_in)}
                        for finding, found_in in results
                    ],
                },
                indent=2,
            )
        )
    else:
        for finding, found_in in results:
            print(f"{finding.describe()} [TensorRT {', '.join(found_in)}]")
        warnings = len(results) - error_count
        target = f" for the DLA ({args.dla})" if args.dla else ""
        print(
            f"{model_path}: {KIND_PRECISION[kind].upper()} model, {error_count} error(s), "
            f"{warnings} warning(s) on TensorRT {', '.join(versions)}{target}"
        )
    return 1 if error_count else 0


def register_check(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check",
        help="check an ONNX model against TensorRT's documented rules (no TensorRT needed)",
        description="Operators and attributes TensorRT's ONNX parser takes, Q/DQ validity and "
        "placement, DLA restrictions, and I/O types, per TensorRT version. Each finding names "
        "the node, the rule and its source. Exit status 1 when there are errors.",
    )
    parser.add_argument("model", help="the ONNX model (FP32, FP16 or INT8 Q/DQ)")
    parser.add_argument(
        "--tensorrt",
        action="append",
        metavar="VERSION",
        help="TensorRT version to check for, e.g. 8.6, 10.3, 11.4.1; repeat for several "
        "(default: 8.5, 8.6, 10.3 and 11.4.1)",
    )
    parser.add_argument(
        "--precision",
        choices=("fp32", "fp16", "int8"),
        help="the build's precision (default: the model's own)",
    )
    parser.add_argument(
        "--dla",
        nargs="?",
        const="orin",
        choices=("orin", "xavier"),
        help="also check for a DLA build on this Jetson generation (default orin)",
    )
    parser.add_argument("--batch", type=int, help="the static batch of the DLA build")
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    parser.set_defaults(handler=_check)
