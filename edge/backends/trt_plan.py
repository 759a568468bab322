"""The pure part of the TensorRT backend: dtype names, I/O shapes and buffer sizes, and the
Ultralytics `.engine` header (what each TensorRT version offers: `trt_versions`).

Nothing here imports TensorRT or CUDA, so all of it is tested on machines without a GPU.
Shapes are tuples of ints in the engine's layout; `-1` marks a dimension fixed only at run time.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge.errors import JetkitError

Shape = tuple[int, ...]

# TensorRT I/O dtypes that have a numpy equivalent. BF16, FP8, INT4, FP4 and E8M0 have none.
_NUMPY_DTYPE_BY_TRT = {
    "FLOAT": "float32",
    "HALF": "float16",
    "INT8": "int8",
    "INT32": "int32",
    "INT64": "int64",
    "BOOL": "bool",
    "UINT8": "uint8",
}

# An Ultralytics header is a little-endian int32 byte count then that much JSON. Its metadata
# (names, imgsz, stride, args…) is a few KiB; a count above this is the start of a raw plan.
_MAX_HEADER_BYTES = 1 << 24


@dataclass(frozen=True)
class TensorInfo:
    """One engine I/O tensor as TensorRT declares it.

    `shape` has `-1` for dynamic dimensions. `profile` is `(min, opt, max)` shapes from
    optimisation profile 0, for dynamic inputs only.
    """

    name: str
    is_input: bool
    shape: Shape
    dtype: str  # numpy dtype name
    profile: tuple[Shape, Shape, Shape] | None = None

    @property
    def is_dynamic(self) -> bool:
        return any(d < 0 for d in self.shape)


@dataclass(frozen=True)
class IOPlan:
    """Concrete shapes for one batch size, and the buffer sizes that fit every allowed batch.

    Keyed by tensor name: `shapes` and `size_bytes` at `batch` (what to copy), and
    `buffer_size_bytes` at `max_batch` (what to allocate, once, for host and device buffers).
    """

    batch: int
    max_batch: int
    shapes: dict[str, Shape]
    size_bytes: dict[str, int]
    buffer_size_bytes: dict[str, int]


def numpy_dtype_name(trt_dtype: str) -> str:
    """`"DataType.HALF"` (as `str(trt.DataType.HALF)` gives) or `"HALF"` → `"float16"`."""
    key = trt_dtype.rsplit(".", 1)[-1].upper()
    try:
        return _NUMPY_DTYPE_BY_TRT[key]
    except KeyError:
        raise JetkitError(
            f"engine I/O tensor type {key} has no numpy equivalent; rebuild the engine with "
            f"{', '.join(_NUMPY_DTYPE_BY_TRT)} inputs and outputs (FP16/INT8 engines can keep FP32 I/O)"
        ) from None


def batch_range(tensors: Sequence[TensorInfo]) -> tuple[int, int]:
    """`(min_batch, max_batch)` the engine accepts: the tightest profile bounds over dynamic-batch
    inputs, or the fixed leading dimension of a static engine."""
    inputs = [t for t in tensors if t.is_input]
    if not inputs:
        raise JetkitError("the engine has no inputs; rebuild it from the ONNX model")
    bounds = []
    for tensor in inputs:
        if not tensor.shape:
            continue
        if tensor.shape[0] >= 0:
            bounds.append((tensor.shape[0], tensor.shape[0]))
        else:
            profile_min, _, profile_max = _profile_of(tensor)
            bounds.append((profile_min[0], profile_max[0]))
    if not bounds:
        return 1, 1
    return max(low for low, _ in bounds), min(high for _, high in bounds)


def plan_io(tensors: Sequence[TensorInfo], batch: int) -> IOPlan:
    """Shapes of every tensor at `batch` and buffer sizes at the maximum batch.

    A dynamic batch dimension (leading `-1`) takes `batch`, outputs included. Other dynamic input
    dimensions take the profile's `opt` value; the backend resolves other dynamic output
    dimensions through TensorRT before planning, so an output may be dynamic only in its batch.
    """
    min_batch, max_batch = batch_range(tensors)
    if min_batch == max_batch and batch != max_batch:
        raise JetkitError(
            f"the engine was built for a fixed batch of {max_batch}, got {batch}; feed batches of "
            f"{max_batch}, or rebuild it with a dynamic batch (`jetkit build --max-batch {batch}`)"
        )
    if batch > max_batch:
        raise JetkitError(
            f"batch {batch} is larger than the engine's profile maximum {max_batch}; feed at most "
            f"{max_batch} images, or rebuild the engine with `jetkit build --max-batch {batch}`"
        )
    if batch < min_batch:
        raise JetkitError(
            f"batch {batch} is smaller than the engine's profile minimum {min_batch}; "
            "rebuild the engine with `jetkit build --min-batch 1`"
        )
    shapes = {t.name: _shape_at(t, batch) for t in tensors}
    size_bytes = {t.name: _nbytes(shapes[t.name], t.dtype) for t in tensors}
    buffer_size_bytes = {t.name: _nbytes(_shape_at(t, max_batch), t.dtype) for t in tensors}
    return IOPlan(batch, max_batch, shapes, size_bytes, buffer_size_bytes)


def check_inputs(tensors: Sequence[TensorInfo], arrays: Sequence[np.ndarray]) -> int:
    """Check the number, rank and dtype of `arrays` (one per input, in engine order) and return the
    batch size they carry: the leading dimension of the first input."""
    inputs = [t for t in tensors if t.is_input]
    if len(arrays) != len(inputs):
        names = ", ".join(t.name for t in inputs)
        raise JetkitError(f"the engine takes {len(inputs)} input(s) ({names}), got {len(arrays)}")
    for tensor, array in zip(inputs, arrays, strict=True):
        if array.ndim != len(tensor.shape):
            raise JetkitError(
                f"input '{tensor.name}' has shape {array.shape}, the engine expects "
                f"{len(tensor.shape)} dimensions {tensor.shape} (-1: any size in its profile)"
            )
        if not np.can_cast(array.dtype, tensor.dtype, casting="same_kind"):
            raise JetkitError(
                f"input '{tensor.name}' is {array.dtype}, the engine takes {tensor.dtype}; "
                f"convert it (array.astype('{tensor.dtype}')) or preprocess as the manifest says"
            )
    return int(arrays[0].shape[0]) if arrays[0].ndim else 1


def check_input_shapes(
    plan: IOPlan, tensors: Sequence[TensorInfo], input_shapes: Sequence[Shape]
) -> None:
    """Raise unless `input_shapes` (one per input, in engine order) are the shapes of `plan`."""
    inputs = [t for t in tensors if t.is_input]
    for tensor, shape in zip(inputs, input_shapes, strict=True):
        expected = plan.shapes[tensor.name]
        if tuple(shape) != expected:
            raise JetkitError(
                f"input '{tensor.name}' has shape {tuple(shape)}, the engine expects {expected}; "
                "preprocess to the model's input size (see its manifest) or rebuild the engine"
            )


def resolve_output_shape(declared: Shape, resolved: Shape) -> Shape:
    """An output's shape for planning: `resolved` (what TensorRT reports once input shapes are
    set) with the leading dimension kept dynamic where the engine `declared` it dynamic."""
    if declared and declared[0] < 0:
        return (-1, *resolved[1:])
    return tuple(resolved)


def split_engine_file(data: bytes) -> tuple[dict[str, object] | None, bytes]:
    """`(metadata, plan)` from an engine file's bytes.

    Ultralytics writes `len(meta)` as a little-endian int32, then `meta = json.dumps(metadata)`
    (ASCII, so its length in characters is its length in bytes), then the serialized plan
    (ultralytics/engine/exporter.py `export_engine`; read back in ultralytics/nn/autobackend.py).
    Anything else is taken as a raw plan: the length must leave a plan behind it, and its bytes
    must decode as a UTF-8 JSON object.
    """
    if len(data) < 4:
        return None, data
    (header_bytes,) = struct.unpack("<i", data[:4])
    if not 2 <= header_bytes <= min(_MAX_HEADER_BYTES, len(data) - 5):
        return None, data
    try:
        metadata = json.loads(data[4 : 4 + header_bytes].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None, data
    if not isinstance(metadata, dict):
        return None, data
    return metadata, data[4 + header_bytes :]


def header_metadata_props(header: dict[str, object]) -> dict[str, str]:
    """An Ultralytics engine header as the `metadata_props` of the ONNX model it came from.

    Ultralytics writes ONNX metadata as `str(value)` (Python reprs read back with
    `ast.literal_eval`); its engine header holds the same values as JSON, where the integer keys
    of `names` became strings. Strings stay as they are; `{"0": "person"}` becomes
    `"{0: 'person'}"`.
    """
    props = {}
    for key, value in header.items():
        if key == "names" and isinstance(value, dict) and all(k.isdigit() for k in value):
            value = {int(k): v for k, v in value.items()}
        props[key] = value if isinstance(value, str) else repr(value)
    return props


def _profile_of(tensor: TensorInfo) -> tuple[Shape, Shape, Shape]:
    if tensor.profile is None:
        raise JetkitError(
            f"input '{tensor.name}' is dynamic but the engine has no optimisation profile for "
            "it; rebuild the engine with `jetkit build`"
        )
    return tensor.profile


def _shape_at(tensor: TensorInfo, batch: int) -> Shape:
    if not tensor.is_dynamic:
        return tensor.shape
    if tensor.is_input:
        _, profile_opt, _ = _profile_of(tensor)
        fixed = [opt if d < 0 else d for d, opt in zip(tensor.shape, profile_opt, strict=True)]
        if tensor.shape[0] < 0:
            fixed[0] = batch
        return tuple(fixed)
    if any(d < 0 for d in tensor.shape[1:]):
        raise JetkitError(
            f"output '{tensor.name}' has a dynamic dimension other than batch {tensor.shape}; "
            "rebuild the engine from an ONNX model whose outputs are dynamic only in batch"
        )
    return (batch, *tensor.shape[1:])


def _nbytes(shape: Shape, dtype: str) -> int:
    return math.prod(shape) * np.dtype(dtype).itemsize


def runtime_dla_core(
    requested: int | None, manifest_dla_core: int | None, header: dict[str, object] | None
) -> int | None:
    """The DLA core to deserialize an engine on (`IRuntime.DLA_core`, set before
    `deserialize_cuda_engine`): the one asked for, else the engine manifest's `target.dla_core`
    (jetkit builds), else an Ultralytics header's `dla` (ultralytics/nn/autobackend.py); None
    for a GPU engine. An engine built for core 1 deserialized without it lands on core 0, so
    two models could never share a Jetson's two DLA cores."""
    if requested is not None:
        return requested
    if manifest_dla_core is not None:
        return manifest_dla_core
    value = header.get("dla") if header else None
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        return int(value)
    except ValueError:
        raise JetkitError(
            f"the engine header's DLA core {value!r} is not a number; rebuild the engine"
        ) from None
