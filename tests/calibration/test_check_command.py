"""`jetkit check` as a user runs it: the kit's own artifacts and an Ultralytics-style export
pass; a bias-quantized Q/DQ model, a dynamic-batch DLA build and an unsupported operator are
refused (exit 1) with the rule, the node and the source named."""

import json

import onnx
import pytest
from cli_helpers import assert_user_error, jetkit
from onnx_graphs import conv_block, single_node


@pytest.fixture(scope="module")
def blob_artifacts(blob_onnx, blob_val, tmp_path_factory):
    """The sample detector's FP16 and TensorRT INT8 artifacts, made by `jetkit calibrate`."""
    out = tmp_path_factory.mktemp("artifacts")
    for args in (("--precision", "fp16"), ("--precision", "int8", "--data", blob_val)):
        result = jetkit("calibrate", blob_onnx, *args, "--images", "8", "--out", out)
        assert result.returncode == 0, result.stderr
    return {"fp32": blob_onnx, "fp16": out / "blob-fp16.onnx", "int8": out / "blob-int8.onnx"}


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_the_kits_own_artifacts_pass(blob_artifacts, precision):
    result = jetkit("check", blob_artifacts[precision])
    assert result.returncode == 0, result.stdout
    assert result.stdout.splitlines()[-1].endswith(
        f"{precision.upper()} model, 0 error(s), 0 warning(s) on TensorRT 8.5, 8.6, 10.3, 11.4.1"
    )


def test_an_ultralytics_export_passes(ultralytics_like_onnx):
    result = jetkit("check", ultralytics_like_onnx, "--tensorrt", "10.3")
    assert result.returncode == 0, result.stdout
    assert "0 error(s)" in result.stdout


def save(model, path):
    onnx.save(model, str(path))
    return path


def test_a_bias_quantized_qdq_model_is_refused_with_the_rule_and_its_source(tmp_path):
    model = save(conv_block(bias="int32-dq"), tmp_path / "bias.onnx")
    result = jetkit("check", model)
    assert result.returncode == 1
    line = next(line for line in result.stdout.splitlines() if "qdq.int32-bias" in line)
    assert line.startswith("error: [qdq.int32-bias] at dq_B: dequantizes the INT32 tensor B_int32")
    assert "onnx/onnx-tensorrt#850" in line and line.endswith("[TensorRT 8.5, 8.6, 10.3, 11.4.1]")


def test_a_dynamic_batch_dla_build_is_refused_until_a_batch_is_given(tmp_path):
    model = save(conv_block(activation_qdq=None, weight_qdq=None, batch="N"), tmp_path / "d.onnx")
    assert jetkit("check", model, "--tensorrt", "10.3").returncode == 0
    refused = jetkit("check", model, "--tensorrt", "10.3", "--dla", "--precision", "fp16")
    assert refused.returncode == 1
    assert "error: [dla.static-shape] at images" in refused.stdout
    assert "for the DLA (orin)" in refused.stdout
    fixed = jetkit(
        "check", model, "--tensorrt", "10.3", "--dla", "--batch", "2", "--precision", "fp16"
    )
    assert fixed.returncode == 0, fixed.stdout


def test_an_unsupported_operator_is_refused_per_version(tmp_path):
    model = save(single_node("Swish", ["images"]), tmp_path / "swish.onnx")
    result = jetkit("check", model, "--tensorrt", "10.3", "--tensorrt", "11.4.1", "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["errors"] == 1
    (finding,) = report["findings"]
    assert finding["rule"] == "onnx.operator" and finding["tensorrt"] == ["10.3"]
    assert finding["node"] == "swish" and "operators.md" in finding["source"]


def test_mistakes_are_user_errors(tmp_path, blob_onnx):
    assert_user_error(jetkit("check", tmp_path / "none.onnx"), "none.onnx not found")
    (tmp_path / "m.engine").write_bytes(b"plan")
    assert_user_error(jetkit("check", tmp_path / "m.engine"), "is a TensorRT engine")
    (tmp_path / "bad.onnx").write_bytes(b"not onnx")
    assert_user_error(jetkit("check", tmp_path / "bad.onnx"), "is not an ONNX model")
    assert_user_error(jetkit("check", blob_onnx, "--tensorrt", "7.1"), "TensorRT 7.1 is too old")
    assert_user_error(jetkit("check", blob_onnx, "--batch", "2"), "give --dla too")
