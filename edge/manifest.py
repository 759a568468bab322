"""The model manifest: one versioned JSON document that says how to feed and read a model.

It travels as a sidecar `<model stem>.json` and, for ONNX, embedded in `metadata_props` under
`MANIFEST_KEY`. Every field is validated on construction; errors name the field (dotted path)
and, when loaded from disk, the file. This module imports nothing outside the standard library.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.atomic import write_text_atomic
from edge.errors import ManifestError

SCHEMA = "jetkit.manifest/1"
MANIFEST_KEY = "jetkit.manifest"

OUTPUT_FORMATS = ("yolov8", "yolov5", "yolox", "end2end")
RESIZE_MODES = ("letterbox", "stretch")
PAD_POSITIONS = ("center", "top_left")
COLOR_ORDERS = ("RGB", "BGR")
NMS_KINDS = ("class_aware", "agnostic", "diou", "soft")
ARTIFACT_KINDS = ("onnx", "onnx-fp16", "onnx-int8-qdq", "tensorrt")
PRECISIONS = ("fp32", "fp16", "int8")
INPUT_DTYPES = ("float32", "float16", "uint8")


def _check(ok: bool, field_name: str, problem: str) -> None:
    if not ok:
        raise ManifestError(field_name, problem)


def _check_choice(value: object, choices: tuple[str, ...], field_name: str) -> None:
    _check(value in choices, field_name, f"{value!r} is not one of {', '.join(choices)}")


def _is_number(value: object) -> bool:
    """A finite int or float (not a bool, not an integer beyond float range)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _check_triple(value: object, field_name: str, positive: bool = False) -> tuple[float, ...]:
    _check(
        isinstance(value, (list, tuple)) and len(value) == 3 and all(_is_number(v) for v in value),
        field_name,
        f"expected three numbers (one per channel), got {value!r}",
    )
    assert isinstance(value, (list, tuple))
    triple = tuple(float(v) for v in value)
    if positive:
        _check(all(v > 0 for v in triple), field_name, f"must be > 0, got {value!r}")
    return triple


@dataclass(frozen=True)
class InputSpec:
    """The model input: `shape` is `[B, 3, H, W]` (NCHW) with the batch the engine was built for."""

    name: str = "images"
    shape: tuple[int, int, int, int] = (1, 3, 640, 640)
    dtype: str = "float32"
    layout: str = "NCHW"
    dynamic_batch: bool = False
    max_batch: int = 1

    def __post_init__(self) -> None:
        _check(
            isinstance(self.name, str) and bool(self.name), "input.name", "must be a tensor name"
        )
        _check(
            isinstance(self.shape, (list, tuple)),
            "input.shape",
            f"expected [batch, 3, height, width], got {self.shape!r}",
        )
        shape = tuple(self.shape)
        _check(
            len(shape) == 4 and all(isinstance(d, int) and not isinstance(d, bool) for d in shape),
            "input.shape",
            f"expected [batch, 3, height, width] as integers, got {list(shape)}",
        )
        _check(shape[1] == 3, "input.shape", f"expected 3 channels (NCHW), got {shape[1]}")
        _check(
            shape[0] >= 1 and shape[2] >= 1 and shape[3] >= 1, "input.shape", "sizes must be >= 1"
        )
        object.__setattr__(self, "shape", shape)
        _check_choice(self.dtype, INPUT_DTYPES, "input.dtype")
        _check(
            self.layout == "NCHW", "input.layout", f"only NCHW is supported, got {self.layout!r}"
        )
        _check(isinstance(self.dynamic_batch, bool), "input.dynamic_batch", "must be true or false")
        _check(
            isinstance(self.max_batch, int) and self.max_batch >= 1,
            "input.max_batch",
            f"must be an integer >= 1, got {self.max_batch!r}",
        )
        _check(
            self.dynamic_batch or self.max_batch == shape[0],
            "input.max_batch",
            f"a static-batch model takes exactly {shape[0]} images, not {self.max_batch}",
        )

    @property
    def size_hw(self) -> tuple[int, int]:
        return self.shape[2], self.shape[3]


