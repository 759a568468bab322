"""`jetkit calibrate` as a user runs it: artifacts written only when the gate passes."""

import json

import cv2
import numpy as np
import onnx
from cli_helpers import assert_user_error, jetkit

from calibration.int8 import DEFAULT_METHOD, TRT_ALGORITHM
from calibration.ranges import AUTO_CANDIDATES, Method
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
    calibration = manifest.provenance["calibration"]
    assert calibration["images"] == 8
    # With --val every candidate method was scored from the same histograms; the best is kept.
    scores = calibration["method_scores"]
    assert list(scores) == list(AUTO_CANDIDATES)
    assert scores[calibration["method"]] == max(scores.values())
    assert calibration["method_chosen_by"] == "best validation mAP50-95 of 5 candidates"
    algorithm = TRT_ALGORITHM[Method.parse(calibration["method"]).kind]
    assert read_cache(tmp_path / "blob-int8.cache").header == f"TRT-8601-{algorithm}"
    assert json.loads((tmp_path / "blob-int8.gate.json").read_text())["passed"]
    assert "mAP50-95" in result.stderr
    assert f"calibration method: {calibration['method']} (best validation mAP50-95" in result.stderr


def test_a_refused_artifact_is_not_written_and_exits_1(blob_onnx, blob_val, tmp_path):
    """A limit no artifact meets (a gain of 100 points) refuses any calibration."""
    out = tmp_path / "out"
    result = jetkit(
        "calibrate",
        blob_onnx,
        "--precision",
        "int8",
        "--data",
        blob_val,
        "--images",
        "8",
        "--method",
        "minmax",
        "--val",
        blob_val,
        "--max-map-drop",
        "-100",
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
    result = jetkit(*calibrate, "--images", "8", "--auto-exclude", "1", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    calibration = load_manifest(tmp_path / "blob-int8.json").provenance["calibration"]
    sensitivity = calibration["sensitivity"]
    # Whether the worst node helps in float at all rests on the CPU's INT8 arithmetic: it is
    # kept exactly when it lowered the error, and then stays in float.
    kept = calibration.get("auto_excluded", [])
    assert len(kept) == (1 if sensitivity["ranking"][0]["error_reduction"] > 0 else 0)
    assert set(kept) <= set(calibration["excluded_nodes"])
    assert sensitivity["images"] == 8 and sensitivity["error_after"] <= sensitivity["error_before"]
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


def write_images(folder, count, grayscale=False):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        image = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
        if grayscale:
            image = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        cv2.imwrite(str(folder / f"{i}.png"), image[..., 0] if grayscale else image)
    return folder


def no_conv_model(path):
    """`images [1,3,32,32]` reshaped to a yolov8-shaped `[1, 6, 512]` and passed through a
    sigmoid: a graph of the right shape with no weights."""
    shape = onnx.numpy_helper.from_array(np.array([1, 6, 512], dtype=np.int64), "shape")
    graph = onnx.helper.make_graph(
        [
            onnx.helper.make_node("Reshape", ["images", "shape"], ["flat"], name="flat"),
            onnx.helper.make_node("Sigmoid", ["flat"], ["output0"], name="scores"),
        ],
        "g",
        [onnx.helper.make_tensor_value_info("images", onnx.TensorProto.FLOAT, [1, 3, 32, 32])],
        [onnx.helper.make_tensor_value_info("output0", onnx.TensorProto.FLOAT, [1, 6, 512])],
        [shape],
    )
    onnx.save(onnx.helper.make_model(graph), path)
    return path


def test_calibration_that_cannot_be_right_is_refused_before_anything_is_written(
    blob_onnx, blob_val, tmp_path
):
    """Grayscale images for a colour model, too few images, a model already quantized, a model
    with nothing to quantize: one line naming the problem and the fix, exit 2, nothing written."""
    out = tmp_path / "out"
    int8 = ("--precision", "int8", "--out", out)
    gray = write_images(tmp_path / "gray", 8, grayscale=True)
    assert_user_error(
        jetkit("calibrate", blob_onnx, *int8, "--data", gray),
        "all 8 calibration images are grayscale, but the model takes 3-channel colour",
    )
    few = write_images(tmp_path / "few", 3)
    assert_user_error(
        jetkit("calibrate", blob_onnx, *int8, "--data", few),
        "3 calibration image(s); INT8 ranges need at least 8",
    )
    assert_user_error(
        jetkit("calibrate", blob_onnx, *int8, "--data", blob_val, "--method", "median"),
        "--method 'median' is not auto, entropy, minmax, percentile or percentile:P",
    )
    quantized = tmp_path / "q"
    assert jetkit(
        "calibrate", blob_onnx, "--precision", "int8", "--data", blob_val, "--images", "8",
        "--method", "minmax", "--out", quantized,
    ).returncode == 0  # fmt: skip
    assert_user_error(
        jetkit("calibrate", quantized / "blob-int8.onnx", *int8, "--data", blob_val),
        "is already quantized (INT8 nodes in the graph); calibrate the FP32 ONNX",
    )
    plain = no_conv_model(tmp_path / "plain.onnx")
    assert_user_error(
        jetkit("calibrate", plain, *int8, "--data", blob_val),
        "has no convolution or other layer with weights",
        progress=True,  # after the note that its manifest was inferred
    )
    assert not out.exists() or list(out.iterdir()) == []


def test_monochrome_cameras_calibrate_with_allow_grayscale(blob_onnx, tmp_path):
    gray = write_images(tmp_path / "gray", 8, grayscale=True)
    result = jetkit(
        "calibrate", blob_onnx, "--precision", "int8", "--data", gray, "--allow-grayscale",
        "--out", tmp_path / "out",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    calibration = load_manifest(tmp_path / "out" / "blob-int8.json").provenance["calibration"]
    assert calibration["method"] == DEFAULT_METHOD
    assert calibration["method_chosen_by"].startswith("the default, best on jetkit's benchmark")
    assert f"calibration method: {DEFAULT_METHOD} (the default" in result.stderr
