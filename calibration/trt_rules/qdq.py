"""Explicit quantization (Q/DQ) as TensorRT takes it, and where Q/DQ must sit for INT8 kernels
to fuse.

Validity (errors: the ONNX parser or the builder rejects the model):
- `QuantizeLinear`/`DequantizeLinear` of INT8 (FP8/INT4 from TensorRT 10) with zero point 0, a
  positive constant scale, per-tensor for activations, per-channel only on the axis TensorRT's
  kernels quantize: 0 for Conv (output channels) and ConvTranspose (its input channels:
  "we don't support per-output-channel quant for ConvTranspose", NVIDIA/TensorRT#2380), the
  output channels of Gemm/MatMul;
- no `DequantizeLinear` of an INT32 tensor: a quantized bias (ONNX Runtime's `quantize_static`
  default) has no INT32 Q/DQ in TensorRT; biases stay float.
Placement (warnings: the engine builds but runs slower than it should, often slower than FP16):
- Q/DQ on every input of a weighted layer (data and weights together);
- both inputs of a residual Add, and every input of a Concat, quantized or none;
- no Q/DQ between a weighted layer and the activation it fuses with.

`tensorrt_qdq_nodes` is the placement jetkit's TensorRT artifacts are quantized with: the inputs
of weighted layers and of residual Adds, nothing on their outputs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from calibration.trt_rules.findings import Finding, Rule
from calibration.trt_rules.graph import GraphView, attribute, node_label

# onnx-tensorrt's operator table: QuantizeLinear/DequantizeLinear types per release.
_OPERATORS_MD = (
    "onnx-tensorrt docs/operators.md (QuantizeLinear, DequantizeLinear), "
    "https://github.com/onnx/onnx-tensorrt/blob/main/docs/operators.md"
)
# TensorRT Developer Guide, "Working with Quantized Types" (Explicit Quantization, Q/DQ
# layer-placement recommendations):
# https://docs.nvidia.com/deeplearning/tensorrt/latest/inference-library/work-quantized-types.html
_GUIDE = "TensorRT Developer Guide, Working with Quantized Types"
_PLACEMENT = f"{_GUIDE}, Q/DQ Layer-Placement Recommendations"

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
# The weight input and the axis TensorRT takes per-channel weight scales on, per weighted
# operator. Gemm's depends on transB (see `weight_axis`).
WEIGHTED_OPS = {"Conv": (1, 0), "ConvTranspose": (1, 0), "MatMul": (1, 1), "Gemm": (1, 1)}
# Activations a weighted layer fuses with; a Q/DQ between the two breaks the fusion.
FUSED_ACTIVATIONS = frozenset(
    {
        "Relu",
        "LeakyRelu",
        "Sigmoid",
        "Tanh",
        "Clip",
        "HardSigmoid",
        "HardSwish",
        "Elu",
        "Selu",
        "Softplus",
        "BatchNormalization",
    }
)

INT32_BIAS = Rule(
    "qdq.int32-bias",
    "TensorRT has no INT32 DequantizeLinear: keep biases in float",
    f"{_OPERATORS_MD}; onnx/onnx-tensorrt#850, NVIDIA/TensorRT#3360, microsoft/onnxruntime#14229",
)
DTYPE = Rule(
    "qdq.dtype",
    "TensorRT quantizes to INT8 (FP8, INT4 from TensorRT 10), never UINT8",
    _OPERATORS_MD,
)
ZERO_POINT = Rule(
    "qdq.zero-point",
    "TensorRT quantization is symmetric: every zero point must be 0",
    _OPERATORS_MD,
)
SCALE = Rule(
    "qdq.scale",
    "Q/DQ scales must be constant, finite and positive",
    f"{_GUIDE}, Explicit Quantization",
)
ACTIVATION_PER_TENSOR = Rule(
    "qdq.activation-per-tensor",
    "activations are quantized per tensor (one scale)",
    f"{_GUIDE}, Quantization Schemes",
)
WEIGHT_AXIS = Rule(
    "qdq.weight-axis",
    "per-channel weight scales lie on axis 0 for Conv and ConvTranspose (NVIDIA/TensorRT#2380)",
    f"{_GUIDE}, Quantization Schemes",
)
WEIGHTED_INPUTS = Rule(
    "qdq.weighted-inputs",
    "quantize all inputs of a weighted layer (data and weights), or none",
    _PLACEMENT,
    severity="warning",
)
RESIDUAL = Rule(
    "qdq.residual",
    "quantize both inputs of a residual Add, or neither, so the add fuses into the convolution",
    _PLACEMENT,
    severity="warning",
)
CONCAT = Rule(
    "qdq.concat",
    "quantize every input of a Concat or none, so it runs in INT8 without re-quantizing",
    _PLACEMENT,
    severity="warning",
)
WEIGHTED_OUTPUT = Rule(
    "qdq.weighted-output",
    "do not quantize the output of a weighted layer before its activation: it blocks the fusion",
    _PLACEMENT,
    severity="warning",
)

INT8_WEIGHTS = Rule(
    "qdq.int8-weights",
    "TensorRT 8.x takes FP32 weights through QuantizeLinear, not INT8 weight initializers",
    "NVIDIA/TensorRT#2163 ('invalid weights type of Int8'); release/8.6 NvInfer.h IConstantLayer",
)
ZERO_POINT_INPUT = Rule(
    "qdq.zero-point-input",
    "TensorRT 8.x needs the zero point given as the third input of every Q/DQ",
    "onnx-tensorrt 8.5-GA/8.6-GA builtin_op_importers.cpp QuantDequantLinearHelper",
)

_INT8 = 3  # onnx.TensorProto.INT8
_UINT8 = 2
_INT32 = 6
# FP8 (E4M3FN) and INT4, which TensorRT 10's parser also takes.
_NEWER_TYPES = {17: "FLOAT8E4M3FN", 22: "INT4"}
_TYPE_NAMES = {
    _INT8: "INT8",
    _UINT8: "UINT8",
    _INT32: "INT32",
    4: "UINT16",
    5: "INT16",
    21: "UINT4",
}


def weight_axis(node: Any) -> int:
    """The output-channel axis of `node`'s weight (its input 1)."""
    if node.op_type == "Gemm":
        return 0 if attribute(node, "transB", 0) else 1
    return WEIGHTED_OPS[node.op_type][1]


