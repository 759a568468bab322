"""Network input and output types: what TensorRT builds with and jetkit's TensorRT backend binds
(`edge.backends.trt_plan`, one numpy type per TensorRT type)."""

from __future__ import annotations

from collections.abc import Iterator

from calibration.trt_rules.findings import Finding, Rule
from calibration.trt_rules.graph import GraphView

# ONNX element types → the TensorRT I/O type the engine gets. TensorRT 8.x has no INT64 tensors:
# its parser narrows them to INT32 (onnx-tensorrt docs/operators.md, "Note on INT64"); INT64 I/O
# exists from TensorRT 10 (TensorRT Python API, DataType.INT64). DOUBLE is narrowed to FLOAT by
# the parser on no version: it is rejected. BF16, FP8 and INT4 I/O have no numpy type to bind.
_BINDABLE = {1: "FLOAT", 10: "HALF", 3: "INT8", 2: "UINT8", 6: "INT32", 9: "BOOL"}
_INT64 = 7
_NAMES = {
    7: "INT64",
    11: "DOUBLE",
    16: "BFLOAT16",
    12: "UINT32",
    13: "UINT64",
    4: "UINT16",
    5: "INT16",
    8: "STRING",
    17: "FLOAT8E4M3FN",
    22: "INT4",
}

_SOURCE = (
    "onnx-tensorrt docs/operators.md (supported data types); TensorRT Python API, "
    "tensorrt.DataType; jetkit edge/backends/trt_plan.py"
)
IO_DTYPE = Rule(
    "io.dtype", "network inputs and outputs TensorRT and jetkit's runtime can bind", _SOURCE
)
IO_INT64_NARROWED = Rule(
    "io.int64-narrowed",
    "TensorRT 8.x narrows INT64 tensors to INT32",
    _SOURCE,
    severity="warning",
)


def check_io(view: GraphView, int64_io: bool) -> Iterator[Finding]:
    """`int64_io`: the TensorRT version has INT64 I/O tensors (10 and later)."""
    graph = view.model.graph
    tensors = [("input", t) for t in graph.input if t.name not in view.initializers]
    tensors += [("output", t) for t in graph.output]
    for role, tensor in tensors:
        elem_type = int(tensor.type.tensor_type.elem_type)
        if elem_type in _BINDABLE:
            continue
        if elem_type == _INT64:
            if not int64_io:
                yield Finding(
                    IO_INT64_NARROWED,
                    tensor.name,
                    f"{role} {tensor.name} is INT64; the engine's binding will be INT32",
                )
            continue
        name = _NAMES.get(elem_type, f"ONNX type {elem_type}")
        yield Finding(
            IO_DTYPE,
            tensor.name,
            f"{role} {tensor.name} is {name}; export it as one of "
            f"{', '.join(sorted(set(_BINDABLE.values())))} (FLOAT for images)",
        )
