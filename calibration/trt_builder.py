"""Building a TensorRT engine from an ONNX with TensorRT's Python API (8.5+ and 10.x).

The thin layer over TensorRT: every decision (INT8 mode, profile, file names, the engine key) is
made in `calibration.engine` and arrives here settled. The calls follow NVIDIA/TensorRT
samples/python/common.py and tools/Polygraphy (backend/trt/loader.py, calibrator.py) on
release/8.6 and release/10.x; where the two APIs differ, `trt_plan.api_for_version` decides.

`tensorrt` and CUDA are imported inside the functions only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from calibration.engine import BuildConfig, Int8Mode, Profile
from edge.atomic import write_bytes_atomic
from edge.backends import trt_plan
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
    after calibrating, and the calibrator its algorithm needs (the cache header's name)."""

    batches: Iterable[np.ndarray]
    batch_size: int
    cache_path: Path | None
    algorithm: str = "EntropyCalibration2"


@dataclass(frozen=True)
class BuiltEngine:
    plan: bytes
    tensorrt: str
    compute_capability: str
    device: str
    timing_cache: bytes | None
    build_s: float


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
    api = trt_plan.api_for_version(version)
    cuda = open_cuda(device)
    try:
        with cuda.current():
            facts = cuda.device_facts()
            start = time.perf_counter()
            plan, timing_cache = _build(
                onnx_path, config, input_name, profile, mode, calibration, log, api, cuda
            )
            build_s = time.perf_counter() - start
    finally:
        cuda.close()
    return BuiltEngine(
        plan=plan,
        tensorrt=version,
        compute_capability=str(facts["compute_capability"]),
        device=str(facts["device"]),
        timing_cache=timing_cache,
        build_s=build_s,
    )


def _build(
    onnx_path: Path,
    config: BuildConfig,
    input_name: str,
    profile: Profile | None,
    mode: Int8Mode | None,
    calibration: ImplicitCalibration | None,
    log: Log,
    api: trt_plan.ApiKind,
    cuda: Cuda,
) -> tuple[bytes, bytes | None]:
    import tensorrt as trt

    logger = trt_logger()
    builder = trt.Builder(logger)
    # 8.x needs the explicit-batch flag for ONNX; 10.x has no other mode and ignores it.
    flags = 0 if api == "tensors" else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    # From the file, so that weights stored beside a large ONNX are found.
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise JetkitError(
            f"TensorRT cannot parse {onnx_path}: {errors[0] if errors else 'unknown error'}; "
            "re-export it (opset 17, `jetkit export`), or check the operator against TensorRT's "
            "ONNX support matrix"
        )
    builder_config = builder.create_builder_config()
    builder_config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, config.workspace_bytes)
    if config.precision in ("fp16", "int8"):
        if not builder.platform_has_fast_fp16:
            log("warning: this GPU has no fast FP16; the engine may be no faster than FP32")
        # INT8 builds also allow FP16, for the layers kept in float (trtexec --int8 --fp16).
        builder_config.set_flag(trt.BuilderFlag.FP16)
    if config.precision == "int8":
        builder_config.set_flag(trt.BuilderFlag.INT8)
    if profile is not None:
        optimization_profile = builder.create_optimization_profile()
        optimization_profile.set_shape(input_name, *(trt.Dims(list(s)) for s in profile))
        builder_config.add_optimization_profile(optimization_profile)
    calibrator = None
    if mode == "implicit":
        if calibration is None:
            raise JetkitError("an implicit INT8 build needs calibration images or a cache")
        calibrator = _calibrator(calibration, input_name, cuda, log)
        builder_config.int8_calibrator = calibrator
        if profile is not None:
            # With a dynamic batch TensorRT calibrates at the calibration profile's shape.
            calibration_shape = trt.Dims([calibration.batch_size, *profile[0][1:]])
            calibration_profile = builder.create_optimization_profile()
            calibration_profile.set_shape(
                input_name, calibration_shape, calibration_shape, calibration_shape
            )
            builder_config.set_calibration_profile(calibration_profile)
    if config.dla_core is not None:
        _use_dla(builder, builder_config, config.dla_core)
    timing_cache = _attach_timing_cache(builder_config, config.timing_cache, log)
    log(f"building {config.precision} engine from {onnx_path} (minutes on a Jetson)")
    serialized = builder.build_serialized_network(network, builder_config)
    # The stubs say IHostMemory; the binding returns None when the build fails.
    if serialized is None:
        raise JetkitError(
            f"TensorRT could not build {onnx_path} (see its log above); when it ran out of "
            "memory, give a smaller --workspace (256M on a Nano) and close other GPU programs"
        )
    cache_bytes = bytes(timing_cache.serialize()) if timing_cache is not None else None
    return bytes(serialized), cache_bytes


def _use_dla(builder: trt.Builder, builder_config: trt.IBuilderConfig, core: int) -> None:
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


def _attach_timing_cache(
    builder_config: trt.IBuilderConfig, path: Path | None, log: Log
) -> trt.ITimingCache | None:
    if path is None:
        return None
    previous = path.read_bytes() if path.is_file() else b""
    cache = builder_config.create_timing_cache(previous)
    # ignore_mismatch=False: timings from another GPU or TensorRT would pick wrong tactics.
    if not builder_config.set_timing_cache(cache, False):
        log(f"warning: {path} is from another GPU or TensorRT version; starting a new one")
        cache = builder_config.create_timing_cache(b"")
        builder_config.set_timing_cache(cache, False)
    elif previous:
        log(f"reusing timing cache {path}")
    return cache


def _calibrator(
    calibration: ImplicitCalibration, input_name: str, cuda: Cuda, log: Log
) -> trt.IInt8Calibrator:
    """A calibrator feeding `calibration.batches` to TensorRT through one device buffer. It
    derives from `IInt8Calibrator` and names its algorithm, as Polygraphy's does, so that one
    class serves both cache kinds jetkit writes (entropy and min-max)."""
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
            self._batches: Iterator[np.ndarray] = iter(calibration.batches)
            self._host: np.ndarray | None = None
            self._device_ptr = 0
            self.batches_used = 0

        def get_algorithm(self) -> trt.CalibrationAlgoType:
            return algorithm

        def get_batch_size(self) -> int:
            return calibration.batch_size

        # None ends the data, as in NVIDIA's samples; the stubs only allow a list.
        def get_batch(self, names: list[str]) -> list[int] | None:  # type: ignore[override]
            if names != [input_name]:
                raise JetkitError(f"calibration feeds {input_name!r} only, TensorRT asks {names}")
            for batch in self._batches:
                if batch.shape[0] != calibration.batch_size:
                    continue  # a short last batch: TensorRT's calibration shape is fixed
                if self._host is None:
                    self._host = cuda.pinned_empty(batch.nbytes, str(batch.dtype))
                    self._device_ptr = cuda.device_alloc(batch.nbytes)
                np.copyto(self._host, batch.reshape(-1))
                cuda.copy_h2d_async(self._device_ptr, self._host)
                cuda.synchronize()
                self.batches_used += 1
                if self.batches_used % 32 == 0:
                    log(f"calibrated {self.batches_used} batches")
                return [self._device_ptr]
            return None

        # None means "no cache: calibrate".
        def read_calibration_cache(self) -> bytes | None:
            path = calibration.cache_path
            return path.read_bytes() if path is not None and path.is_file() else None

        def write_calibration_cache(self, cache: Buffer) -> None:
            if calibration.cache_path is not None:
                write_bytes_atomic(calibration.cache_path, bytes(memoryview(cache)))

    return Calibrator()
