"""Small ONNX graphs built with `onnx.helper`, each shaped to keep or break one TensorRT rule.

`conv_block` is `images → [Q/DQ] → Conv(W [, b]) → Relu → output`, with the quantization of
each part chosen by the caller: how TensorRT's toolkits write it, or how ONNX Runtime's
defaults do (INT8 weight initializers, an INT32 bias, UINT8 activations).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _model(nodes, inputs, outputs, initializers, opset: int = OPSET) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def qdq_pair(tensor: str, scale: str, zero_point: str, name: str, **attributes) -> list:
    """`tensor → QuantizeLinear → DequantizeLinear → <name>_dq`, nodes `q_<name>`, `dq_<name>`."""
    return [
        helper.make_node(
            "QuantizeLinear", [tensor, scale, zero_point], [f"{name}_q"], name=f"q_{name}",
            **attributes,
        ),
        helper.make_node(
            "DequantizeLinear", [f"{name}_q", scale, zero_point], [f"{name}_dq"],
            name=f"dq_{name}", **attributes,
        ),
    ]  # fmt: skip


def image_input(batch: int | str = 1, size: int = 32, dtype: int = TensorProto.FLOAT):
    return helper.make_tensor_value_info("images", dtype, [batch, 3, size, size])


def conv_block(
    *,
    activation_qdq: str | None = "int8",  # "int8", "uint8", None
    weight_qdq: str | None = "float-q",  # "float-q" (W → Q → DQ), "int8-init" (INT8 W → DQ), None
    bias: str | None = "float",  # "float", "int32-dq", None
    weight_axis: int = 0,
    zero_point: int = 0,
    activation_scale_count: int = 1,
    quantize_conv_output: bool = False,
    op: str = "Conv",
    batch: int | str = 1,
    opset: int = OPSET,
) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    channels_out = 4
    weight_shape = [channels_out, 3, 3, 3] if op == "Conv" else [3, channels_out, 3, 3]
    weight = rng.normal(size=weight_shape).astype(np.float32)
    inits = []
    nodes = []
    data = "images"
    if activation_qdq:
        zp_type = np.int8 if activation_qdq == "int8" else np.uint8
        scale = np.full(activation_scale_count, 0.01, np.float32)
        inits += [
            numpy_helper.from_array(scale if activation_scale_count > 1 else scale[0], "a_scale"),
            numpy_helper.from_array(np.array(zero_point, zp_type), "a_zp"),
        ]
        nodes += qdq_pair("images", "a_scale", "a_zp", "images")
        data = "images_dq"
    axis_channels = weight_shape[weight_axis]
    w_scale = numpy_helper.from_array(np.full(axis_channels, 0.02, np.float32), "w_scale")
    w_zp = numpy_helper.from_array(np.zeros(axis_channels, np.int8), "w_zp")
    weight_name = "W"
    if weight_qdq == "float-q":
        inits += [numpy_helper.from_array(weight, "W"), w_scale, w_zp]
        nodes += qdq_pair("W", "w_scale", "w_zp", "W", axis=weight_axis)
        weight_name = "W_dq"
    elif weight_qdq == "int8-init":
        inits += [numpy_helper.from_array((weight * 50).astype(np.int8), "W_int8"), w_scale, w_zp]
        nodes.append(
            helper.make_node(
                "DequantizeLinear",
                ["W_int8", "w_scale", "w_zp"],
                ["W_dq"],
                name="dq_W",
                axis=weight_axis,
            )
        )
        weight_name = "W_dq"
    else:
        inits.append(numpy_helper.from_array(weight, "W"))
    conv_inputs = [data, weight_name]
    if bias == "float":
        inits.append(numpy_helper.from_array(np.zeros(channels_out, np.float32), "B"))
        conv_inputs.append("B")
    elif bias == "int32-dq":
        inits += [
            numpy_helper.from_array(np.zeros(channels_out, np.int32), "B_int32"),
            numpy_helper.from_array(np.full(channels_out, 2e-4, np.float32), "B_scale"),
            numpy_helper.from_array(np.zeros(channels_out, np.int32), "B_zp"),
        ]
        nodes.append(
            helper.make_node(
                "DequantizeLinear", ["B_int32", "B_scale", "B_zp"], ["B_dq"], name="dq_B", axis=0
            )
        )
        conv_inputs.append("B_dq")
    nodes.append(helper.make_node(op, conv_inputs, ["conv"], name="conv", pads=[1, 1, 1, 1]))
    relu_input = "conv"
    if quantize_conv_output:
        inits += [
            numpy_helper.from_array(np.array(0.05, np.float32), "c_scale"),
            numpy_helper.from_array(np.array(0, np.int8), "c_zp"),
        ]
        nodes += qdq_pair("conv", "c_scale", "c_zp", "conv")
        relu_input = "conv_dq"
    nodes.append(helper.make_node("Relu", [relu_input], ["output0"], name="relu"))
    out = helper.make_tensor_value_info("output0", TensorProto.FLOAT, None)
    return _model(nodes, [image_input(batch)], [out], inits, opset)


def single_node(
    op: str,
    inputs: list[str],
    initializers: dict[str, np.ndarray] | None = None,
    domain: str = "",
    batch: int | str = 1,
    extra_inputs: list[tuple[str, list[int | str]]] = (),
    **attributes,
) -> onnx.ModelProto:
    """`images` (and `extra_inputs`) → one `op` node → `output0`."""
    node = helper.make_node(op, inputs, ["output0"], name=op.lower(), domain=domain, **attributes)
    inits = [numpy_helper.from_array(v, k) for k, v in (initializers or {}).items()]
    graph_inputs = [image_input(batch)] + [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)
        for name, shape in extra_inputs
    ]
    out = helper.make_tensor_value_info("output0", TensorProto.FLOAT, None)
    model = _model([node], graph_inputs, [out], inits)
    if domain:
        model.opset_import.append(helper.make_opsetid(domain, 1))
    return model


def residual_add(quantized: tuple[bool, bool]) -> onnx.ModelProto:
    """`images → Relu → a`, `images → Sigmoid → b`, `Add(a', b')` with a Q/DQ on each input
    that `quantized` says."""
    inits = [
        numpy_helper.from_array(np.array(0.01, np.float32), "s"),
        numpy_helper.from_array(np.array(0, np.int8), "z"),
    ]
    nodes = [
        helper.make_node("Relu", ["images"], ["a"], name="relu"),
        helper.make_node("Sigmoid", ["images"], ["b"], name="sigmoid"),
    ]
    add_inputs = []
    for name, wanted in zip(("a", "b"), quantized, strict=True):
        if wanted:
            nodes += qdq_pair(name, "s", "z", name)
            add_inputs.append(f"{name}_dq")
        else:
            add_inputs.append(name)
    nodes.append(helper.make_node("Add", add_inputs, ["output0"], name="add"))
    out = helper.make_tensor_value_info("output0", TensorProto.FLOAT, None)
    return _model(nodes, [image_input()], [out], inits)


def concat_of(quantized: tuple[bool, ...]) -> onnx.ModelProto:
    """Relu outputs concatenated on the channel axis, a Q/DQ pair before the inputs
    `quantized` names; each Q/DQ'd tensor also feeds a Sigmoid (as a shared Q/DQ would)."""
    inits = [
        numpy_helper.from_array(np.array(0.01, np.float32), "s"),
        numpy_helper.from_array(np.array(0, np.int8), "z"),
    ]
    nodes, concat_inputs, outputs = [], [], []
    for index, wanted in enumerate(quantized):
        name = f"r{index}"
        nodes.append(helper.make_node("Relu", ["images"], [name], name=f"relu{index}"))
        if wanted:
            nodes += qdq_pair(name, "s", "z", name)
            nodes.append(
                helper.make_node("Sigmoid", [f"{name}_dq"], [f"side{index}"], name=f"side{index}")
            )
            outputs.append(helper.make_tensor_value_info(f"side{index}", TensorProto.FLOAT, None))
            concat_inputs.append(f"{name}_dq")
        else:
            concat_inputs.append(name)
    nodes.append(helper.make_node("Concat", concat_inputs, ["output0"], name="concat", axis=1))
    outputs.insert(0, helper.make_tensor_value_info("output0", TensorProto.FLOAT, None))
    return _model(nodes, [image_input()], outputs, inits)
