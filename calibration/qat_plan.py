"""What quantization-aware fine-tuning must imitate, read from a PTQ artifact: for each
convolution that runs in INT8, its input's quantization (scale, zero point, integer range) and
its float weights in the source graph, by which the trainer finds the same layer in torch.

Pure: ONNX graphs in, plain data out. The trainer (`trainer.qat`) gets these through
`jetkit calibrate --qat`, so calibration never imports torch and the trainer never parses a Q/DQ
graph; the fine-tuned model is then written with the same ranges and float islands
(`calibration.int8.quantize_int8(ranges=…)`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from calibration.trt_rules.graph import GraphView

# ONNX zero-point element type → the integer range QuantizeLinear saturates to.
_INTEGER_RANGE = {2: (0, 255), 3: (-128, 127)}  # TensorProto.UINT8, TensorProto.INT8


@dataclass(frozen=True)
class ConvFakeQuant:
    """One INT8 convolution. Its weights are per-channel symmetric INT8 on axis 0 in both
    runtimes' layouts (scale = max|w| / 127 per output channel), recomputed from the weights as
    they train; its input is `round(x / input_scale) + input_zero_point` clamped to
    [input_qmin, input_qmax], fixed by calibration."""

    node: str
    weight_oihw: np.ndarray
    input_scale: float
    input_zero_point: int
    input_qmin: int
    input_qmax: int


def conv_fake_quants(qdq_model: Any, source_model: Any) -> list[ConvFakeQuant]:
    """Every `Conv` of `qdq_model` fed through a `DequantizeLinear`, with its weights taken from
    the same-named node of `source_model` (the FP32 graph it was quantized from)."""
    qdq, source = GraphView(qdq_model), GraphView(source_model)
    source_convs = {n.name: n for n in source.nodes if n.op_type == "Conv"}
    found = []
    for node in qdq.nodes:
        if node.op_type != "Conv" or qdq.producer_op(node.input[0]) != "DequantizeLinear":
            continue
        original = source_convs.get(node.name)
        weight = None if original is None else source.constant_array(original.input[1])
        if weight is None:
            continue
        dequantize = qdq.producer[node.input[0]]
        scale = qdq.constant_array(dequantize.input[1])
        has_zero_point = len(dequantize.input) > 2 and bool(dequantize.input[2])
        zero_point = qdq.constant_array(dequantize.input[2]) if has_zero_point else None
        dtype = qdq.constant_dtype(dequantize.input[2]) if has_zero_point else None
        # No zero point means int8 (ONNX's default for QuantizeLinear).
        qmin, qmax = _INTEGER_RANGE[dtype or 3]
        found.append(
            ConvFakeQuant(
                node=node.name,
                weight_oihw=np.asarray(weight, np.float32),
                input_scale=float(np.asarray(scale).reshape(-1)[0]),
                input_zero_point=0 if zero_point is None else int(np.asarray(zero_point).flat[0]),
                input_qmin=qmin,
                input_qmax=qmax,
            )
        )
    return found