def _quantized_type(view: GraphView, node: Any) -> int | None:
    """The integer type of a Q's output or a DQ's input: the zero point's type, else the
    constant input's, else ONNX's default for a Q without zero point (UINT8)."""
    if len(node.input) > 2 and node.input[2]:
        return view.constant_dtype(node.input[2])
    if node.op_type == "DequantizeLinear":
        constant = view.constant_dtype(node.input[0])
        if constant is not None:
            return constant
        producer = view.producer.get(node.input[0])
        if producer is not None and producer.op_type == "QuantizeLinear":
            return _quantized_type(view, producer)
    return _UINT8


def check_validity(
    view: GraphView, newer_types: bool, int8_weight_initializers: bool = True
) -> Iterator[Finding]:
    """Q/DQ nodes TensorRT's parser or builder rejects. `newer_types`: FP8/INT4 are allowed
    (TensorRT 10 and later); `int8_weight_initializers`: DequantizeLinear may read INT8 weights
    directly (9 and later; 8.x also needs every zero point given)."""
    allowed = {_INT8} | (set(_NEWER_TYPES) if newer_types else set())
    for node in view.nodes:
        if node.op_type not in QDQ_OPS:
            continue
        label = node_label(node)
        if not int8_weight_initializers:
            yield from _check_tensorrt_8_form(view, node, label)
        dtype = _quantized_type(view, node)
        if node.op_type == "DequantizeLinear" and dtype == _INT32:
            yield Finding(
                INT32_BIAS,
                label,
                f"dequantizes the INT32 tensor {node.input[0]} (a quantized bias)",
            )
            continue
        if dtype not in allowed:
            name = _TYPE_NAMES.get(dtype or -1, _NEWER_TYPES.get(dtype or -1, str(dtype)))
            yield Finding(
                DTYPE,
                label,
                f"{node.op_type} of {name}; calibrate for TensorRT "
                "(`jetkit calibrate --precision int8 --runtime tensorrt`)",
            )
        yield from _check_scale_and_zero_point(view, node, label)


