"""`jetkit build`: a TensorRT engine from an ONNX (FP32, FP16 or INT8, explicit or implicit), with
its manifest, beside the model or where --out says.

Everything that can be checked without TensorRT is checked first, so a wrong flag fails the same
way on a laptop as on a Jetson; `--print-trtexec` needs no TensorRT at all. Only argparse at
import time.
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from edge.cli import stderr_log
from edge.errors import JetkitError

if TYPE_CHECKING:
    import numpy as np

    from calibration.engine import BuildConfig, Profile
    from calibration.trt_builder import ImplicitCalibration
    from calibration.trt_cache import CalibrationCache
    from edge.backends.trt_versions import TensorRTFeatures
    from edge.manifest import Manifest

# How often a long build says it is still running (Jetson builds take minutes).
HEARTBEAT_S = 30.0


@contextmanager
def _heartbeat(what: str, every_s: float = HEARTBEAT_S) -> Iterator[None]:
    done = threading.Event()

    def beat() -> None:
        elapsed_s = 0.0
        while not done.wait(every_s):
            elapsed_s += every_s
            stderr_log(f"{what}: still running, {elapsed_s:.0f} s")

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _build(args: argparse.Namespace) -> int:
    from calibration.engine import (
        BuildConfig,
        EngineKey,
        batch_profile,
        check_engine_path,
        default_engine_path,
        engine_manifest,
        format_command,
        int8_mode,
        parse_size_bytes,
        trtexec_command,
    )
    from edge.backends.tensorrt import tensorrt_missing
    from edge.backends.trt_versions import features_for_version
    from edge.detector import Detector

    source = Path(args.model)
    if source.suffix != ".onnx":
        raise JetkitError(f"{source} is not an ONNX model; `jetkit build` takes a .onnx file")
    config = BuildConfig(
        precision=args.precision,
        max_batch=args.max_batch,
        opt_batch=args.opt_batch,
        batch=args.batch,
        workspace_bytes=parse_size_bytes(args.workspace),
        dla_core=args.dla,
        timing_cache=Path(args.timing_cache) if args.timing_cache else None,
        calib_cache=Path(args.calib_cache) if args.calib_cache else None,
    )
    missing = tensorrt_missing()
    version = _target_version(args.tensorrt, missing)
    features = features_for_version(version)
    manifest = Detector.open(source).manifest
    artifact = manifest.artifact
    kind = artifact.kind if artifact else "onnx"
    mode = int8_mode(kind, config, args.data is not None, source, features)
    cache = _read_calib_cache(config.calib_cache) if mode == "implicit" else None
    profile = batch_profile(manifest.input, config)
    out = (
        Path(args.out)
        if args.out
        else default_engine_path(source, artifact.precision if artifact else "fp32", config)
    )
    check_engine_path(out, source)
    _check_rules(source, config, profile, kind, version)
    command = format_command(
        trtexec_command(source, out, config, manifest.input.name, profile, mode, features)
    )
    if args.print_trtexec:
        print(command)
        return 0
    if missing is not None:
        raise JetkitError(
            f"TensorRT is not installed here ({missing}); build the engine on the Jetson that "
            f"will run it (`jetkit flash` does), or run there: {command}"
        )

    from calibration.trt_builder import build_engine
    from edge.jetson import read_l4t_release
    from edge.models import file_sha256

    calibration = (
        _implicit_calibration(args.data, args.images, manifest, config, profile, cache, features)
        if mode == "implicit"
        else None
    )
    with _heartbeat(f"building {out.name}"):
        built = build_engine(
            source, config, manifest.input.name, profile, mode, calibration, stderr_log
        )
    max_batch = profile[2][0] if profile else manifest.input.shape[0]
    key = EngineKey(
        onnx_sha256=file_sha256(source),
        precision=config.precision,
        tensorrt=built.tensorrt,
        compute_capability=built.compute_capability,
        dla_core=config.dla_core,
        max_batch=max_batch,
        calibration_sha256=calibration.digest() if calibration is not None else None,
    )
    engine = engine_manifest(
        manifest,
        source,
        out,
        config,
        key,
        read_l4t_release(),
        profile,
        {
            "int8_mode": mode,
            "calibration_cache": str(config.calib_cache) if config.calib_cache else None,
            "device": built.device,
            "build_s": round(built.build_s, 1),
            "trtexec": command,
            "layers": built.layers,
            **({"dla": built.dla.to_dict()} if built.dla is not None else {}),
        },
    )
    from calibration.artifacts import write_model_file
    from edge.atomic import write_bytes_atomic

    if config.timing_cache is not None and built.timing_cache:
        write_bytes_atomic(config.timing_cache, built.timing_cache)
    write_model_file(built.plan, engine, out)
    where = f"; {built.dla.describe()}" if built.dla is not None else ""
    stderr_log(
        f"built {out} in {built.build_s:.0f} s on {built.device} (sm {built.compute_capability}, "
        f"TensorRT {built.tensorrt}); engine key {key.name}{where}"
    )
    print(out)
    return 0


# Without TensorRT here (--print-trtexec, a laptop), the rules are checked for JetPack 6's.
DEFAULT_TARGET_TENSORRT = "10.3"


def _target_version(requested: str | None, missing: str | None) -> str:
    """The TensorRT the build is for: the installed one, else `--tensorrt`, else JetPack 6's."""
    if missing is not None:
        return requested or DEFAULT_TARGET_TENSORRT
    from edge.backends.tensorrt import require_tensorrt
    from edge.backends.trt_versions import parse_version

    installed = require_tensorrt()
    wanted = parse_version(requested) if requested else ()
    if wanted and parse_version(installed)[: len(wanted)] != wanted:
        raise JetkitError(
            f"--tensorrt {requested}: this machine has TensorRT {installed}, and engines only "
            "run on the TensorRT that built them; drop --tensorrt, or build on a device with it"
        )
    return installed


