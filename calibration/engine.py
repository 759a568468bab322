"""The pure side of building TensorRT engines: the build configuration, which INT8 mode a model
gets, the optimisation profile, the equivalent trtexec command line, the engine key deploy's
engine cache is keyed by, and the engine's manifest.

Nothing here imports TensorRT; `calibration.trt_builder` is the thin layer that does.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from calibration.artifacts import derived_manifest
from edge.backends.trt_versions import TensorRTFeatures, implicit_int8_removed
from edge.errors import JetkitError
from edge.manifest import InputSpec, Manifest, TargetSpec, sidecar_path

BUILD_PRECISIONS = ("fp32", "fp16", "int8")
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
DEFAULT_WORKSPACE_BYTES = 1 << 30
# Below this TensorRT has too little scratch memory to pick any tactic for a detector.
MIN_WORKSPACE_BYTES = 16 << 20

Int8Mode = Literal["explicit", "implicit"]
Shape = tuple[int, int, int, int]  # NCHW
Profile = tuple[Shape, Shape, Shape]  # min, opt, max

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size_bytes(text: str, option: str = "--workspace") -> int:
    """`"1G"`, `"512M"`, `"256MiB"`, `"1073741824"` → bytes (binary units, as TensorRT's)."""
    match = _SIZE.match(text)
    if match is None:
        raise JetkitError(
            f"{option} {text!r} is not a size; write it as bytes or with a unit, e.g. 512M or 1G"
        )
    number, unit = match.groups()
    return int(float(number) * _SIZE_UNITS[unit.upper()])


@dataclass(frozen=True)
class BuildConfig:
    """How to build one engine. `max_batch`/`opt_batch` None: the manifest's max batch (a
    dynamic-batch model) or its fixed batch. `batch`: one static batch (min = opt = max), what
    a DLA build always gets (default there: the max batch). `dla_core` None: GPU only."""

    precision: str = "fp16"
    max_batch: int | None = None
    opt_batch: int | None = None
    batch: int | None = None
    workspace_bytes: int = DEFAULT_WORKSPACE_BYTES
    dla_core: int | None = None
    timing_cache: Path | None = None
    calib_cache: Path | None = None

    def __post_init__(self) -> None:
        if self.precision not in BUILD_PRECISIONS:
            raise JetkitError(
                f"--precision {self.precision!r} is not one of {', '.join(BUILD_PRECISIONS)}"
            )
        for name in ("max_batch", "opt_batch", "batch"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise JetkitError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
        if self.max_batch and self.opt_batch and self.opt_batch > self.max_batch:
            raise JetkitError(
                f"--opt-batch {self.opt_batch} is larger than --max-batch {self.max_batch}"
            )
        if self.batch is not None and (self.max_batch or self.opt_batch):
            raise JetkitError(
                "--batch builds one static batch; drop --max-batch/--opt-batch, which are for "
                "a dynamic batch range"
            )
        if self.workspace_bytes < MIN_WORKSPACE_BYTES:
            raise JetkitError(
                f"--workspace {self.workspace_bytes} bytes is too small; give at least 16M "
                "(256M–1G on small Jetsons)"
            )
        if self.dla_core is not None:
            if self.dla_core < 0:
                raise JetkitError(f"--dla must be a DLA core number >= 0, got {self.dla_core}")
            if self.precision == "fp32":
                raise JetkitError("DLA runs FP16 or INT8 only; add --precision fp16 or int8")
        if self.calib_cache is not None and self.precision != "int8":
            raise JetkitError("--calib-cache is for --precision int8 only")


def int8_mode(
    artifact_kind: str,
    config: BuildConfig,
    has_calibration_data: bool,
    model: Path,
    features: TensorRTFeatures | None = None,
) -> Int8Mode | None:
    """Which INT8 quantization the build uses: `explicit` (the scales are Q/DQ nodes in the
    ONNX), `implicit` (an FP32 ONNX calibrated by TensorRT from a cache or images), or None for
    an FP32/FP16 build. Contradictions are errors that say what to pass instead; so is an
    implicit build on a TensorRT (`features`) that no longer has one."""
    if artifact_kind == "onnx-int8-qdq":
        if config.precision != "int8":
            raise JetkitError(
                f"{model} is an INT8 Q/DQ model; build it with --precision int8, or build "
                f"--precision {config.precision} from the FP32 ONNX it came from"
            )
        if config.calib_cache is not None or has_calibration_data:
            raise JetkitError(
                f"{model} carries its INT8 scales as Q/DQ nodes; drop --calib-cache/--data, "
                "which are for FP32 models"
            )
        return "explicit"
    if config.precision != "int8":
        if has_calibration_data:
            raise JetkitError("--data is for --precision int8 only")
        return None
    if artifact_kind == "onnx-fp16":
        raise JetkitError(
            f"{model} is an FP16 model; build INT8 from the FP32 ONNX or its Q/DQ artifact "
            "(`jetkit calibrate --precision int8`)"
        )
    cache_present = config.calib_cache is not None and config.calib_cache.is_file()
    if not cache_present and not has_calibration_data:
        raise JetkitError(
            f"--precision int8 from the FP32 model {model} needs scales: --calib-cache FILE "
            "(written by `jetkit calibrate`), or --data IMAGES to calibrate here, or build the "
            "Q/DQ model from `jetkit calibrate --precision int8` instead"
        )
    if features is not None and not features.implicit_int8:
        raise implicit_int8_removed(features)
    return "implicit"


def batch_profile(input_spec: InputSpec, config: BuildConfig) -> Profile | None:
    """`(min, opt, max)` input shapes for a dynamic-batch model (min batch 1), or one static
    batch (min = opt = max) with `config.batch` or a DLA core: the DLA has no dynamic
    dimensions ("DLA Supported Layers and Restrictions"). None for a fixed-batch model, which
    needs no profile."""
    fixed_batch, channels, height, width = input_spec.shape
    if not input_spec.dynamic_batch:
        options = (
            ("--max-batch", config.max_batch),
            ("--opt-batch", config.opt_batch),
            ("--batch", config.batch),
        )
        for option, value in options:
            if value is not None and value != fixed_batch:
                raise JetkitError(
                    f"the model has a fixed batch of {fixed_batch}, so {option} {value} cannot "
                    "apply; re-export it with a dynamic batch (`jetkit export --dynamic-batch`)"
                )
        return None
    if config.batch is not None or config.dla_core is not None:
        static = (config.batch or input_spec.max_batch, channels, height, width)
        return static, static, static
    max_batch = config.max_batch or input_spec.max_batch
    opt_batch = config.opt_batch or max_batch
    if opt_batch > max_batch:
        raise JetkitError(f"--opt-batch {opt_batch} is larger than the max batch {max_batch}")
    return (
        (1, channels, height, width),
        (opt_batch, channels, height, width),
        (max_batch, channels, height, width),
    )


def static_batch(profile: Profile | None) -> int | None:
    """The one batch of a static profile (min = opt = max); None for no profile or a range."""
    if profile is None or profile[0] != profile[2]:
        return None
    return profile[0][0]


def calibration_batch_size(
    profile: Profile | None, fixed_batch: int, features: TensorRTFeatures
) -> int:
    """The batch TensorRT's implicit calibration runs at: a fixed-batch model's batch, one
    static batch's size, else (a dynamic batch) 1 through a calibration profile where that is
    safe (before 10), and the profile's opt batch otherwise, which TensorRT calibrates at when
    no calibration profile is set."""
    if profile is None:
        return fixed_batch
    if static_batch(profile) is not None or not features.calibration_profile:
        return profile[1][0]
    return 1


def trtexec_command(
    onnx_path: Path,
    engine_path: Path,
    config: BuildConfig,
    input_name: str,
    profile: Profile | None,
    mode: Int8Mode | None,
    features: TensorRTFeatures,
) -> list[str]:
    """The trtexec arguments that build the same engine (see REFERENCE.md, trtexec) with the
    TensorRT of `features`: TensorRT 11's trtexec has no precision flags (strong typing: the
    ONNX's types are the precision)."""
    command = ["trtexec", f"--onnx={onnx_path}", f"--saveEngine={engine_path}"]
    if features.precision_flags and config.precision in ("fp16", "int8"):
        command.append("--fp16")
    if features.precision_flags and config.precision == "int8":
        command.append("--int8")
    if mode == "implicit" and config.calib_cache is not None:
        command.append(f"--calib={config.calib_cache}")
    workspace_mib = max(1, config.workspace_bytes >> 20)
    command.append(f"--memPoolSize=workspace:{workspace_mib}")
    if profile is not None:
        for flag, shape in zip(("min", "opt", "max"), profile, strict=True):
            command.append(f"--{flag}Shapes={input_name}:{'x'.join(map(str, shape))}")
    if config.dla_core is not None:
        command += [f"--useDLACore={config.dla_core}", "--allowGPUFallback"]
    if config.timing_cache is not None:
        command.append(f"--timingCacheFile={config.timing_cache}")
    return command


def format_command(command: list[str]) -> str:
    return shlex.join(command)


@dataclass(frozen=True)
class EngineKey:
    """What makes an engine reusable: the same ONNX, precision, TensorRT, GPU architecture, DLA
    core and batch range, and for implicit INT8 the same calibration (`calibration_sha256`,
    the cache's digest: a recalibrated model never reuses an engine built with the old scales;
    explicit INT8 has its scales in the Q/DQ ONNX, so in `onnx_sha256`). Deploy's engine cache
    is keyed by `name`."""

    onnx_sha256: str
    precision: str
    tensorrt: str
    compute_capability: str
    dla_core: int | None
    max_batch: int
    calibration_sha256: str | None = None

    @property
    def name(self) -> str:
        """A file-name-safe key, e.g. `3f9c…-int8-b8-trt10.3.0-sm87-gpu`, with `-c<digest>`
        after the precision for implicit INT8."""
        device = "gpu" if self.dla_core is None else f"dla{self.dla_core}"
        sm = self.compute_capability.replace(".", "")
        calibration = f"-c{self.calibration_sha256[:12]}" if self.calibration_sha256 else ""
        return (
            f"{self.onnx_sha256[:16]}-{self.precision}{calibration}-b{self.max_batch}-"
            f"trt{self.tensorrt}-sm{sm}-{device}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "onnx_sha256": self.onnx_sha256,
            "precision": self.precision,
            "tensorrt": self.tensorrt,
            "compute_capability": self.compute_capability,
            "dla_core": self.dla_core,
            "max_batch": self.max_batch,
            "calibration_sha256": self.calibration_sha256,
        }


def default_engine_path(source: Path, source_precision: str, config: BuildConfig) -> Path:
    """Beside the ONNX: `model.onnx` → `model-trt-fp16.engine`; a Q/DQ `model-int8.onnx` →
    `model-int8-trt.engine` (its precision is already in its name). Never `<stem>.engine`,
    whose sidecar manifest would be the ONNX's own."""
    parts = [source.stem]
    parts.append("trt" if source_precision == config.precision else f"trt-{config.precision}")
    if config.dla_core is not None:
        parts.append(f"dla{config.dla_core}")
    return source.with_name("-".join(parts) + ".engine")


def check_engine_path(engine_path: Path, source: Path) -> None:
    """An engine file name that will not clobber the source or its manifest."""
    if engine_path.suffix not in ENGINE_SUFFIXES:
        raise JetkitError(
            f"--out {engine_path}: an engine file ends in {', '.join(ENGINE_SUFFIXES)}"
        )
    if sidecar_path(engine_path).resolve() == sidecar_path(source).resolve():
        raise JetkitError(
            f"--out {engine_path} would overwrite {sidecar_path(source)}, the manifest of "
            f"{source}; choose another name, e.g. {default_engine_path(source, '', BuildConfig())}"
        )


def engine_manifest(
    source: Manifest,
    source_path: Path,
    engine_path: Path,
    config: BuildConfig,
    key: EngineKey,
    l4t: str | None,
    profile: Profile | None,
    build: dict[str, Any],
) -> Manifest:
    """The engine's manifest: the source's, as a `tensorrt` artifact with the batch range it was
    built for, the target it runs on, and the key and build settings in provenance."""
    input_spec = source.input
    if profile is not None:
        static = static_batch(profile) is not None
        input_spec = InputSpec(
            name=input_spec.name,
            shape=profile[2] if static else profile[1],
            dtype=input_spec.dtype,
            dynamic_batch=not static,
            max_batch=profile[2][0],
        )
    manifest = derived_manifest(
        source,
        source_path,
        engine_path,
        "tensorrt",
        config.precision,
        {
            "engine": {
                "key": key.to_dict(),
                "workspace_bytes": config.workspace_bytes,
                "timing_cache": str(config.timing_cache) if config.timing_cache else None,
                **build,
            }
        },
    )
    return manifest.replace(
        input=input_spec,
        target=TargetSpec(
            tensorrt=key.tensorrt,
            compute_capability=key.compute_capability,
            l4t=l4t,
            dla_core=config.dla_core,
        ),
    )
