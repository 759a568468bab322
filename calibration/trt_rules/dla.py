"""What the DLA runs, per generation (Xavier: DLA 1; Orin: DLA 2), for the layers detectors use.

Sources: TensorRT Developer Guide, "DLA Supported Layers and Restrictions"
(https://docs.nvidia.com/deeplearning/tensorrt/latest/inference-library/dla-layer-restrictions.html)
and the per-layer DLA notes in NvInfer.h (NVIDIA/TensorRT release/8.6 and release/10.3, the
TensorRT of JetPack 5 and 6, identical text). A layer outside these limits runs on the GPU
under `GPU_FALLBACK`, with a copy between DLA and GPU memory on each side: the reason users of
every anchor see DLA engines slower than GPU ones. Reshape/Transpose (TensorRT's Shuffle) and
Gather are reported on the GPU ("Unsupported on DLA" in NVIDIA-AI-IOT/jetson_dla_tutorial#3 and
NVIDIA/TensorRT#2318); TensorRT's `IBuilderConfig.can_run_on_DLA` decides on the device, and
`jetkit build --dla` records its answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from calibration.trt_rules.findings import Finding, Rule
from calibration.trt_rules.graph import GraphView, attribute, node_label

GENERATIONS = ("orin", "xavier")
_DOCS = "TensorRT Developer Guide, DLA Supported Layers and Restrictions; NvInfer.h DLA notes"


def generation_of(device_model: str | None) -> str:
    """The DLA generation of a board (`/proc/device-tree/model`): Xavier's DLA 1, else Orin's."""
    return "xavier" if device_model and "xavier" in device_model.lower() else "orin"


STATIC_SHAPE = Rule(
    "dla.static-shape",
    "DLA has no dynamic dimensions: the profile's min, opt and max must be equal",
    _DOCS,
)
PRECISION = Rule("dla.precision", "DLA runs FP16 or INT8 only", _DOCS)
LIMITS = Rule("dla.limits", "DLA batch at most 4096, other dimensions at most 8192", _DOCS)
UNAVAILABLE = Rule(
    "dla.unavailable",
    "TensorRT 11.0 to 11.4.0 has no DLA; 11.4.1+ on Jetson AGX Orin with JetPack 7.2.2+",
    "TensorRT 10.x to 11.x migration notes for Jetson",
)
GPU_FALLBACK = Rule(
    "dla.gpu-fallback",
    "layers the DLA cannot run move to the GPU, with a DLA/GPU copy around each",
    _DOCS,
    severity="warning",
)

MAX_BATCH = 4096
MAX_DIM = 8192


def _in(values: Sequence[int], low: int, high: int) -> bool:
    return all(low <= int(v) <= high for v in values)


def _conv(view: GraphView, node: Any, generation: str) -> str | None:
    weight = view.constant_array(node.input[1]) if len(node.input) > 1 else None
    if weight is not None and weight.ndim != 4:
        return "only 2D convolutions run on the DLA"
    kernel = attribute(node, "kernel_shape") or (
        list(weight.shape[2:]) if weight is not None else []
    )
    strides = attribute(node, "strides", [1, 1])
    pads = attribute(node, "pads", [0, 0, 0, 0])
    dilations = attribute(node, "dilations", [1, 1])
    if not _in(kernel, 1, 32):
        return f"kernel {list(kernel)} outside [1, 32]"
    if node.op_type == "ConvTranspose":
        if any(p != 0 for p in pads) or int(attribute(node, "group", 1)) != 1:
            return "a DLA deconvolution has no padding and one group"
        if any(d != 1 for d in dilations):
            return "a DLA deconvolution has no dilation"
        return None if _in(strides, 1, 32) else f"stride {list(strides)} outside [1, 32]"
    if not _in(strides, 1, 8):
        return f"stride {list(strides)} outside [1, 8]"
    if not _in(pads, 0, 31) or any(p >= k for p, k in zip(pads, list(kernel) * 2, strict=False)):
        return f"padding {list(pads)} outside [0, 31] or not smaller than the kernel"
    if not _in(dilations, 1, 32):
        return f"dilation {list(dilations)} outside [1, 32]"
    if weight is not None and weight.shape[0] > MAX_DIM:
        return f"{weight.shape[0]} output channels, more than {MAX_DIM}"
    return None


def _pool(view: GraphView, node: Any, generation: str) -> str | None:
    kernel = attribute(node, "kernel_shape", [])
    if not _in(kernel, 1, 8):
        return f"pooling window {list(kernel)} outside [1, 8]"
    if not _in(attribute(node, "strides", [1, 1]), 1, 16):
        return "pooling stride outside [1, 16]"
    if not _in(attribute(node, "pads", [0, 0, 0, 0]), 0, 7):
        return "pooling padding outside [0, 7]"
    if any(d != 1 for d in attribute(node, "dilations", [1, 1])):
        return "dilated pooling"
    return None


def _concat(view: GraphView, node: Any, generation: str) -> str | None:
    axis = int(attribute(node, "axis", 0))
    return None if axis in (1, -3) else f"concatenation on axis {axis}, not the channel axis"


def _resize(view: GraphView, node: Any, generation: str) -> str | None:
    scales = view.constant_array(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if scales is None or scales.size != 4:
        return "resize by output size, not by constant scales {1, 1, s, s}"
    mode = attribute(node, "mode", "nearest")
    high = 32 if mode == "nearest" else 4
    if list(scales[:2]) != [1, 1] or not all(float(s).is_integer() for s in scales[2:]):
        return f"scales {scales.tolist()} are not {{1, 1, s, s}} with integer s"
    if not _in([int(s) for s in scales[2:]], 1, high):
        return f"{mode} scales {scales.tolist()} outside [1, {high}]"
    return None


def _softmax(view: GraphView, node: Any, generation: str) -> str | None:
    return "Softmax does not run on Xavier's DLA" if generation == "xavier" else None


def _slice(view: GraphView, node: Any, generation: str) -> str | None:
    if node.op_type == "Split":
        return None if int(attribute(node, "axis", 0)) not in (0, -4) else "split on the batch axis"
    axes = view.constant_array(node.input[3]) if len(node.input) > 3 and node.input[3] else None
    steps = view.constant_array(node.input[4]) if len(node.input) > 4 and node.input[4] else None
    if axes is None or any(int(a) in (0, -4) for a in axes.ravel()):
        return "a slice that may cut the batch axis"
    if steps is not None and any(int(s) != 1 for s in steps.ravel()):
        return "a slice with a step other than 1"
    return None


def _always(view: GraphView, node: Any, generation: str) -> str | None:
    return None


_Check = Callable[[GraphView, Any, str], "str | None"]
# ONNX operator → the DLA's limits on it (None: it runs there).
DLA_OPERATORS: dict[str, _Check] = {
    "Conv": _conv,
    "ConvTranspose": _conv,
    "Relu": _always,
    "Sigmoid": _always,
    "Tanh": _always,
    "Clip": _always,
    "LeakyRelu": _always,
    "BatchNormalization": _always,
    "Add": _always,
    "Sub": _always,
    "Mul": _always,
    "Max": _always,
    "Min": _always,
    "MaxPool": _pool,
    "AveragePool": _pool,
    "Concat": _concat,
    "Resize": _resize,
    "Upsample": _resize,
    "Softmax": _softmax,
    "Slice": _slice,
    "Split": _slice,
}
# No layer of their own: folded into weights or removed by the parser.
_NO_LAYER = frozenset({"Constant", "Identity", "QuantizeLinear", "DequantizeLinear", "Dropout"})


@dataclass(frozen=True)
class DlaTarget:
    generation: str
    precision: str | None  # fp16 / int8 / fp32; None: not known yet
    static_batch: int | None  # the build's batch; None: the model's own shape
    available: bool  # the TensorRT version has DLA


def check_dla(view: GraphView, target: DlaTarget) -> Iterator[Finding]:
    if not target.available:
        yield Finding(UNAVAILABLE, None, "this TensorRT version cannot build DLA engines")
    if target.precision == "fp32":
        yield Finding(PRECISION, None, "build with --precision fp16 or int8 for the DLA")
    yield from _check_shapes(view, target.static_batch)
    for node in view.nodes:
        if node.op_type in _NO_LAYER:
            continue
        check = DLA_OPERATORS.get(node.op_type)
        reason = (
            f"{node.op_type} has no DLA layer"
            if check is None
            else check(view, node, target.generation)
        )
        if reason:
            yield Finding(GPU_FALLBACK, node_label(node), reason)


def _check_shapes(view: GraphView, static_batch: int | None) -> Iterator[Finding]:
    for tensor in view.model.graph.input:
        if tensor.name in view.initializers:
            continue
        dims = tensor.type.tensor_type.shape.dim
        values = [d.dim_value if d.HasField("dim_value") else None for d in dims]
        if values and values[0] is None and static_batch is None:
            yield Finding(
                STATIC_SHAPE,
                tensor.name,
                f"input {tensor.name} has a dynamic batch; build one batch size for the DLA "
                "(`jetkit build --dla N --batch B`, `jetkit check --dla --batch B`)",
            )
        if any(v is None for v in values[1:]):
            yield Finding(
                STATIC_SHAPE,
                tensor.name,
                f"input {tensor.name} has dynamic dimensions other than the batch; re-export "
                "it with a fixed image size",
            )
        batch = static_batch if static_batch is not None else values[0] if values else None
        if batch is not None and batch > MAX_BATCH:
            yield Finding(LIMITS, tensor.name, f"batch {batch} is more than {MAX_BATCH}")
        if any(v is not None and v > MAX_DIM for v in values[1:]):
            yield Finding(LIMITS, tensor.name, f"a dimension of {values} is more than {MAX_DIM}")
