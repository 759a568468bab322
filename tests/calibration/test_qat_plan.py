"""What quantization-aware fine-tuning imitates is read from the PTQ artifact itself: every
convolution that runs in INT8, with the input quantization the runtime will apply and the
float weights the trainer finds it by; the float islands are not fine-tuned as INT8."""

import numpy as np
import onnx
import pytest
from yolo_heads import head_manifest, yolo_head

from calibration.int8 import quantize_int8
from calibration.qat_plan import conv_fake_quants
from calibration.trt_rules.graph import GraphView


@pytest.mark.parametrize(
    ("runtime", "integer_range"), [("cpu", (0, 255)), ("tensorrt", (-128, 127))]
)
def test_every_int8_convolution_is_planned_with_its_runtimes_input_quantization(
    runtime, integer_range, head_calibration, tmp_path
):
    source = tmp_path / "head.onnx"
    onnx.save(yolo_head("v8-split"), source)
    manifest = head_manifest("v8-split")
    result = quantize_int8(
        source, manifest, head_calibration, tmp_path / "q.onnx", runtime=runtime, method="minmax"
    )
    quantized, original = onnx.load(tmp_path / "q.onnx"), onnx.load(source)
    plans = conv_fake_quants(quantized, original)

    source_view = GraphView(original)
    source_convs = {n.name: n for n in source_view.nodes if n.op_type == "Conv"}
    view = GraphView(quantized)
    int8_convs = {
        n.name
        for n in view.nodes
        if n.op_type == "Conv" and view.producer_op(n.input[0]) == "DequantizeLinear"
    }
    assert {p.node for p in plans} == int8_convs
    # The stem and the DFL projection stay float, so they are not fine-tuned as INT8.
    assert {"stem", "dfl_conv"}.isdisjoint(int8_convs) and int8_convs
    for plan in plans:
        assert (plan.input_qmin, plan.input_qmax) == integer_range
        weight = source_view.constant_array(source_convs[plan.node].input[1])
        np.testing.assert_array_equal(plan.weight_oihw, weight)
        # The scale is the calibrated range's: (high - low) / 255 on uint8 with 0.0 on an
        # integer, max(|low|, |high|) / 127 on symmetric int8 with zero point 0.
        low, high = result.ranges[source_convs[plan.node].input[0]]
        if runtime == "cpu":
            span = max(high, 0.0) - min(low, 0.0)
            assert plan.input_scale == pytest.approx(span / 255, rel=1e-3)
            assert 0 <= plan.input_zero_point <= 255
        else:
            assert plan.input_scale == pytest.approx(max(abs(low), abs(high)) / 127, rel=1e-3)
            assert plan.input_zero_point == 0
