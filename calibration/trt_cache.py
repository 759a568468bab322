"""TensorRT's text calibration cache: written from the ranges jetkit calibrates, and read back.

The format (what `IInt8Calibrator.write_calibration_cache` produces): a header
`TRT-<version>-<algorithm>`, e.g. `TRT-8601-EntropyCalibration2`, then one line per tensor,
`<tensor name>: <hex>`, the hex being the big-endian float32 bits of the scale `amax / 127`
without leading zeros (`0` for a zero scale). TensorRT reuses a cache only when the algorithm in
its header is the calibrator's own. Pure functions over strings; file I/O is one thin pair.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

from edge.atomic import write_text_atomic
from edge.errors import JetkitError

# TensorRT's calibrator algorithms as they appear in cache headers.
ALGORITHMS = ("EntropyCalibration2", "EntropyCalibration", "MinMaxCalibration", "LegacyCalibration")
INT8_MAX = 127.0


def version_number(tensorrt_version: str) -> int:
    """`"8.6.1"` → 8601, `"10.3.0"` → 100300: NV_TENSORRT_VERSION as NvInferVersion.h defines it
    (major·1000 + minor·100 + patch before TensorRT 10, major·10000 + minor·100 + patch since)."""
    try:
        parts = [int(p) for p in tensorrt_version.split(".")[:3]]
    except ValueError:
        raise JetkitError(f"TensorRT version {tensorrt_version!r} is not like 8.6.1") from None
    major, minor, patch = (parts + [0, 0])[:3]
    return major * (10000 if major >= 10 else 1000) + minor * 100 + patch


def scale_to_hex(scale: float) -> str:
    """A float32 scale → TensorRT's hex: big-endian IEEE-754 bits, no leading zeros."""
    return format(struct.unpack("!I", struct.pack("!f", scale))[0], "x")


def hex_to_scale(text: str) -> float:
    return float(struct.unpack("!f", bytes.fromhex(text.zfill(8)))[0])


@dataclass(frozen=True)
class CalibrationCache:
    """Per-tensor scales (`amax / 127`) with the TensorRT version number and algorithm."""

    version: int
    algorithm: str
    scales: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise JetkitError(
                f"calibration algorithm {self.algorithm!r} is not one of {', '.join(ALGORITHMS)}"
            )
        for name, scale in self.scales.items():
            if not (math.isfinite(scale) and scale >= 0):
                raise JetkitError(f"calibration scale of {name!r} must be finite and >= 0")

    @property
    def header(self) -> str:
        return f"TRT-{self.version}-{self.algorithm}"

    def amax(self, name: str) -> float:
        return self.scales[name] * INT8_MAX

    @classmethod
    def from_amax(
        cls, amax: dict[str, float], tensorrt_version: str, algorithm: str = "EntropyCalibration2"
    ) -> CalibrationCache:
        """Ranges `{tensor: amax}` (symmetric, as jetkit's calibration computes them)."""
        return cls(
            version_number(tensorrt_version),
            algorithm,
            {name: float(value) / INT8_MAX for name, value in amax.items()},
        )


def format_cache(cache: CalibrationCache) -> str:
    lines = [cache.header] + [f"{name}: {scale_to_hex(s)}" for name, s in cache.scales.items()]
    return "\n".join(lines) + "\n"


def parse_cache(text: str, source: str = "calibration cache") -> CalibrationCache:
    """The inverse of `format_cache`, for caches TensorRT or jetkit wrote; errors name the line."""
    lines = text.splitlines()
    header = lines[0].strip() if lines else ""
    parts = header.split("-", 2)
    if len(parts) != 3 or parts[0] != "TRT" or not parts[1].isdigit():
        raise JetkitError(
            f"{source}:1: not a TensorRT calibration cache (expected a header like "
            f"TRT-8601-EntropyCalibration2, got {header[:40]!r})"
        )
    scales: dict[str, float] = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        name, sep, value = line.rpartition(":")
        value = value.strip()
        if not sep or not name or not 1 <= len(value) <= 8:
            raise JetkitError(f"{source}:{number}: expected '<tensor>: <hex scale>', got {line!r}")
        try:
            scales[name.strip()] = hex_to_scale(value)
        except ValueError:
            raise JetkitError(f"{source}:{number}: {value!r} is not a hex float32") from None
    try:
        return CalibrationCache(int(parts[1]), parts[2], scales)
    except JetkitError as exc:
        raise JetkitError(f"{source}:1: {exc}") from None


def read_cache(path: str | os.PathLike[str]) -> CalibrationCache:
    path = Path(path)
    if not path.is_file():
        raise JetkitError(f"calibration cache {path} does not exist")
    try:
        text = path.read_text(encoding="ascii")
    except UnicodeDecodeError:
        raise JetkitError(f"{path} is not a text TensorRT calibration cache") from None
    return parse_cache(text, str(path))


def write_cache(cache: CalibrationCache, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    write_text_atomic(path, format_cache(cache))
    return path
