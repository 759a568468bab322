"""Building a TensorRT engine from an ONNX with TensorRT's Python API (8.5+ and 10.x).

The thin layer over TensorRT: every decision (INT8 mode, profile, file names, the engine key) is
made in `calibration.engine` and arrives here settled. The calls follow NVIDIA/TensorRT
samples/python/common.py and tools/Polygraphy (backend/trt/loader.py, calibrator.py) on
release/8.6 and release/10.x; where versions differ, `trt_versions.features_for_version`
decides (TensorRT 11: no precision flags, no calibrator, no explicit-batch flag).

`tensorrt` and CUDA are imported inside the functions only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from calibration.engine import BuildConfig, Int8Mode, Profile, static_batch
from calibration.trt_build_plan import (
    CalibrationFeed,
    DlaPlacement,
    attach_timing_cache,
    summarize_engine_layers,
)
from edge.atomic import write_bytes_atomic
from edge.backends import trt_versions
from edge.backends.tensorrt import Cuda, open_cuda, require_tensorrt, trt_logger
from edge.errors import JetkitError

if TYPE_CHECKING:
    import tensorrt as trt
    from typing_extensions import Buffer

Log = Callable[[str], None]


@dataclass(frozen=True)
class ImplicitCalibration:
    """What an implicit INT8 build calibrates from: input batches of `batch_size` images (or
    none, when the cache holds every scale), the cache file TensorRT reads first and writes
    after calibrating, the calibrator its algorithm needs (the cache header's name), and the
    images, for the engine key."""

    batches: Iterable[np.ndarray]
    batch_size: int
    cache_path: Path | None
    algorithm: str = "EntropyCalibration2"
    images: tuple[Path, ...] = ()

    def digest(self) -> str:
        """What the scales came from: the cache's sha256 once there is one, else the images'."""
        from calibration.data import calibration_digest
        from edge.models import file_sha256

        if self.cache_path is not None and self.cache_path.is_file():
            return file_sha256(self.cache_path)
        return calibration_digest(self.images)


@dataclass(frozen=True)
class BuiltEngine:
    plan: bytes
    tensorrt: str
    compute_capability: str
    device: str
    timing_cache: bytes | None
    build_s: float
    layers: dict[str, Any]  # the engine inspector's summary (`summarize_engine_layers`)
    dla: DlaPlacement | None


def build_engine(
    onnx_path: Path,
    config: BuildConfig,
    input_name: str,
    profile: Profile | None,
    mode: Int8Mode | None,
    calibration: ImplicitCalibration | None,
    log: Log,
    device: int = 0,
) -> BuiltEngine:
    """Parse `onnx_path` and build a serialized engine on CUDA device `device`."""
    version = require_tensorrt()
    features = trt_versions.features_for_version(version)
    cuda = open_cuda(device)
    try:
        with cuda.current():
            facts = cuda.device_facts()
            start = time.perf_counter()
            plan, timing_cache, dla = _build(
                onnx_path, config, input_name, profile, mode, calibration, log, features, cuda
            )
            build_s = time.perf_counter() - start
            layers = _inspect(plan, config.dla_core)
    finally:
        cuda.close()
    return BuiltEngine(
        plan=plan,
        tensorrt=version,
        compute_capability=str(facts["compute_capability"]),
        device=str(facts["device"]),
        timing_cache=timing_cache,
        build_s=build_s,
        layers=layers,
        dla=dla,
    )


def _build(
    onnx_path: Path,
    config: BuildConfig,
    input_name: str,
    profile: Profile | None,
    mode: Int8Mode | None,
    calibration: ImplicitCalibration | None,
    log: Log,
    features: trt_versions.TensorRTFeatures,
    cuda: Cuda,
) -> tuple[bytes, bytes | None, DlaPlacement | None]:
    import tensorrt as trt

    logger = trt_logger()
    builder = trt.Builder(logger)
    # 8.x needs the explicit-batch flag for ONNX; 10 has no other mode and 11 removed the flag.
    flags = 0
    if features.explicit_batch_flag:
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    # From the file, so that weights stored beside a large ONNX are found.
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise JetkitError(
            f"TensorRT cannot parse {onnx_path}: {errors[0] if errors else 'unknown error'}; "
            "re-export it (opset 17, `jetkit export`), or check the operator against TensorRT's "
            "ONNX support matrix (`jetkit check`)"
        )
    builder_config = builder.create_builder_config()
    builder_config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, config.workspace_bytes)
    # The engine inspector reports per-layer detail only for engines built with DETAILED.
    builder_config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    if features.precision_flags:
        _set_precision_flags(builder, builder_config, config.precision, log)
    if profile is not None:
        optimization_profile = builder.create_optimization_profile()
        optimization_profile.set_shape(input_name, *(trt.Dims(list(s)) for s in profile))
        builder_config.add_optimization_profile(optimization_profile)
    feed = None
    if mode == "implicit":
        if calibration is None:
            raise JetkitError("an implicit INT8 build needs calibration images or a cache")
        feed = CalibrationFeed(calibration.batches, calibration.batch_size)
        _use_calibrator(
            builder, builder_config, calibration, feed, input_name, profile, features, cuda, log
        )
    dla = None
    if config.dla_core is not None:
        dla = _use_dla(builder, builder_config, network, config.dla_core, str(onnx_path))
    timing_cache = None
    if config.timing_cache is not None:
        previous = config.timing_cache.read_bytes() if config.timing_cache.is_file() else b""
        # ignore_mismatch=False: timings from another GPU or TensorRT would pick wrong tactics.
        timing_cache = attach_timing_cache(
            previous,
            builder_config.create_timing_cache,
            lambda cache: bool(builder_config.set_timing_cache(cache, False)),
            str(config.timing_cache),
            log,
        )
    log(f"building {config.precision} engine from {onnx_path} (minutes on a Jetson)")
    serialized = builder.build_serialized_network(network, builder_config)
    if feed is not None:
        feed.raise_if_failed()
    # The stubs say IHostMemory; the binding returns None when the build fails.
    if serialized is None:
        raise JetkitError(
            f"TensorRT could not build {onnx_path} (see its log above); when it ran out of "
            "memory, give a smaller --workspace (256M on a Nano) and close other GPU programs"
        )
    cache_bytes = bytes(timing_cache.serialize()) if timing_cache is not None else None
    return bytes(serialized), cache_bytes, dla


def _set_precision_flags(
    builder: trt.Builder, builder_config: trt.IBuilderConfig, precision: str, log: Log
) -> None:
    """Weak typing (TensorRT < 11): the builder may pick FP16/INT8 kernels per layer."""
    import tensorrt as trt

    if precision in ("fp16", "int8"):
        if not builder.platform_has_fast_fp16:
            log("warning: this GPU has no fast FP16; the engine may be no faster than FP32")
        # INT8 builds also allow FP16, for the layers kept in float (trtexec --int8 --fp16).
        builder_config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        # Explicit (Q/DQ) networks need it as well on 8.x ("Q/DQ networks must be built with
        # the INT8-precision builder flag enabled", TensorRT 8 Developer Guide).
        builder_config.set_flag(trt.BuilderFlag.INT8)


def _use_calibrator(
    builder: trt.Builder,
    builder_config: trt.IBuilderConfig,
    calibration: ImplicitCalibration,
    feed: CalibrationFeed,
    input_name: str,
    profile: Profile | None,
    features: trt_versions.TensorRTFeatures,
    cuda: Cuda,
    log: Log,
) -> None:
    """Implicit INT8 (TensorRT < 11; `engine.int8_mode` refuses it on 11)."""
    import tensorrt as trt

    builder_config.int8_calibrator = _calibrator(calibration, feed, input_name, cuda, log)
    if profile is not None and static_batch(profile) is None and features.calibration_profile:
        # Below 10 a dynamic batch calibrates at the calibration profile's shape; from 10 the
        # call is deprecated and reported to cause internal errors (Ultralytics gates it the
        # same way), and TensorRT calibrates at profile 0's opt shape instead.
        calibration_shape = trt.Dims([calibration.batch_size, *profile[0][1:]])
        calibration_profile = builder.create_optimization_profile()
        calibration_profile.set_shape(
            input_name, calibration_shape, calibration_shape, calibration_shape
        )
        builder_config.set_calibration_profile(calibration_profile)


def _use_dla(
    builder: trt.Builder,
    builder_config: trt.IBuilderConfig,
    network: trt.INetworkDefinition,
    core: int,
    model: str,
) -> DlaPlacement:
    """Put the network on DLA core `core` with GPU fallback, and say which layers TensorRT
    can run there (`can_run_on_DLA`); refuse when none can."""
    import tensorrt as trt

    count = builder.num_DLA_cores
    if count == 0:
        raise JetkitError(
            "this device has no DLA (Xavier and Orin AGX/NX have DLA cores; Orin Nano and "
            "desktop GPUs do not); build without --dla"
        )
    if core >= count:
        raise JetkitError(f"--dla {core}: this device has DLA cores 0 to {count - 1}")
    builder_config.default_device_type = trt.DeviceType.DLA
    builder_config.DLA_core = core
    # Layers the DLA cannot run (e.g. the decode) run on the GPU rather than failing the build.
    builder_config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    placement = DlaPlacement.from_layers(
        [(layer.name, bool(builder_config.can_run_on_DLA(layer))) for layer in layers]
    )
    placement.require_some_on_dla(model)
    return placement


def _inspect(plan: bytes, dla_core: int | None) -> dict[str, Any]:
    """The engine inspector's layer summary of the built plan."""
    import tensorrt as trt

    runtime = trt.Runtime(trt_logger())
    if dla_core is not None:
        runtime.DLA_core = dla_core
    engine = runtime.deserialize_cuda_engine(plan)
    if engine is None:
        return {}
    inspector = engine.create_engine_inspector()
    return summarize_engine_layers(
        inspector.get_engine_information(trt.LayerInformationFormat.JSON)
    )


def _calibrator(
    calibration: ImplicitCalibration, feed: CalibrationFeed, input_name: str, cuda: Cuda, log: Log
) -> trt.IInt8Calibrator:
    """A calibrator feeding `feed` to TensorRT through one device buffer. It derives from
    `IInt8Calibrator` and names its algorithm, as Polygraphy's does, so that one class serves
    both cache kinds jetkit writes (entropy and min-max). Whatever goes wrong while reading the
    data stays in `feed` (TensorRT's wrapper would swallow it) and is raised after the build."""
    import tensorrt as trt

    algorithms = {
        "EntropyCalibration2": trt.CalibrationAlgoType.ENTROPY_CALIBRATION_2,
        "MinMaxCalibration": trt.CalibrationAlgoType.MINMAX_CALIBRATION,
    }
    if calibration.algorithm not in algorithms:
        raise JetkitError(
            f"calibration cache algorithm {calibration.algorithm!r} is not one jetkit builds "
            f"with ({', '.join(algorithms)}); recalibrate with `jetkit calibrate`"
        )
    algorithm = algorithms[calibration.algorithm]

    class Calibrator(trt.IInt8Calibrator):
        def __init__(self) -> None:
            # The bindings crash without the base initializer (Polygraphy calibrator.py).
            trt.IInt8Calibrator.__init__(self)
            self._host: np.ndarray | None = None
            self._device_ptr = 0

        def get_algorithm(self) -> trt.CalibrationAlgoType:
            return algorithm

        def get_batch_size(self) -> int:
            return calibration.batch_size

        # None ends the data, as in NVIDIA's samples; the stubs only allow a list.
        def get_batch(self, names: list[str]) -> list[int] | None:  # type: ignore[override]
            if names != [input_name]:
                feed.error = JetkitError(
                    f"calibration feeds {input_name!r} only, TensorRT asks {names}"
                )
                return None
            batch = feed.next_batch()
            if batch is None:
                return None
            if self._host is None:
                self._host = cuda.pinned_empty(batch.nbytes, str(batch.dtype))
                self._device_ptr = cuda.device_alloc(batch.nbytes)
            np.copyto(self._host, batch.reshape(-1))
            cuda.copy_h2d_async(self._device_ptr, self._host)
            cuda.synchronize()
            if feed.used % 32 == 0:
                log(f"calibrated {feed.used} batches")
            return [self._device_ptr]

        # None means "no cache: calibrate".
        def read_calibration_cache(self) -> bytes | None:
            path = calibration.cache_path
            return path.read_bytes() if path is not None and path.is_file() else None

        def write_calibration_cache(self, cache: Buffer) -> None:
            if calibration.cache_path is not None:
                write_bytes_atomic(calibration.cache_path, bytes(memoryview(cache)))

    return Calibrator()
