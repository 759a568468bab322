"""Rewrites of a Q/DQ model that ONNX Runtime's CPU runs faster, with the same results.

ONNX Runtime's CPU `Softmax` works row by row: on a YOLOv8 DFL (`1×16×4×A`, softmax over 16
bins on axis 1) it costs about 0.8 ms at 320 px, a sixth of the whole INT8 model, against about
0.1 ms for the same arithmetic as five vectorised element-wise and reduce operators
(`benchmarks/bench_int8_models.py`). The float islands keep that softmax out of INT8, so the CPU
artifact decomposes it; a softmax the quantizer did put in INT8 (`DequantizeLinear → Softmax →
QuantizeLinear`) is left for ONNX Runtime to fuse into its faster `QLinearSoftmax`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from calibration.trt_rules.graph import GraphView

# Softmax before opset 13 flattens every axis from `axis` onwards into one; from 13 it is one
# axis. Reduce ops take `axes` as an input from opset 18 (ReduceSum from 13).
MIN_SOFTMAX_OPSET = 13
REDUCE_AXES_INPUT_OPSET = 18


def default_opset(model: Any) -> int:
    """The model's version of the default ONNX domain."""
    return max(
        (int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0
    )


def float_softmaxes(view: GraphView) -> list[Any]:
    """The `Softmax` nodes outside a `DequantizeLinear → Softmax → QuantizeLinear` unit."""
    found = []
    for node in view.nodes:
        if node.op_type != "Softmax":
            continue
        fed_quantized = view.producer_op(node.input[0]) == "DequantizeLinear"
        readers = view.consumers.get(node.output[0], [])
        read_quantized = bool(readers) and all(r.op_type == "QuantizeLinear" for r in readers)
        if not (fed_quantized and read_quantized):
            found.append(node)
    return found


def decompose_float_softmax(model: Any) -> int:
    """Replaces, in place, every float `Softmax(x, axis)` of `model` by
    `exp(x - max(x, axis)) / sum(exp(x - max(x, axis)), axis)`; returns how many. A model
    below opset 13 is left as it is (its softmax spans several axes)."""
    opset = default_opset(model)
    if opset < MIN_SOFTMAX_OPSET:
        return 0
    targets = {node.output[0] for node in float_softmaxes(GraphView(model))}
    if not targets:
        return 0
    graph = model.graph
    rewritten: list[Any] = []
    for node in graph.node:
        if node.op_type != "Softmax" or node.output[0] not in targets:
            rewritten.append(node)
            continue
        nodes, axes = _softmax_arithmetic(node, opset)
        rewritten += nodes
        graph.initializer.append(axes)
    del graph.node[:]
    graph.node.extend(rewritten)
    return len(targets)


def _softmax_arithmetic(softmax: Any, opset: int) -> tuple[list[Any], Any]:
    """The five nodes computing `softmax`'s output, named after it, and their `axes` initializer."""
    from onnx import helper, numpy_helper

    axis = next((int(a.i) for a in softmax.attribute if a.name == "axis"), -1)
    x, y, prefix = softmax.input[0], softmax.output[0], softmax.name or softmax.output[0]
    axes = numpy_helper.from_array(np.array([axis], np.int64), f"{prefix}/axes")

    def reduce(op: str, source: str, out: str) -> Any:
        if op == "ReduceMax" and opset < REDUCE_AXES_INPUT_OPSET:
            return helper.make_node(
                op, [source], [out], name=f"{prefix}/{op}", axes=[axis], keepdims=1
            )
        return helper.make_node(op, [source, axes.name], [out], name=f"{prefix}/{op}", keepdims=1)

    nodes = [
        reduce("ReduceMax", x, f"{prefix}/max"),
        helper.make_node("Sub", [x, f"{prefix}/max"], [f"{prefix}/shifted"], name=f"{prefix}/Sub"),
        helper.make_node("Exp", [f"{prefix}/shifted"], [f"{prefix}/exp"], name=f"{prefix}/Exp"),
        reduce("ReduceSum", f"{prefix}/exp", f"{prefix}/sum"),
        helper.make_node("Div", [f"{prefix}/exp", f"{prefix}/sum"], [y], name=f"{prefix}/Div"),
    ]  # fmt: skip
    return nodes, axes
