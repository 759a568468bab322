"""TensorRT's rules on what a bundle will build: refused when bundling if no TensorRT could
build it, named per version when only some can, and checked again at flash preflight against
the device's own TensorRT."""

import pytest
from onnx_graphs import conv_block, single_node

from deploy.bundle_index import BundleIndex, BundleModel, Member
from deploy.trt_checks import build_targets, check_bundle, check_planned_build
from edge.errors import JetkitError

VERSIONS = ("8.5", "8.6", "10.3", "11.4.1")


def index_of(models, cache=False):
    members = [Member(m.file, "0" * 64, 100, "model") for m in models]
    members += [Member(m.manifest, "0" * 64, 100, "manifest") for m in models]
    if cache:
        members.append(Member("models/m.cache", "1" * 64, 100, "calibration-cache"))
    return BundleIndex("m", "1.0", tuple(members), tuple(models), ())


FP32 = BundleModel("models/m.onnx", "models/m.json", "onnx", "fp32", 1)
QDQ_TRT = BundleModel(
    "models/m-int8.onnx", "models/m-int8.json", "onnx-int8-qdq", "int8", 1, "tensorrt"
)
QDQ_CPU = BundleModel("models/c-int8.onnx", "models/c-int8.json", "onnx-int8-qdq", "int8", 1, "cpu")


def test_each_model_is_checked_at_every_precision_a_device_may_build_it_at():
    targets = build_targets(index_of([FP32, QDQ_TRT, QDQ_CPU], cache=True))
    assert [(m.file, p) for m, p in targets] == [
        ("models/m.onnx", "fp32"),
        ("models/m.onnx", "fp16"),
        ("models/m.onnx", "int8"),  # implicit, from the calibration cache
        ("models/m-int8.onnx", "int8"),
    ]  # the CPU-format INT8 is for ONNX Runtime only


def reader(models):
    data = {path: model.SerializeToString() for path, model in models.items()}
    return data.__getitem__


def test_a_model_no_tensorrt_can_build_refuses_the_bundle():
    index = index_of([FP32, QDQ_TRT])
    read = reader({FP32.file: conv_block(activation_qdq=None, weight_qdq=None),
                   QDQ_TRT.file: conv_block(bias="int32-dq")})  # fmt: skip
    with pytest.raises(
        JetkitError,
        match=r"no TensorRT .* can build models/m-int8.onnx \(INT8 engine\).*qdq.int32-bias",
    ):
        check_bundle(index, read, VERSIONS, lambda _m: None)


def test_a_model_some_versions_cannot_build_is_named_with_them():
    messages = []
    index = index_of([QDQ_TRT])
    read = reader({QDQ_TRT.file: conv_block(weight_qdq="int8-init")})
    check_bundle(index, read, VERSIONS, messages.append)
    assert any("will not build on TensorRT 8.5, 8.6: [qdq.int8-weights]" in m for m in messages), (
        messages
    )


def test_bytes_that_are_not_onnx_are_a_user_error():
    with pytest.raises(JetkitError, match="models/m.onnx is not an ONNX model"):
        check_bundle(index_of([FP32]), lambda _p: b"not onnx", VERSIONS, print)


def test_flash_preflight_checks_the_planned_build_against_the_devices_tensorrt():
    data = conv_block(weight_qdq="int8-init").SerializeToString()
    messages = []
    check_planned_build(data, QDQ_TRT, "int8", "10.3.0", messages.append)
    assert "TensorRT 10.3.0 rules: models/m-int8.onnx passes" in messages[-1]
    with pytest.raises(
        JetkitError, match=r"TensorRT 8.6.2 would reject models/m-int8.onnx.*int8-weights"
    ):
        check_planned_build(data, QDQ_TRT, "int8", "8.6.2", messages.append)
    swish = single_node("Swish", ["images"])
    swish_model = BundleModel("models/s.onnx", "models/s.json", "onnx", "fp32", 1)
    with pytest.raises(JetkitError, match="cannot parse Swish"):
        check_planned_build(swish.SerializeToString(), swish_model, "fp32", "10.3.0", print)
