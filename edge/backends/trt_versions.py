"""The one place that knows what each TensorRT version offers. The backend, the engine builder
and the host-side rule checks ask here instead of testing versions themselves.

Sources, per gate:
- the bindings API (`num_bindings`, `execute_async_v2`) exists up to 8.x; 10 removed it
  (TensorRT 10 migration guide; NVIDIA/TensorRT samples/python/common_runtime.py);
- `NetworkDefinitionCreationFlag.EXPLICIT_BATCH` is required for ONNX on 8.x, the only mode on
  10 and removed on 11 (NVIDIA/TensorRT `git diff release/10.16 release/11.0 -- python/src`);
- implicit INT8 (`IInt8Calibrator`, `int8_calibrator`) is deprecated from 10.1 and removed in 11,
  as are the weak-typing precision flags `BuilderFlag.FP16/INT8` and
  `platform_has_fast_fp16`: TensorRT 11 builds strongly typed networks only, precision comes
  from the ONNX's tensor types and Q/DQ nodes ("TensorRT 10.x to 11.x Python API" migration
  reference, docs.nvidia.com/deeplearning/tensorrt/latest/api/migration/);
- `set_calibration_profile` exists until 11 but is only safe before 10: Ultralytics' exporter
  gates it below 10 ("deprecated in TensorRT 10, causes internal errors",
  ultralytics/utils/export/engine.py);
- INT8 weight initializers before a DequantizeLinear are rejected by 8.x ("invalid weights
  type of Int8", NVIDIA/TensorRT#2163) and taken from 9/10 (IConstantLayer "output type is
  weights.type" from release/9.0 NvInfer.h); FP8/INT4 Q/DQ and INT64 I/O from 10
  (onnx-tensorrt docs/operators.md per release);
- DLA: on 8.x and 10.x; absent from 11.0 to 11.3 and back in 11.4.1 on Jetson AGX Orin with
  JetPack 7.2.2+ ("TensorRT 10.x to 11.x for Jetson" migration notes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from edge.errors import JetkitError

ApiKind = Literal["bindings", "tensors"]

MIN_TENSORRT_VERSION = (8, 5)
# The first TensorRT 11 release with DLA again (Jetson AGX Orin, JetPack 7.2.2+).
_DLA_BACK_IN_11 = (11, 4, 1)


def parse_version(text: str) -> tuple[int, ...]:
    """`"8.6.1.6"` → `(8, 6, 1, 6)`; a suffix after the numbers (`"10.3.0.post1"`) is ignored."""
    match = re.match(r"\s*(\d+(?:\.\d+)*)", text)
    if match is None:
        raise JetkitError(f"cannot read a version number from {text!r}")
    return tuple(int(part) for part in match.group(1).split("."))


def _check_supported(version: str) -> tuple[int, ...]:
    parsed = parse_version(version)
    if parsed[:2] < MIN_TENSORRT_VERSION:
        minimum = ".".join(map(str, MIN_TENSORRT_VERSION))
        raise JetkitError(
            f"TensorRT {version} is too old: jetkit needs TensorRT {minimum} or newer "
            "(JetPack 5.1+); upgrade JetPack, or use the onnxruntime backend"
        )
    return parsed


def api_for_version(version: str) -> ApiKind:
    """Which Python API to drive: `"bindings"` (TensorRT 8.5–8.x, JetPack 5) or `"tensors"`
    (9 and later, JetPack 6+). TensorRT 10 removed the bindings API."""
    return features_for_version(version).api


@dataclass(frozen=True)
class TensorRTFeatures:
    """What one TensorRT version has, for the builder and the rule checks."""

    version: tuple[int, ...]
    api: ApiKind
    explicit_batch_flag: bool  # ONNX networks need NetworkDefinitionCreationFlag.EXPLICIT_BATCH
    precision_flags: bool  # BuilderFlag.FP16/INT8 and platform_has_fast_fp16 (weak typing)
    implicit_int8: bool  # IInt8Calibrator and calibration caches
    calibration_profile: bool  # config.set_calibration_profile is safe to call
    int8_weight_initializers: bool  # DequantizeLinear may read INT8 weights directly
    fp8_int4_qdq: bool
    int64_io: bool
    dla: bool

    @property
    def strongly_typed_only(self) -> bool:
        return not self.precision_flags

    @property
    def label(self) -> str:
        return ".".join(map(str, self.version))


def features_for_version(version: str) -> TensorRTFeatures:
    parsed = _check_supported(version)
    major = parsed[0]
    return TensorRTFeatures(
        version=parsed,
        api="bindings" if major < 9 else "tensors",
        explicit_batch_flag=major < 10,
        precision_flags=major < 11,
        implicit_int8=major < 11,
        calibration_profile=major < 10,
        int8_weight_initializers=major >= 9,
        fp8_int4_qdq=major >= 10,
        int64_io=major >= 10,
        dla=major < 11 or parsed >= _DLA_BACK_IN_11,
    )


def implicit_int8_removed(features: TensorRTFeatures) -> JetkitError:
    """The error for an implicit INT8 build (a calibration cache or calibrator) on a TensorRT
    without one, naming the explicit path."""
    return JetkitError(
        f"TensorRT {features.label} has no implicit INT8 calibration (removed in TensorRT 11); "
        "build the Q/DQ model instead: `jetkit calibrate MODEL --precision int8 --runtime "
        "tensorrt`, then `jetkit build MODEL-int8.onnx --precision int8`"
    )