def _check_rules(
    source: Path, config: BuildConfig, profile: Profile | None, kind: str, version: str
) -> None:
    """TensorRT's documented rules on the host, before TensorRT is touched
    (`calibration.trt_rules`). On a device without the `onnx` package, the check that
    `jetkit bundle` and `jetkit flash` ran on the host stands."""
    from calibration.engine import static_batch
    from calibration.trt_rules.check import (
        CheckTarget,
        check_model,
        load_onnx,
        onnx_available,
        require_buildable,
    )
    from calibration.trt_rules.dla import generation_of
    from edge.jetson import read_device_model

    if not onnx_available():
        stderr_log(
            "warning: the onnx package is not installed here, so TensorRT's rules are not "
            "checked before building (`pip install onnx`)"
        )
        return
    dla = generation_of(read_device_model()) if config.dla_core is not None else None
    target = CheckTarget(version, config.precision, dla, static_batch(profile))
    findings = check_model(load_onnx(source), target, artifact_kind=kind)
    require_buildable(findings, str(source), version, log=stderr_log)


def _read_calib_cache(path: Path | None) -> CalibrationCache | None:
    """The parsed cache when there is one: a corrupt or foreign file fails here, by name,
    rather than deep inside TensorRT."""
    if path is None or not path.is_file():
        return None
    from calibration.trt_cache import read_cache

    return read_cache(path)


def _implicit_calibration(
    data: str | None,
    image_count: int,
    manifest: Manifest,
    config: BuildConfig,
    profile: Profile | None,
    cache: CalibrationCache | None,
    features: TensorRTFeatures,
) -> ImplicitCalibration:
    from calibration.data import CalibrationBatches, calibration_images, select_images
    from calibration.engine import calibration_batch_size
    from calibration.trt_builder import ImplicitCalibration

    batch_size = calibration_batch_size(profile, manifest.input.shape[0], features)
    batches: Iterable[np.ndarray] = ()
    images: list[Path] = []
    if data is not None:
        images = select_images(calibration_images(data), image_count)
        batches = CalibrationBatches(images, manifest, batch=batch_size)
    algorithm = cache.algorithm if cache is not None else "EntropyCalibration2"
    return ImplicitCalibration(batches, batch_size, config.calib_cache, algorithm, tuple(images))


def register_build(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "build",
        help="build a TensorRT engine from an ONNX model (on the device that will run it)",
        description="Builds with TensorRT's Python API (8.5+ and 10.x). INT8: explicit from a "
        "Q/DQ ONNX (`jetkit calibrate --precision int8`), or implicit from an FP32 ONNX with "
        "--calib-cache and/or --data. The engine gets a manifest with its target (TensorRT "
        "version, compute capability, L4T, DLA core) and engine key. --print-trtexec prints "
        "the equivalent trtexec command and builds nothing (works without TensorRT).",
    )
    parser.add_argument("model", help="the ONNX model (FP32, FP16 or INT8 Q/DQ, with manifest)")
    parser.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp16")
    parser.add_argument(
        "--calib-cache",
        metavar="FILE",
        help="TensorRT calibration cache for implicit INT8: read when it exists, written after "
        "calibrating with --data",
    )
    parser.add_argument("--data", help="calibration images (folder or data.yaml) for implicit INT8")
    parser.add_argument("--images", type=int, default=256, help="calibration images to use")
    parser.add_argument(
        "--dla",
        type=int,
        metavar="N",
        help="DLA core, with GPU fallback; builds one static batch (--batch, default the "
        "manifest's max) and records which layers fell back to the GPU",
    )
    parser.add_argument(
        "--batch", type=int, help="build for this one batch size (static profile; DLA builds)"
    )
    parser.add_argument(
        "--tensorrt",
        metavar="VERSION",
        help="without TensorRT here: the version to check the model and --print-trtexec for "
        f"(default {DEFAULT_TARGET_TENSORRT}, JetPack 6); with TensorRT, the installed one",
    )
    parser.add_argument(
        "--workspace",
        default="1G",
        help="builder workspace limit, e.g. 256M on a Nano (default 1G)",
    )
    parser.add_argument("--timing-cache", metavar="FILE", help="timing cache to reuse and update")
    parser.add_argument(
        "--max-batch", type=int, help="largest batch (dynamic-batch models; default: manifest)"
    )
    parser.add_argument(
        "--opt-batch", type=int, help="batch TensorRT tunes for (default: the max batch)"
    )
    parser.add_argument("--out", help="engine file (default: beside the model, *-trt-*.engine)")
    parser.add_argument(
        "--print-trtexec",
        action="store_true",
        help="print the equivalent trtexec command line and exit",
    )
    parser.set_defaults(handler=_build)