@dataclass(frozen=True)
class PreprocessSpec:
    """How a BGR uint8 frame becomes the input tensor: `(pixel * scale - mean) / std` per channel."""

    resize: str = "letterbox"
    pad_value: int = 114
    pad_position: str = "center"
    color: str = "RGB"
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def __post_init__(self) -> None:
        _check_choice(self.resize, RESIZE_MODES, "preprocess.resize")
        _check(
            isinstance(self.pad_value, int) and 0 <= self.pad_value <= 255,
            "preprocess.pad_value",
            f"must be an integer 0-255, got {self.pad_value!r}",
        )
        _check_choice(self.pad_position, PAD_POSITIONS, "preprocess.pad_position")
        _check_choice(self.color, COLOR_ORDERS, "preprocess.color")
        _check(
            _is_number(self.scale) and self.scale > 0,
            "preprocess.scale",
            f"must be > 0, got {self.scale!r}",
        )
        object.__setattr__(self, "scale", float(self.scale))
        object.__setattr__(self, "mean", _check_triple(self.mean, "preprocess.mean"))
        object.__setattr__(self, "std", _check_triple(self.std, "preprocess.std", positive=True))


@dataclass(frozen=True)
class OutputSpec:
    """The decoder format and output tensor names; `strides` matter only to `yolox`."""

    format: str = "yolov8"
    names: tuple[str, ...] = ("output0",)
    strides: tuple[int, ...] = (8, 16, 32)

    def __post_init__(self) -> None:
        _check_choice(self.format, OUTPUT_FORMATS, "output.format")
        names = tuple(self.names) if isinstance(self.names, (list, tuple)) else ()
        _check(
            len(names) >= 1 and all(isinstance(n, str) and n for n in names),
            "output.names",
            "must list at least one output tensor name",
        )
        object.__setattr__(self, "names", names)
        strides = tuple(self.strides) if isinstance(self.strides, (list, tuple)) else ()
        _check(
            len(strides) >= 1 and all(isinstance(s, int) and s > 0 for s in strides),
            "output.strides",
            f"must be positive integers, got {self.strides!r}",
        )
        object.__setattr__(self, "strides", strides)


@dataclass(frozen=True)
class PostprocessSpec:
    """Defaults for confidence/IoU thresholds, the NMS kind and the detection cap per image."""

    conf_threshold: float = 0.25
    iou_threshold: float = 0.45
    nms: str = "class_aware"
    max_detections: int = 300

    def __post_init__(self) -> None:
        for name in ("conf_threshold", "iou_threshold"):
            value = getattr(self, name)
            _check(
                _is_number(value) and 0.0 <= value <= 1.0,
                f"postprocess.{name}",
                f"must be a number in [0, 1], got {value!r}",
            )
            object.__setattr__(self, name, float(value))
        _check_choice(self.nms, NMS_KINDS, "postprocess.nms")
        _check(
            isinstance(self.max_detections, int) and self.max_detections >= 1,
            "postprocess.max_detections",
            f"must be an integer >= 1, got {self.max_detections!r}",
        )


@dataclass(frozen=True)
class ArtifactSpec:
    """The file this manifest describes and its digest."""

    file: str
    kind: str = "onnx"
    precision: str = "fp32"
    sha256: str | None = None

    def __post_init__(self) -> None:
        _check(
            isinstance(self.file, str) and bool(self.file), "artifact.file", "must be a file name"
        )
        _check_choice(self.kind, ARTIFACT_KINDS, "artifact.kind")
        _check_choice(self.precision, PRECISIONS, "artifact.precision")
        if self.sha256 is not None:
            _check(
                isinstance(self.sha256, str)
                and len(self.sha256) == 64
                and all(c in "0123456789abcdef" for c in self.sha256),
                "artifact.sha256",
                "must be 64 lower-case hex digits",
            )


@dataclass(frozen=True)
class TargetSpec:
    """What a TensorRT engine was built for; engines run only there."""

    tensorrt: str
    compute_capability: str
    l4t: str | None = None
    dla_core: int | None = None

    def __post_init__(self) -> None:
        _check(
            isinstance(self.tensorrt, str) and bool(self.tensorrt),
            "target.tensorrt",
            "must be a version",
        )
        _check(
            isinstance(self.compute_capability, str)
            and self.compute_capability.replace(".", "").isdigit(),
            "target.compute_capability",
            f"must look like '8.7', got {self.compute_capability!r}",
        )
        _check(
            self.l4t is None or isinstance(self.l4t, str), "target.l4t", "must be a version or null"
        )
        _check(
            self.dla_core is None or (isinstance(self.dla_core, int) and self.dla_core >= 0),
            "target.dla_core",
            "must be a DLA core number or null",
        )


