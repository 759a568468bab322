"""The CPU artifact's rewrites change how ONNX Runtime computes, never what: a float softmax
becomes max/subtract/exp/sum/divide with the same outputs, on every opset that changes how
reductions take their axes; what the quantizer put in INT8, and old opsets whose softmax means
something else, are left alone."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from yolo_heads import yolo_head

from calibration.cpu_graph import decompose_float_softmax, default_opset, float_softmaxes
from calibration.trt_rules.graph import GraphView

SHAPE = (1, 16, 4, 30)


def softmax_model(axis: int, opset: int) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Softmax", ["x"], ["y"], name="dfl", axis=axis)],
        "softmax",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, SHAPE)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize("opset", [13, 17, 18, 19])
@pytest.mark.parametrize("axis", [1, -1, 2])
def test_the_decomposed_softmax_gives_the_same_outputs(axis, opset):
    model = softmax_model(axis, opset)
    x = np.random.default_rng(axis + opset).normal(0, 8, SHAPE).astype(np.float32)
    expected = run(model, x)
    assert decompose_float_softmax(model) == 1
    onnx.checker.check_model(model, full_check=True)
    assert [n.op_type for n in model.graph.node] == ["ReduceMax", "Sub", "Exp", "ReduceSum", "Div"]
    assert all(n.name.startswith("dfl/") for n in model.graph.node)
    np.testing.assert_allclose(run(model, x), expected, rtol=1e-5, atol=1e-7)


def test_softmax_before_opset_13_spans_several_axes_and_is_kept():
    model = softmax_model(1, 11)
    assert default_opset(model) == 11
    assert decompose_float_softmax(model) == 0
    assert [n.op_type for n in model.graph.node] == ["Softmax"]


def test_a_softmax_the_quantizer_put_in_int8_is_left_to_onnxruntimes_qlinear_fusion():
    scale = numpy_helper.from_array(np.array(1 / 255, np.float32), "scale")
    zero = numpy_helper.from_array(np.array(0, np.uint8), "zero")
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "scale", "zero"], ["xd"]),
        helper.make_node("Softmax", ["xd"], ["s"], axis=1),
        helper.make_node("QuantizeLinear", ["s", "scale", "zero"], ["sq"]),
        helper.make_node("DequantizeLinear", ["sq", "scale", "zero"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "qdq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, SHAPE)],
        [scale, zero],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert float_softmaxes(GraphView(model)) == []
    assert decompose_float_softmax(model) == 0


def test_a_yolov8_head_decodes_the_same_after_the_rewrite():
    model = yolo_head("v8-split")
    x = np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32)
    expected = run(model, x)
    assert decompose_float_softmax(model) == 1
    assert not [n for n in model.graph.node if n.op_type == "Softmax"]
    np.testing.assert_allclose(run(model, x), expected, rtol=1e-5, atol=1e-5)
