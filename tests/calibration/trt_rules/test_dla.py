"""What the DLA runs: static shapes, FP16/INT8, and per-layer limits per Jetson generation."""

import numpy as np
import pytest
from onnx_graphs import conv_block, single_node

from calibration.trt_rules.dla import DlaTarget, check_dla, generation_of
from calibration.trt_rules.graph import GraphView


def dla(model, generation="orin", precision="fp16", batch=None, available=True):
    return list(check_dla(GraphView(model), DlaTarget(generation, precision, batch, available)))


def ids(findings):
    return [(f.rule.id, f.severity) for f in findings]


def test_a_static_conv_relu_model_runs_whole_on_the_dla():
    assert dla(conv_block(activation_qdq=None, weight_qdq=None)) == []


def test_a_dynamic_batch_needs_one_build_batch():
    model = conv_block(activation_qdq=None, weight_qdq=None, batch="N")
    found = dla(model)
    assert ids(found) == [("dla.static-shape", "error")]
    assert "--batch" in found[0].message
    assert dla(model, batch=4) == []
    assert ids(dla(model, batch=5000)) == [("dla.limits", "error")]


def test_fp32_and_tensorrt_without_dla_are_errors():
    model = conv_block(activation_qdq=None, weight_qdq=None)
    assert ids(dla(model, precision="fp32")) == [("dla.precision", "error")]
    assert ids(dla(model, available=False)) == [("dla.unavailable", "error")]


@pytest.mark.parametrize(
    ("attributes", "reason"),
    [
        ({"kernel_shape": [9, 9], "strides": [1, 1]}, "pooling window"),
        ({"kernel_shape": [2, 2], "strides": [17, 17]}, "pooling stride"),
    ],
)
def test_pooling_outside_the_dla_limits_falls_back_to_the_gpu(attributes, reason):
    found = dla(single_node("MaxPool", ["images"], **attributes))
    assert ids(found) == [("dla.gpu-fallback", "warning")]
    assert reason in found[0].message


def test_softmax_runs_on_orins_dla_but_not_xaviers():
    model = single_node("Softmax", ["images"], axis=1)
    assert dla(model, generation="orin") == []
    assert "Xavier" in dla(model, generation="xavier")[0].message


def test_resize_needs_integer_constant_scales():
    good = single_node(
        "Resize",
        ["images", "", "scales"],
        {"scales": np.array([1, 1, 2, 2], np.float32)},
        mode="nearest",
    )
    assert dla(good) == []
    fractional = single_node(
        "Resize", ["images", "", "scales"], {"scales": np.array([1, 1, 1.5, 1.5], np.float32)}
    )
    assert ids(dla(fractional)) == [("dla.gpu-fallback", "warning")]


def test_concat_off_the_channel_axis_and_gather_fall_back():
    assert ids(dla(single_node("Concat", ["images", "images"], axis=2))) == [
        ("dla.gpu-fallback", "warning")
    ]
    gather = single_node("Gather", ["images", "i"], {"i": np.array([0], np.int64)}, axis=1)
    assert "Gather has no DLA layer" in dla(gather)[0].message


def test_the_generation_follows_the_board():
    assert generation_of("NVIDIA Jetson AGX Xavier Developer Kit") == "xavier"
    assert generation_of("NVIDIA Jetson AGX Orin Developer Kit") == "orin"
    assert generation_of(None) == "orin"  # a host checking for the current generation
