"""`jetkit calibrate` as a user runs it: artifacts written only when the gate passes."""

import json

import cv2
import numpy as np
import onnx
from cli_helpers import assert_user_error, jetkit

from calibration.trt_cache import read_cache
from edge.manifest import load_manifest


def test_int8_artifact_cache_and_gate_report(blob_onnx, blob_val, tmp_path):
    result = jetkit(
        "calibrate",
        blob_onnx,
        "--precision",
        "int8",
        "--data",
        blob_val,
        "--images",
        "8",
        "--val",
        blob_val,
        "--out",
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["blob-int8.cache", "blob-int8.gate.json", "blob-int8.json", "blob-int8.onnx"]
    assert result.stdout.split() == [str(tmp_path / name) for name in written]
    manifest = load_manifest(tmp_path / "blob-int8.json")
    assert manifest.artifact.precision == "int8"
    assert manifest.provenance["calibration"]["images"] == 8
    assert read_cache(tmp_path / "blob-int8.cache").header == "TRT-8601-EntropyCalibration2"
    assert json.loads((tmp_path / "blob-int8.gate.json").read_text())["passed"]
    assert "mAP50-95" in result.stderr


def test_a_refused_artifact_is_not_written_and_exits_1(blob_onnx, blob_val, tmp_path):
    blank = tmp_path / "blank"
    blank.mkdir()
    cv2.imwrite(str(blank / "b.png"), np.full((480, 640, 3), 114, np.uint8))
    out = tmp_path / "out"
    result = jetkit(
        "calibrate",
        blob_onnx,
        "--precision",
        "int8",
        "--data",
        blank,
        "--val",
        blob_val,
        "--out",
        out,
    )
    assert result.returncode == 1
    assert "jetkit: refused: blob-int8 loses" in result.stderr
    assert list(out.iterdir()) == []


def test_fp16_needs_no_calibration_data(blob_onnx, tmp_path):
    result = jetkit("calibrate", blob_onnx, "--precision", "fp16", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    assert load_manifest(tmp_path / "blob-fp16.json").artifact.kind == "onnx-fp16"


def test_bad_input_is_one_clear_line(blob_onnx, blob_val, tmp_path):
    assert_user_error(jetkit("calibrate", blob_onnx, "--precision", "int8"), "needs --data")
    assert_user_error(
        jetkit("calibrate", tmp_path / "none.onnx", "--precision", "fp16"), "none.onnx"
    )
    assert_user_error(
        jetkit("calibrate", blob_onnx, "--precision", "int8", "--data", tmp_path / "nothing"),
        "nothing",
    )
    assert_user_error(
        jetkit(
            "calibrate",
            blob_onnx,
            "--precision",
            "int8",
            "--data",
            blob_val,
            "--exclude",
            "nope",
            "--out",
            tmp_path / "o",
        ),
        "--exclude nope",
    )
    assert not (tmp_path / "o").exists() or list((tmp_path / "o").iterdir()) == []


def test_auto_exclude_keeps_the_worst_node_in_float(blob_onnx, blob_val, tmp_path):
    calibrate = ("calibrate", blob_onnx, "--precision", "int8", "--data", blob_val)
    result = jetkit(*calibrate, "--images", "4", "--auto-exclude", "1", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    calibration = load_manifest(tmp_path / "blob-int8.json").provenance["calibration"]
    sensitivity = calibration["sensitivity"]
    # Whether the worst node helps in float at all rests on the CPU's INT8 arithmetic: it is
    # kept exactly when it lowered the error, and then stays in float.
    kept = calibration.get("auto_excluded", [])
    assert len(kept) == (1 if sensitivity["ranking"][0]["error_reduction"] > 0 else 0)
    assert set(kept) <= set(calibration["excluded_nodes"])
    assert sensitivity["images"] == 4 and sensitivity["error_after"] <= sensitivity["error_before"]
    assert f"auto-excluded {len(kept)} node(s)" in result.stderr
    # ONNX Runtime's advice shows once, from the calibration, not once per node ranked.
    assert "WARNING" not in result.stderr.split("ranking", 1)[1]

    assert_user_error(
        jetkit(*calibrate, "--auto-exclude", "-1", "--out", tmp_path / "o"),
        "--auto-exclude must be >= 0, got -1",
    )
    assert not (tmp_path / "o").exists() or list((tmp_path / "o").iterdir()) == []


def test_a_model_without_a_manifest_is_calibrated_with_the_inferred_one(
    ultralytics_like_onnx, blob_val, tmp_path
):
    """An Ultralytics export as it comes: the manifest `jetkit inspect` infers drives the
    calibration and the gate, and the artifact's manifest says it was inferred."""
    result = jetkit(
        "calibrate", ultralytics_like_onnx, "--precision", "int8", "--runtime", "cpu",
        "--data", blob_val, "--images", "8", "--val", blob_val, "--out", tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "yolov8n.onnx has no jetkit manifest; inferred one" in result.stderr
    manifest = load_manifest(tmp_path / "yolov8n-int8.json")
    assert manifest.classes == ("red", "green", "blue")
    assert manifest.provenance["inferred"] == {
        "by": "jetkit inspect",
        "guessed": [],
        "source_metadata": ["author", "batch", "description", "imgsz", "names", "stride", "task"],
    }
    assert json.loads((tmp_path / "yolov8n-int8.gate.json").read_text())["passed"]


def test_an_artifact_no_tensorrt_can_build_is_refused_and_not_written(blob_onnx, tmp_path):
    """A model whose output is DOUBLE: ONNX Runtime runs it, no TensorRT binds it."""
    model = onnx.load(str(blob_onnx))
    for node in model.graph.node:
        node.output[:] = ["output0_float" if out == "output0" else out for out in node.output]
    model.graph.node.append(
        onnx.helper.make_node("Cast", ["output0_float"], ["output0"], to=onnx.TensorProto.DOUBLE)
    )
    model.graph.output[0].type.tensor_type.elem_type = onnx.TensorProto.DOUBLE
    source = tmp_path / "double.onnx"
    onnx.save(model, str(source))
    out = tmp_path / "out"
    result = jetkit("calibrate", source, "--precision", "fp16", "--out", out)
    assert_user_error(result, "no TensorRT jetkit targets", "[io.dtype]", progress=True)
    assert list(out.iterdir()) == []