def _check_tensorrt_8_form(view: GraphView, node: Any, label: str) -> Iterator[Finding]:
    if len(node.input) < 3 or not node.input[2]:
        yield Finding(ZERO_POINT_INPUT, label, "no zero point input")
    if node.op_type == "DequantizeLinear" and view.constant_dtype(node.input[0]) == _INT8:
        yield Finding(
            INT8_WEIGHTS,
            label,
            f"dequantizes the INT8 initializer {node.input[0]}; recalibrate with "
            "`jetkit calibrate --runtime tensorrt` (float weights through Q/DQ)",
        )


def _check_scale_and_zero_point(view: GraphView, node: Any, label: str) -> Iterator[Finding]:
    scale = view.constant_array(node.input[1])
    if scale is None:
        yield Finding(SCALE, label, f"scale {node.input[1]} is computed at run time")
        return
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        yield Finding(SCALE, label, f"scale {node.input[1]} has values <= 0 or not finite")
    if len(node.input) > 2 and node.input[2]:
        zero_point = view.constant_array(node.input[2])
        if zero_point is None or np.any(zero_point.astype(np.float64) != 0):
            yield Finding(ZERO_POINT, label, f"zero point {node.input[2]} is not 0")
    if scale.size > 1:
        yield from _check_per_channel(view, node, label, scale.size)


def _check_per_channel(view: GraphView, node: Any, label: str, channels: int) -> Iterator[Finding]:
    quantized = node.input[0]
    if node.op_type == "QuantizeLinear" and not view.is_constant(quantized):
        yield Finding(ACTIVATION_PER_TENSOR, label, f"quantizes activation {quantized} per channel")
        return
    if node.op_type == "DequantizeLinear" and not view.is_constant(quantized):
        producer = view.producer.get(quantized)
        weight_q = (
            producer is not None
            and producer.op_type == "QuantizeLinear"
            and (view.is_constant(producer.input[0]))
        )
        if not weight_q:
            yield Finding(
                ACTIVATION_PER_TENSOR, label, f"dequantizes activation {quantized} per channel"
            )
            return
    axis = int(attribute(node, "axis", 1))
    for consumer in _weight_consumers(view, node):
        wanted = weight_axis(consumer)
        if axis != wanted:
            yield Finding(
                WEIGHT_AXIS,
                label,
                f"per-channel scales on axis {axis}; {consumer.op_type} {node_label(consumer)} "
                f"needs axis {wanted}",
            )


def _weight_consumers(view: GraphView, node: Any) -> list[Any]:
    """The weighted layers whose weight input `node` (a DQ, or a Q before one) feeds."""
    found = []
    pending = [node]
    while pending:
        current = pending.pop()
        for consumer in view.consumers.get(current.output[0], []):
            if consumer.op_type == "DequantizeLinear":
                pending.append(consumer)
            elif consumer.op_type in WEIGHTED_OPS and consumer.input[1] == current.output[0]:
                found.append(consumer)
    return found


def _is_dequantized(view: GraphView, name: str) -> bool:
    return view.producer_op(name) == "DequantizeLinear"