@dataclass(frozen=True)
class Manifest:
    """Everything needed to feed a model and read its outputs. See DESIGN.md, "The contract"."""

    input: InputSpec
    output: OutputSpec
    classes: tuple[str, ...]
    preprocess: PreprocessSpec = field(default_factory=PreprocessSpec)
    postprocess: PostprocessSpec = field(default_factory=PostprocessSpec)
    name: str = "model"
    artifact: ArtifactSpec | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    target: TargetSpec | None = None
    schema: str = SCHEMA

    def __post_init__(self) -> None:
        _check(self.schema == SCHEMA, "schema", f"expected {SCHEMA!r}, got {self.schema!r}")
        classes = tuple(self.classes)
        _check(
            len(classes) >= 1 and all(isinstance(c, str) for c in classes),
            "classes",
            "must list at least one class name, in index order",
        )
        object.__setattr__(self, "classes", classes)
        _check(isinstance(self.name, str), "name", f"must be a string, got {self.name!r}")
        _check(isinstance(self.provenance, dict), "provenance", "must be an object")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def replace(self, **changes: Any) -> Manifest:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with the schema first and tuples as lists."""
        data = dataclasses.asdict(self)
        ordered = {"schema": data.pop("schema")}
        ordered.update(data)
        return json.loads(json.dumps(ordered))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: object, source: str | None = None) -> Manifest:
        """Build and validate; a ManifestError names the bad field and `source`."""
        try:
            return _manifest_from_dict(data)
        except ManifestError as exc:
            raise ManifestError(exc.field, exc.problem, source) from None

    @classmethod
    def from_json(cls, text: str, source: str | None = None) -> Manifest:
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, an int of 4300+ digits
            raise ManifestError("(document)", f"not valid JSON ({exc})", source) from None
        return cls.from_dict(data, source)


_SECTIONS: dict[str, type] = {
    "input": InputSpec,
    "preprocess": PreprocessSpec,
    "output": OutputSpec,
    "postprocess": PostprocessSpec,
    "artifact": ArtifactSpec,
    "target": TargetSpec,
}


def _section(name: str, data: object) -> Any:
    spec = _SECTIONS[name]
    _check(isinstance(data, dict), name, f"must be an object, got {type(data).__name__}")
    assert isinstance(data, dict)
    known = {f.name for f in dataclasses.fields(spec)}
    unknown = sorted(set(data) - known)
    _check(
        not unknown,
        f"{name}.{unknown[0] if unknown else ''}",
        f"unknown field (known: {', '.join(sorted(known))})",
    )
    try:
        return spec(**data)
    except TypeError as exc:
        missing = [f.name for f in dataclasses.fields(spec) if f.name not in data]
        raise ManifestError(
            f"{name}.{missing[0] if missing else '?'}", f"required ({exc})"
        ) from None


def _manifest_from_dict(data: object) -> Manifest:
    _check(isinstance(data, dict), "(document)", "must be a JSON object")
    assert isinstance(data, dict)
    known = {f.name for f in dataclasses.fields(Manifest)}
    unknown = sorted(set(data) - known)
    _check(
        not unknown,
        unknown[0] if unknown else "",
        f"unknown field (known: {', '.join(sorted(known))})",
    )
    _check("schema" in data, "schema", f"missing; expected {SCHEMA!r}")
    for required in ("input", "output", "classes"):
        _check(required in data, required, "required")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        if name in _SECTIONS and not (name in ("artifact", "target") and value is None):
            kwargs[name] = _section(name, value)
        else:
            kwargs[name] = value
    _check(isinstance(kwargs["classes"], list), "classes", "must be a list of names")
    return Manifest(**kwargs)


def load_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read a manifest JSON file; errors name the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError("(file)", "no such file", str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError("(file)", f"cannot be read ({exc})", str(path)) from None
    return Manifest.from_json(text, source=str(path))


def save_manifest(manifest: Manifest, path: str | os.PathLike[str]) -> Path:
    """Write atomically (temp file in the same directory, then rename)."""
    path = Path(path)
    write_text_atomic(path, manifest.to_json())
    return path


def sidecar_path(model_path: str | os.PathLike[str]) -> Path:
    """`model.onnx` → `model.json`: where a model's manifest lives beside it."""
    return Path(model_path).with_suffix(".json")


def embed_manifest(model_proto: Any, manifest: Manifest) -> None:
    """Store `manifest` in an `onnx.ModelProto`'s `metadata_props` under MANIFEST_KEY, replacing
    any earlier one. Works on the proto object alone, so this module needs no onnx import."""
    for prop in [p for p in model_proto.metadata_props if p.key == MANIFEST_KEY]:
        model_proto.metadata_props.remove(prop)
    entry = model_proto.metadata_props.add()
    entry.key = MANIFEST_KEY
    entry.value = json.dumps(manifest.to_dict(), separators=(",", ":"))
