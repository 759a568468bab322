"""TensorRT's ONNX operator tables per version (onnx-tensorrt docs/operators.md)."""

import numpy as np
import pytest
from onnx import helper
from onnx_graphs import conv_block, single_node

from calibration.trt_rules.graph import GraphView
from calibration.trt_rules.operators import SUPPORTED_OPERATORS, TABLE_VERSIONS, check_operators


def findings(model, table):
    return list(check_operators(GraphView(model), table))


def test_each_table_keeps_every_operator_of_the_one_before():
    for older, newer in zip(TABLE_VERSIONS, TABLE_VERSIONS[1:], strict=False):
        assert SUPPORTED_OPERATORS[older] <= SUPPORTED_OPERATORS[newer]


@pytest.mark.parametrize(
    "op",
    # What YOLOv5/v8/11, YOLOX, the kit's own models and end-to-end exports are made of.
    [
        "Conv",
        "Sigmoid",
        "Mul",
        "Add",
        "Concat",
        "Split",
        "Slice",
        "Reshape",
        "Transpose",
        "Softmax",
        "MaxPool",
        "Resize",
        "Sub",
        "Div",
        "Gather",
        "Shape",
        "ReduceMax",
        "TopK",
        "NonMaxSuppression",
        "Clip",
        "Relu",
        "Unsqueeze",
        "Cast",
        "QuantizeLinear",
        "DequantizeLinear",
        "Pow",  # YOLOv5's box decode
        "MatMul",  # YOLO11's attention
        "Expand",
        "Where",
        "Range",
        "Equal",
    ],
)
def test_detector_operators_parse_on_every_version(op):
    assert all(op in SUPPORTED_OPERATORS[table] for table in TABLE_VERSIONS)


def test_an_operator_added_later_is_an_error_on_older_versions_naming_the_first_that_has_it():
    model = single_node("Swish", ["images"])
    found = findings(model, "10")
    assert [f.rule.id for f in found] == ["onnx.operator"]
    assert "TensorRT 10 cannot parse Swish (TensorRT 11 has it)" in found[0].message
    assert findings(model, "11") == []


def test_an_unknown_operator_is_an_error():
    found = findings(single_node("DoesNotExist", ["images"]), "10")
    assert [f.rule.id for f in found] == ["onnx.operator"]


def test_custom_domain_operators_need_a_plugin():
    plugin = single_node("EfficientNMS_TRT", ["images"], domain="TRT")
    assert [(f.rule.id, f.severity) for f in findings(plugin, "10")] == [("onnx.plugin", "warning")]
    custom = single_node("FusedConv", ["images"], domain="com.microsoft")
    assert [(f.rule.id, f.severity) for f in findings(custom, "10")] == [("onnx.operator", "error")]


def test_topk_needs_a_constant_k_and_below_3840_on_tensorrt_10():
    k_big = single_node("TopK", ["images", "k"], {"k": np.array([4000], np.int64)})
    assert findings(k_big, "8.6") == []
    assert "must be < 3840" in findings(k_big, "10")[0].message
    k_input = single_node("TopK", ["images", "k"], extra_inputs=[("k", [1])])
    assert "must be a constant" in findings(k_input, "8.6")[0].message


def test_a_newer_opset_than_the_parser_reads_is_a_warning():
    found = findings(conv_block(opset=18), "8.6")
    assert [(f.rule.id, f.severity) for f in found] == [("onnx.opset", "warning")]
    assert findings(conv_block(opset=18), "10") == []


def test_resize_with_antialias_is_an_error():
    model = single_node(
        "Resize",
        ["images", "", "scales"],
        {"scales": np.array([1, 1, 2, 2], np.float32)},
        antialias=1,
    )
    model.opset_import[0].CopyFrom(helper.make_opsetid("", 18))
    assert [f.rule.id for f in findings(model, "11")] == ["onnx.attribute"]
