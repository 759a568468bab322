"""A read-only view of an ONNX graph for the rule checks: producers, consumers, constants and
their values, attributes and tensor types, built once per model."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class GraphView:
    """`model` (an `onnx.ModelProto`) indexed by tensor name. Constants are initializers and the
    outputs of `Constant` nodes; `constant_array` materializes them on demand."""

    model: Any
    producer: dict[str, Any] = field(init=False)
    consumers: dict[str, list[Any]] = field(init=False)
    initializers: dict[str, Any] = field(init=False)
    constant_nodes: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        graph = self.model.graph
        self.producer = {out: node for node in graph.node for out in node.output}
        self.consumers = defaultdict(list)
        for node in graph.node:
            for name in node.input:
                if name:
                    self.consumers[name].append(node)
        self.initializers = {init.name: init for init in graph.initializer}
        self.constant_nodes = {
            node.output[0]: node for node in graph.node if node.op_type == "Constant"
        }

    @property
    def nodes(self) -> list[Any]:
        return list(self.model.graph.node)

    def is_constant(self, name: str) -> bool:
        return name in self.initializers or name in self.constant_nodes

    def constant_array(self, name: str) -> np.ndarray | None:
        from onnx import numpy_helper

        if name in self.initializers:
            return numpy_helper.to_array(self.initializers[name])
        node = self.constant_nodes.get(name)
        if node is None:
            return None
        for attribute in node.attribute:
            if attribute.name == "value":
                return numpy_helper.to_array(attribute.t)
        return None

    def constant_dtype(self, name: str) -> int | None:
        """The ONNX element type (`onnx.TensorProto.INT8`…) of a constant, else None."""
        if name in self.initializers:
            return int(self.initializers[name].data_type)
        node = self.constant_nodes.get(name)
        if node is None:
            return None
        for attribute in node.attribute:
            if attribute.name == "value":
                return int(attribute.t.data_type)
        return None

    def producer_op(self, name: str) -> str | None:
        node = self.producer.get(name)
        return None if node is None else str(node.op_type)

    def is_activation(self, name: str) -> bool:
        """Computed at run time: a graph input or a non-constant node's output."""
        return (
            bool(name)
            and not self.is_constant(name)
            and (name in self.producer or name in self.graph_inputs)
        )

    @property
    def graph_inputs(self) -> set[str]:
        return {i.name for i in self.model.graph.input} - set(self.initializers)


def attribute(node: Any, name: str, default: Any = None) -> Any:
    from onnx import helper

    for attr in node.attribute:
        if attr.name == name:
            value = helper.get_attribute_value(attr)
            return value.decode() if isinstance(value, bytes) else value
    return default


def node_label(node: Any) -> str:
    return str(node.name or f"{node.op_type}({', '.join(node.output)})")


# A manifest's artifact kind → the precision the model holds.
KIND_PRECISION = {"onnx": "fp32", "onnx-fp16": "fp16", "onnx-int8-qdq": "int8"}


def artifact_kind_of(view: GraphView) -> str:
    """What the graph holds, as a manifest's artifact kind: `onnx-int8-qdq` with Q/DQ nodes,
    `onnx-fp16` with FLOAT16 weights, else `onnx` (FP32)."""
    if any(node.op_type in ("QuantizeLinear", "DequantizeLinear") for node in view.nodes):
        return "onnx-int8-qdq"
    float16 = 10  # onnx.TensorProto.FLOAT16
    if any(init.data_type == float16 for init in view.initializers.values()):
        return "onnx-fp16"
    return "onnx"
