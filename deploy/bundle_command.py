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
    from deploy.bundle import build_index, collect_inputs, write_bundle
    from deploy.bundle_index import check_release_name, parse_bundle_name
    from edge.cli import stderr_log
    from edge.commands import overrides_from_args

    if args.inputs[0] == VERIFY:
        if len(args.inputs) != 2 or args.out or args.include_engine or args.sign:
            raise JetkitError(
                "usage: jetkit bundle verify FILE.jkb [--key PUB…] (one bundle, no other options)"
            )
        return _verify(Path(args.inputs[1]), [Path(k) for k in args.key or ()])
    if args.key:
        raise JetkitError("--key is for `jetkit bundle verify`; to sign a bundle, give --sign KEY")
    signing_key = None
    if args.sign:
        from deploy.signing import load_private_key

        signing_key = load_private_key(Path(args.sign))  # a bad key fails before any work
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
    write_bundle(out, index, inputs, signing_key)
    print(describe_index(index))
    if signing_key is not None:
        from deploy.signing import public_key_of

        print(f"signed by key {public_key_of(signing_key).key_id}")
    print(out)
    return 0


def _verify(bundle: Path, keys: Sequence[Path]) -> int:
    """Every member against the index; with `keys`, the signature against them too."""
    from deploy.bundle import verify_and_read_head
    from deploy.signing import parse_signature, read_public_key, verify_index

    public_keys = [read_public_key(k) for k in keys]
    head = verify_and_read_head(bundle)[0]
    print(describe_index(head.index))
    print(f"ok: every member of {bundle} matches its sha256")
    if public_keys:
        key = verify_index(head.index_bytes, head.signature, public_keys, f"bundle {bundle}")
        print(f"ok: signed by key {key.key_id} ({key.source})")
    elif head.signature is not None:
        key_id = parse_signature(head.signature, f"bundle {bundle}").key_id
        print(f"signed by key {key_id} (not checked: give --key PUB to check it)")
    else:
        print("not signed")
    return 0


def _keygen(args: argparse.Namespace) -> int:
    import getpass
    import socket

    from deploy.signing import PUBLIC_SUFFIX, generate_key
    from edge.atomic import write_bytes_atomic, write_text_atomic

    private_path = Path(args.out)
    public_path = private_path.with_name(private_path.name + PUBLIC_SUFFIX)
    for path in (private_path, public_path):
        if path.exists() and not args.force:
            raise JetkitError(f"{path} exists; keep it, or pass --force to replace the key pair")
    comment = args.comment or f"{getpass.getuser()}@{socket.gethostname()}"
    pem, public = generate_key(comment)
    write_bytes_atomic(private_path, pem, private=True)
    write_text_atomic(public_path, public.line())
    print(f"private key  {private_path} (keep it secret: it signs what devices will run)")
    print(f"public key   {public_path} (key {public.key_id})")
    print(
        "trust it on a device: install -D -m 0644 "
        f"{public_path.name} <device root>/trusted-keys/{public_path.name}"
    )
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
        "of every member's sha256, signed with --sign KEY. `jetkit bundle verify FILE.jkb [--key PUB]` "
        "checks one (and its signature).",
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
    parser.add_argument(
        "--sign",
        metavar="KEY",
        help="sign the bundle with this ed25519 private key (`jetkit keygen`); devices with a "
        "trust store take only signed bundles, and prebuilt engines only from them",
    )
    parser.add_argument(
        "--key",
        nargs="+",
        metavar="PUB",
        help="with verify: the public keys (.pub) the signature must be by",
    )
    parser.add_argument("--name", help="release name (default: from the -o file name)")
    parser.add_argument("--version", help="release version (default: from the -o file name)")
    add_manifest_overrides(parser)
    parser.set_defaults(handler=_bundle)


def register_keygen(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "keygen",
        help="make an ed25519 key pair for signing bundles",
        description="`jetkit keygen -o KEY` writes a private key KEY (mode 0600) and its public "
        "key KEY.pub. Sign bundles with `jetkit bundle --sign KEY`; a device whose "
        "ROOT/trusted-keys/ holds KEY.pub takes only bundles signed by a key there.",
    )
    parser.add_argument("-o", "--out", required=True, metavar="KEY", help="the private key file")
    parser.add_argument("--comment", help="a note in the public key (default: user@host)")
    parser.add_argument("--force", action="store_true", help="replace an existing key pair")
    parser.set_defaults(handler=_keygen)
