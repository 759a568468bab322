"""Q/DQ as TensorRT takes it: each rule on a graph that keeps it and one that breaks it, and the
placement jetkit's own TensorRT artifacts use."""

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx_graphs import concat_of, conv_block, residual_add

from calibration.trt_rules.check import CheckTarget, check_model
from calibration.trt_rules.graph import GraphView
from calibration.trt_rules.qdq import (
    check_placement,
    check_validity,
    detach_partial_concat_qdq,
    tensorrt_qdq_nodes,
)


def rule_ids(findings):
    return sorted({f.rule.id for f in findings})


def validity(model, newer_types=True):
    return list(check_validity(GraphView(model), newer_types))


def test_tensorrt_toolkit_layout_is_valid_and_well_placed():
    # Float weights through Q/DQ on axis 0, float bias, INT8 activations with zero point 0:
    # what pytorch-quantization and ModelOpt write, and what every TensorRT from 8.5 parses.
    model = conv_block()
    for version in ("8.5", "8.6", "10.3", "11.4.1"):
        assert check_model(model, CheckTarget(version)) == []


def test_a_quantized_bias_is_an_error_naming_the_node():
    findings = validity(conv_block(bias="int32-dq"))
    assert rule_ids(findings) == ["qdq.int32-bias"]
    assert findings[0].node == "dq_B"
    assert "onnx/onnx-tensorrt#850" in findings[0].rule.source


def test_uint8_activations_are_an_error():
    assert rule_ids(validity(conv_block(activation_qdq="uint8"))) == ["qdq.dtype"]


def test_a_nonzero_zero_point_is_an_error():
    findings = validity(conv_block(zero_point=3))
    assert rule_ids(findings) == ["qdq.zero-point"]
    assert {f.node for f in findings} == {"q_images", "dq_images"}


def test_per_channel_activations_are_an_error():
    findings = validity(conv_block(activation_scale_count=3))
    assert "qdq.activation-per-tensor" in rule_ids(findings)


@pytest.mark.parametrize(("op", "good_axis", "bad_axis"), [("Conv", 0, 1), ("ConvTranspose", 0, 1)])
def test_weight_scales_sit_on_the_axis_tensorrt_quantizes(op, good_axis, bad_axis):
    # ConvTranspose too is axis 0: TensorRT's deconvolution kernels are per input channel of
    # the ONNX weight (NVIDIA/TensorRT#2380).
    assert validity(conv_block(op=op, weight_axis=good_axis)) == []
    findings = validity(conv_block(op=op, weight_axis=bad_axis))
    assert rule_ids(findings) == ["qdq.weight-axis"]
    assert f"needs axis {good_axis}" in findings[0].message


def test_int8_weight_initializers_fail_on_tensorrt_8_only():
    model = conv_block(weight_qdq="int8-init")
    assert "qdq.int8-weights" in rule_ids(check_model(model, CheckTarget("8.6")))
    assert "qdq.int8-weights" not in rule_ids(check_model(model, CheckTarget("10.3")))


def test_a_weighted_layer_with_only_its_data_quantized_is_a_warning():
    findings = list(check_placement(GraphView(conv_block(weight_qdq=None))))
    assert rule_ids(findings) == ["qdq.weighted-inputs"]
    assert findings[0].severity == "warning"


def test_qdq_between_a_convolution_and_its_activation_is_a_warning():
    findings = list(check_placement(GraphView(conv_block(quantize_conv_output=True))))
    assert rule_ids(findings) == ["qdq.weighted-output"]
    assert "Conv and Relu" in findings[0].message


@pytest.mark.parametrize("quantized", [(True, True), (False, False)])
def test_a_residual_add_quantized_on_both_inputs_or_neither_is_fine(quantized):
    assert list(check_placement(GraphView(residual_add(quantized)))) in ([],)


def test_a_residual_add_quantized_on_one_input_is_a_warning():
    findings = list(check_placement(GraphView(residual_add((True, False)))))
    assert rule_ids(findings) == ["qdq.residual"]


def test_a_concat_with_some_inputs_quantized_is_a_warning_and_jetkit_detaches_them():
    model = concat_of((True, False, True))
    findings = list(check_placement(GraphView(model)))
    assert rule_ids(findings) == ["qdq.concat"]
    assert "2 of 3 inputs" in findings[0].message
    assert detach_partial_concat_qdq(model) == 2
    concat = next(n for n in model.graph.node if n.op_type == "Concat")
    assert list(concat.input) == ["r0", "r1", "r2"]
    # The pairs stay where another consumer still reads them.
    assert sum(n.op_type == "DequantizeLinear" for n in model.graph.node) == 2
    assert list(check_placement(GraphView(model))) == []
    session = onnxruntime.InferenceSession(model.SerializeToString())
    images = np.ones((1, 3, 32, 32), np.float32)
    assert session.run(["output0"], {"images": images})[0].shape == (1, 9, 32, 32)


def test_jetkits_placement_quantizes_weighted_layers_and_residual_adds_only():
    view = GraphView(conv_block(activation_qdq=None, weight_qdq=None))
    assert tensorrt_qdq_nodes(view, excluded=()) == ["conv"]
    assert tensorrt_qdq_nodes(view, excluded=("conv",)) == []
    assert tensorrt_qdq_nodes(GraphView(residual_add((False, False))), ()) == ["add"]


def test_scales_must_be_positive():
    model = conv_block()
    scale = next(i for i in model.graph.initializer if i.name == "a_scale")
    scale.CopyFrom(onnx.numpy_helper.from_array(np.array(-0.01, np.float32), "a_scale"))
    assert rule_ids(validity(model)) == ["qdq.scale"]