def check_placement(view: GraphView) -> Iterator[Finding]:
    """Placement that keeps TensorRT from fusing INT8 kernels. Only for graphs with Q/DQ."""
    if not any(node.op_type in QDQ_OPS for node in view.nodes):
        return
    for node in view.nodes:
        label = node_label(node)
        if node.op_type in WEIGHTED_OPS:
            data, weight = node.input[0], node.input[1]
            if _is_dequantized(view, data) != _is_dequantized(view, weight):
                which = (
                    "its weights but not its data"
                    if _is_dequantized(view, weight)
                    else ("its data but not its weights")
                )
                yield Finding(WEIGHTED_INPUTS, label, f"Q/DQ on {which}; it runs in float")
            yield from _check_weighted_output(view, node, label)
        elif node.op_type == "Add" and all(view.is_activation(i) for i in node.input):
            quantized = [_is_dequantized(view, i) for i in node.input]
            if any(quantized) and not all(quantized):
                yield Finding(RESIDUAL, label, "one input has Q/DQ, the other not")
        elif node.op_type == "Concat":
            quantized = [_is_dequantized(view, i) for i in node.input if view.is_activation(i)]
            if any(quantized) and not all(quantized):
                yield Finding(
                    CONCAT, label, f"{sum(quantized)} of {len(quantized)} inputs have Q/DQ"
                )


def _check_weighted_output(view: GraphView, node: Any, label: str) -> Iterator[Finding]:
    for quantize in view.consumers.get(node.output[0], []):
        if quantize.op_type != "QuantizeLinear":
            continue
        for dequantize in view.consumers.get(quantize.output[0], []):
            fused = [
                c.op_type
                for c in view.consumers.get(dequantize.output[0], [])
                if c.op_type in FUSED_ACTIVATIONS
            ]
            if fused:
                yield Finding(
                    WEIGHTED_OUTPUT,
                    label,
                    f"Q/DQ between {node.op_type} and {fused[0]} ({node_label(quantize)})",
                )


def tensorrt_qdq_nodes(view: GraphView, excluded: Sequence[str]) -> list[str]:
    """The nodes whose inputs jetkit's TensorRT artifacts quantize: every weighted layer, and
    every residual Add (both inputs computed), except `excluded`."""
    skip = set(excluded)
    chosen = []
    for node in view.nodes:
        if node.name in skip:
            continue
        weighted = node.op_type in WEIGHTED_OPS and view.is_constant(node.input[1])
        residual = node.op_type == "Add" and all(view.is_activation(i) for i in node.input)
        if weighted or residual:
            chosen.append(node.name)
    return chosen


def detach_partial_concat_qdq(model: Any) -> int:
    """Feed each Concat that has Q/DQ on some inputs only the float tensors instead (the Q/DQ
    pair stays for the weighted layer that shares the tensor), in place; returns how many
    inputs were rewired. ONNX Runtime shares one Q/DQ pair among all consumers of a tensor, so
    a C2f or an upsample concat otherwise gets one quantized input out of several (`CONCAT`)."""
    view = GraphView(model)
    rewired = 0
    for node in view.nodes:
        if node.op_type != "Concat":
            continue
        sources = [_dequantized_source(view, name) for name in node.input]
        if all(sources) or not any(sources):
            continue
        for index, source in enumerate(sources):
            if source is not None:
                node.input[index] = source
                rewired += 1
    if rewired:
        _remove_unused_qdq(model)
    return rewired


def _dequantized_source(view: GraphView, name: str) -> str | None:
    """The float activation behind a Q→DQ pair that produces `name`, else None."""
    dequantize = view.producer.get(name)
    if dequantize is None or dequantize.op_type != "DequantizeLinear":
        return None
    quantize = view.producer.get(dequantize.input[0])
    if quantize is None or quantize.op_type != "QuantizeLinear":
        return None
    return str(quantize.input[0]) if view.is_activation(quantize.input[0]) else None


def _remove_unused_qdq(model: Any) -> None:
    outputs = {o.name for o in model.graph.output}
    while True:
        used = {name for node in model.graph.node for name in node.input} | outputs
        unused = [
            node
            for node in model.graph.node
            if node.op_type in QDQ_OPS and not any(out in used for out in node.output)
        ]
        if not unused:
            return
        for node in unused:
            model.graph.node.remove(node)
