"""Float islands: the parts of a detector graph that INT8 ruins in every YOLO-family export, found
from the graph's structure alone (no node names), so that jetkit exports, Ultralytics
YOLOv5/v8/11 and YOLOX graphs all keep them in float (FP16 inside a TensorRT engine).

- `first-conv`: the first learned layer reads the raw image. Its input (0-1 or 0-255 pixels) is
  quantized well, but it has 3 input channels, so each output sums few products and per-channel
  weight rounding does not average out; every later layer inherits its error.
- `dfl`: the distribution-focal-loss decode. A softmax over `reg_max` bins turns each box side
  into a distribution, and a fixed 1x1 convolution with weights 0..reg_max-1 takes its mean.
  Probabilities near 0 and 1 share one 8-bit scale, and rounding a distribution's mass moves the
  box edge by whole bins (pixels times the stride).
- `box-class-concat`: a concatenation of box regression with class logits that is split apart
  again later. The two have ranges an order of magnitude apart, and one per-tensor scale for both
  spends most of the 256 levels on the wider one.
- `decode`: everything after the last learned layer (grid offsets, strides, sigmoid, the output
  concat). It is cheap arithmetic in pixels, where one INT8 step is a visible box shift.

Published YOLOv8 PTQ recipes and NVIDIA's Model Optimizer keep the same parts in higher
precision: its ONNX quantizer leaves the output head's non-conv ops and Softmax unquantized.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from calibration.trt_rules.graph import GraphView
from calibration.trt_rules.qdq import WEIGHTED_OPS

REASONS = {
    "first-conv": "first learned layer, on the raw image (3 input channels: rounding does not "
    "average out, and every later layer inherits it)",
    "dfl": "distribution-focal-loss decode (softmax over the box bins and its fixed-weight 1x1 "
    "conv): rounding moves box edges by whole bins",
    "box-class-concat": "concatenates box regression with class logits before they are split: "
    "ranges an order of magnitude apart would share one INT8 scale",
    "decode": "after the last learned layer (grid, strides, sigmoid, output concat): pixel "
    "arithmetic where one INT8 step shifts boxes",
}
# Ops that only move values around: a concatenation seen through them is still split later.
_LAYOUT_OPS = frozenset({"Reshape", "Transpose", "Concat", "Flatten", "Squeeze", "Unsqueeze"})
_SPLIT_OPS = frozenset({"Split", "Slice", "Gather"})


@dataclass(frozen=True)
class FloatIsland:
    """One node kept in float and why (a key of `REASONS`)."""

    node: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"node": self.node, "reason": self.reason}


def is_projection_conv(view: GraphView, node: Any) -> bool:
    """A convolution whose weights are fixed rather than learned: every output channel's kernel
    is `0, 1, …, R-1` over its input channels (1x1), the expectation that turns a DFL
    distribution into a distance."""
    if node.op_type != "Conv" or len(node.input) < 2:
        return False
    weight = view.constant_array(node.input[1])
    if weight is None or weight.ndim != 4 or weight.shape[2:] != (1, 1) or weight.shape[1] < 2:
        return False
    bins = np.arange(weight.shape[1], dtype=np.float64)
    return bool(np.all(weight[:, :, 0, 0] == bins))


def is_learned_layer(view: GraphView, node: Any) -> bool:
    """A layer with trained constant weights (Conv, ConvTranspose, MatMul, Gemm): where a
    detector's compute is, and what INT8 speeds up."""
    return (
        node.op_type in WEIGHTED_OPS
        and len(node.input) > 1
        and view.is_constant(node.input[1])
        and not is_projection_conv(view, node)
    )


def decode_tail(view: GraphView) -> list[Any]:
    """The nodes between the last learned layers and the graph outputs, found by walking back
    from the outputs and stopping at each learned layer (a DFL projection is not one)."""
    tail: list[Any] = []
    seen: set[str] = set()
    stack = [output.name for output in view.model.graph.output]
    while stack:
        node = view.producer.get(stack.pop())
        if node is None or node.name in seen or is_learned_layer(view, node):
            continue
        seen.add(node.name)
        tail.append(node)
        stack.extend(node.input)
    return tail


def first_learned_layers(view: GraphView) -> list[Any]:
    """The learned layers that read a graph input through no other learned layer (the stem
    convolution; after YOLOv5's Focus slicing, or a YOLOX input transpose, too)."""
    found: list[Any] = []
    seen: set[str] = set()
    stack = list(view.graph_inputs)
    while stack:
        for node in view.consumers.get(stack.pop(), []):
            if node.name in seen:
                continue
            seen.add(node.name)
            if is_learned_layer(view, node):
                found.append(node)
            else:
                stack.extend(node.output)
    return found


def _is_split_later(view: GraphView, node: Any, tail_names: set[str]) -> bool:
    """Whether `node`'s output, through layout-only ops of the tail, reaches a Split, Slice or
    Gather of the tail."""
    stack = list(node.output)
    seen: set[str] = set()
    while stack:
        for consumer in view.consumers.get(stack.pop(), []):
            if consumer.name in seen or consumer.name not in tail_names:
                continue
            seen.add(consumer.name)
            if consumer.op_type in _SPLIT_OPS:
                return True
            if consumer.op_type in _LAYOUT_OPS:
                stack.extend(consumer.output)
    return False


def _feeds_from_layers(view: GraphView, node: Any) -> int:
    """How many distinct learned layers feed `node` through layout-only ops and elementwise ops
    of one computed input (YOLOX's sigmoids on the scores it concatenates with boxes)."""
    layers: set[str] = set()
    stack = list(node.input)
    seen: set[str] = set()
    while stack:
        producer = view.producer.get(stack.pop())
        if producer is None or producer.name in seen:
            continue
        seen.add(producer.name)
        if is_learned_layer(view, producer):
            layers.add(producer.name)
        elif producer.op_type in _LAYOUT_OPS or _single_computed_input(view, producer):
            stack.extend(producer.input)
    return len(layers)


def _single_computed_input(view: GraphView, node: Any) -> bool:
    return sum(view.is_activation(name) for name in node.input) == 1


def _tail_reason(view: GraphView, node: Any, tail_names: set[str]) -> str:
    if node.op_type == "Softmax" or is_projection_conv(view, node):
        return "dfl"
    if (
        node.op_type == "Concat"
        and _feeds_from_layers(view, node) > 1
        and _is_split_later(view, node, tail_names)
    ):
        return "box-class-concat"
    return "decode"


def float_islands(view: GraphView) -> list[FloatIsland]:
    """Every node to keep in float, with its reason, in graph order. A graph with no learned
    layer has no islands (the caller refuses it)."""
    tail = decode_tail(view)
    tail_names = {node.name for node in tail}
    reasons = {node.name: _tail_reason(view, node, tail_names) for node in tail}
    for node in first_learned_layers(view):
        reasons.setdefault(node.name, "first-conv")
    return [
        FloatIsland(node.name, reasons[node.name]) for node in view.nodes if node.name in reasons
    ]


def island_counts(islands: list[FloatIsland]) -> dict[str, int]:
    """Nodes kept in float per reason, in `REASONS` order (reasons with none left out)."""
    counts = {reason: sum(i.reason == reason for i in islands) for reason in REASONS}
    return {reason: count for reason, count in counts.items() if count}


def describe_islands(islands: list[FloatIsland]) -> Iterator[str]:
    """One line per reason: how many nodes, and why they stay in float."""
    for reason, count in island_counts(islands).items():
        yield f"{count} node(s) in float: {REASONS[reason]}"
