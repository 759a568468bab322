"""Network I/O types TensorRT builds with and jetkit's runtime binds."""

from onnx import TensorProto, helper
from onnx_graphs import single_node

from calibration.trt_rules.graph import GraphView
from calibration.trt_rules.io import check_io


def with_output_type(elem_type):
    model = single_node("Relu", ["images"])
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info("output0", elem_type, None))
    return model


def test_float_int32_uint8_and_half_io_bind():
    for elem_type in (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.INT32, TensorProto.UINT8):
        assert list(check_io(GraphView(with_output_type(elem_type)), int64_io=False)) == []


def test_int64_outputs_are_narrowed_on_tensorrt_8_and_bound_on_10():
    model = with_output_type(TensorProto.INT64)
    found = list(check_io(GraphView(model), int64_io=False))
    assert [(f.rule.id, f.severity) for f in found] == [("io.int64-narrowed", "warning")]
    assert list(check_io(GraphView(model), int64_io=True)) == []


def test_double_and_bfloat16_io_are_errors():
    for elem_type, name in ((TensorProto.DOUBLE, "DOUBLE"), (TensorProto.BFLOAT16, "BFLOAT16")):
        found = list(check_io(GraphView(with_output_type(elem_type)), int64_io=True))
        assert [f.rule.id for f in found] == ["io.dtype"]
        assert name in found[0].message
