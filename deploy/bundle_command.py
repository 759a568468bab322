"""`jetkit bundle MODEL… -o NAME-VERSION.jkb` and `jetkit bundle verify FILE`. Only argparse at
import time."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.commands import add_manifest_overrides
from edge.errors import JetkitError

if TYPE_CHECKING:
    from deploy.bundle_index import BundleIndex

VERIFY = "verify"


def describe_index(index: BundleIndex) -> str:
    """What a bundle holds, for the terminal: release, models, engines, then every member."""
    lines = [f"bundle {index.release} (format {index.format_version})"]
    for model in index.models:
        lines.append(f"  model   {model.file}  {model.kind} {model.precision}")
    for engine in index.engines:
        lines.append(f"  engine  {engine.file}  {engine.key.get('name', '?')}")
    for member in index.members:
        lines.append(
            f"  {member.sha256[:16]}  {member.size_bytes:>12,d}  {member.role:<17} {member.path}"
        )
    return "\n".join(lines)


def _bundle(args: argparse.Namespace) -> int:
    from deploy.bundle import build_index, collect_inputs, verify_bundle, write_bundle
    from deploy.bundle_index import check_release_name, parse_bundle_name
    from edge.cli import stderr_log
    from edge.commands import overrides_from_args

    if args.inputs[0] == VERIFY:
        if len(args.inputs) != 2 or args.out or args.include_engine:
            raise JetkitError("usage: jetkit bundle verify FILE.jkb (one bundle, no other options)")
        index = verify_bundle(args.inputs[1])
        print(describe_index(index))
        print(f"ok: every member of {args.inputs[1]} matches its sha256")
        return 0
    if not args.out:
        raise JetkitError("jetkit bundle needs -o NAME-VERSION.jkb, the bundle to write")
    out = Path(args.out)
    if args.name and args.version:
        name, version = args.name, args.version
    else:
        name, version = parse_bundle_name(out)
        name, version = args.name or name, args.version or version
    check_release_name(name, "name")
    check_release_name(version, "version")
    inputs, keys = collect_inputs(
        args.inputs, args.include_engine or (), overrides_from_args(args), stderr_log
    )
    index = build_index(name, version, inputs, keys)
    _check_tensorrt_rules(index, inputs, stderr_log)
    write_bundle(out, index, inputs)
    print(describe_index(index))
    print(out)
    return 0


def _check_tensorrt_rules(
    index: BundleIndex, inputs: Sequence[Any], log: Callable[[str], None]
) -> None:
    from calibration.trt_rules.check import DEFAULT_VERSIONS, onnx_available
    from deploy.trt_checks import check_bundle

    if not onnx_available():
        log("note: the onnx package is not installed here: TensorRT's rules were not checked")
        return
    by_path = {item.path: item for item in inputs}

    def read(path: str) -> bytes:
        with by_path[path].open() as handle:
            return bytes(handle.read())

    check_bundle(index, read, DEFAULT_VERSIONS, log)


def register_bundle(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bundle",
        help="pack models, manifests, calibration caches and engines into one .jkb file",
        description="`jetkit bundle MODEL_DIR_OR_ONNX… -o NAME-VERSION.jkb` packs every ONNX with "
        "its manifest (beside it, embedded, or inferred as `jetkit inspect` does: marked so, with "
        "the guessed fields listed; a folder: all of its ONNX models, TensorRT calibration caches and gate "
        "reports), and prebuilt engines given with --include-engine, into one tar with an index "
        "of every member's sha256. `jetkit bundle verify FILE.jkb` checks one.",
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="MODEL_DIR_OR_ONNX",
        help="model folders or ONNX files (or: verify FILE.jkb)",
    )
    parser.add_argument("-o", "--out", help="the bundle to write, NAME-VERSION.jkb")
    parser.add_argument(
        "--include-engine",
        nargs="+",
        metavar="ENGINE",
        help="prebuilt TensorRT engines (built by `jetkit build`, with their manifests)",
    )
    parser.add_argument("--name", help="release name (default: from the -o file name)")
    parser.add_argument("--version", help="release version (default: from the -o file name)")
    add_manifest_overrides(parser)
    parser.set_defaults(handler=_bundle)
