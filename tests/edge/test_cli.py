"""`jetkit inspect`, `detect` and `bench` as a user runs them, and every bad-input case: one line
`jetkit: error: …`, exit status 2, no traceback."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from cli_helpers import assert_user_error, jetkit
from image_files import png_header_only

from edge.samples import build_blob_detector


def test_inspect_prints_the_embedded_manifest(blob_onnx):
    result = jetkit("inspect", blob_onnx)
    assert result.returncode == 0, result.stderr
    assert "manifest: embedded" in result.stdout and "red, green, blue" in result.stdout
    as_json = json.loads(jetkit("inspect", blob_onnx, "--json").stdout)
    assert as_json["output"]["format"] == "yolov8" and as_json["classes"] == [
        "red",
        "green",
        "blue",
    ]


def test_inspect_infers_a_third_party_model_and_says_what_it_guessed(tmp_path):
    model = tmp_path / "thirdparty.onnx"
    build_blob_detector(model, manifest_in="none")
    result = jetkit("inspect", model, "--json")
    assert result.returncode == 0
    assert "guessed input.max_batch, output.format, classes, preprocess" in result.stderr
    assert json.loads(result.stdout)["classes"] == ["class0", "class1", "class2"]
    written = jetkit("inspect", model, "--classes", "r,g,b", "--write-sidecar")
    assert written.returncode == 0 and (tmp_path / "thirdparty.json").is_file()
    assert "manifest: sidecar" in jetkit("inspect", model).stdout


def test_detect_json_lines_and_annotated_images(blob_onnx, scene_png, scene_boxes, tmp_path):
    out_dir = tmp_path / "annotated"
    result = jetkit("detect", blob_onnx, scene_png, scene_png.parent, "--json", "--save", out_dir)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 2 and lines[0]["image"] == str(scene_png)
    found = {d["class_name"]: d["xyxy"] for d in lines[0]["detections"]}
    np.testing.assert_allclose(found["red"], scene_boxes["red"], atol=8)
    assert set(lines[0]["detections"][0]) == {"xyxy", "score", "class_id", "class_name"}
    annotated = cv2.imread(str(out_dir / "scene.png"))
    assert annotated.shape == (720, 1280, 3)
    assert not np.array_equal(annotated, cv2.imread(str(scene_png)))  # boxes were drawn


def test_detect_plain_output_and_thresholds(blob_onnx, scene_png):
    result = jetkit("detect", blob_onnx, scene_png, "--conf", "0.5", "--iou", "0.5")
    assert result.returncode == 0
    assert result.stdout.startswith(f"{scene_png}: 2 detections: ")


def test_detect_converts_grayscale_and_bgra_images(blob_onnx, tmp_path):
    gray = tmp_path / "gray.png"
    cv2.imwrite(str(gray), np.full((120, 160), 90, np.uint8))
    bgra = tmp_path / "bgra.png"
    image = np.zeros((120, 160, 4), np.uint8)
    image[20:60, 20:80] = (0, 0, 255, 255)
    cv2.imwrite(str(bgra), image)
    result = jetkit("detect", blob_onnx, gray, bgra, "--json")
    assert result.returncode == 0, result.stderr
    gray_out, bgra_out = (json.loads(line) for line in result.stdout.splitlines())
    assert gray_out["detections"] == []
    assert [d["class_name"] for d in bgra_out["detections"]] == ["red"]


def test_bench_reports_and_writes_json(blob_onnx, tmp_path):
    report = tmp_path / "bench.json"
    result = jetkit(
        "bench",
        blob_onnx,
        "--batch",
        "2",
        "--warmup-ms",
        "20",
        "--iterations",
        "5",
        "--duration",
        "0",
        "--threads",
        "1",
        "--json",
        report,
    )
    assert result.returncode == 0, result.stderr
    assert "Throughput:" in result.stdout and "latency" in result.stdout
    data = json.loads(report.read_text())
    assert {"throughput_fps", "latency_ms", "stages_ms", "iterations", "environment"} <= set(data)
    assert data["environment"]["intra_op_threads"] == 1
    assert data["latency_ms"]["min"] <= data["latency_ms"]["median"] <= data["latency_ms"]["max"]


def test_bench_json_to_stdout(blob_onnx):
    result = jetkit(
        "bench",
        blob_onnx,
        "--warmup-ms",
        "0",
        "--iterations",
        "2",
        "--duration",
        "0",
        "--json",
        "-",
    )
    assert json.loads(result.stdout)["iterations"] == 2


# --- bad input ------------------------------------------------------------------------------------


def test_missing_model(tmp_path):
    assert_user_error(jetkit("inspect", tmp_path / "nope.onnx"), "nope.onnx", "does not exist")


def test_file_that_is_not_onnx(tmp_path, scene_png):
    assert_user_error(jetkit("detect", scene_png, scene_png), "is not a valid ONNX model")


def test_truncated_onnx(tmp_path, blob_onnx):
    truncated = tmp_path / "cut.onnx"
    truncated.write_bytes(blob_onnx.read_bytes()[: blob_onnx.stat().st_size // 2])
    assert_user_error(jetkit("bench", truncated), "cut.onnx", "not a valid ONNX model")


def test_output_format_cannot_be_inferred(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["images"], ["out"], axes=[1], keepdims=0)],
        "odd",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 64, 64])],
    )
    path = tmp_path / "odd.onnx"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    assert_user_error(jetkit("inspect", path), "pass --format")


def test_manifest_with_a_wrong_field(tmp_path):
    path = tmp_path / "m.onnx"
    build_blob_detector(path, manifest_in="sidecar")
    sidecar = tmp_path / "m.json"
    data = json.loads(sidecar.read_text())
    data["postprocess"]["nms"] = "fastest"
    sidecar.write_text(json.dumps(data))
    assert_user_error(jetkit("detect", path, path), "postprocess.nms", "m.json")


def test_unreadable_image(blob_onnx, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff not really a jpeg")
    assert_user_error(jetkit("detect", blob_onnx, bad), "broken.jpg", "cannot be read")
    assert_user_error(
        jetkit("detect", blob_onnx, tmp_path / "absent.jpg"), "absent.jpg", "does not exist"
    )


def test_batch_larger_than_the_model_maximum(blob_onnx):
    assert_user_error(jetkit("bench", blob_onnx, "--batch", "64"), "--batch 64", "maximum batch 8")


def test_bad_option_values(blob_onnx, scene_png):
    assert_user_error(jetkit("detect", blob_onnx, scene_png, "--conf", "7"), "--conf")
    assert_user_error(jetkit("inspect", blob_onnx, "--imgsz", "huge"), "--imgsz")


def test_debug_shows_the_traceback(tmp_path):
    result = jetkit("--debug", "inspect", tmp_path / "nope.onnx")
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_engine_without_tensorrt_names_the_alternatives(tmp_path):
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"\x00" * 64)
    assert_user_error(jetkit("bench", engine), "TensorRT is not installed here", "onnxruntime")


def test_providers_can_be_chosen(blob_onnx, scene_png):
    ok = jetkit("detect", blob_onnx, scene_png, "--providers", "CPUExecutionProvider")
    assert ok.returncode == 0
    assert_user_error(
        jetkit("detect", blob_onnx, scene_png, "--providers", "CUDAExecutionProvider"),
        "CUDAExecutionProvider is not in this onnxruntime build",
    )


def test_unwritable_output_is_a_clear_error(blob_onnx, scene_png, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert_user_error(
        jetkit("detect", blob_onnx, scene_png, "--save", blocker / "out"), str(blocker)
    )


def test_save_never_overwrites_inputs_and_keeps_same_named_images_apart(
    blob_onnx, scene_png, tmp_path
):
    assert_user_error(
        jetkit("detect", blob_onnx, scene_png, "--save", scene_png.parent), "would be overwritten"
    )
    other = tmp_path / "other"
    other.mkdir()
    (other / "scene.png").write_bytes(scene_png.read_bytes())
    out = tmp_path / "out"
    assert (
        jetkit("detect", blob_onnx, scene_png, other / "scene.png", "--save", out).returncode == 0
    )
    assert sorted(p.name for p in out.iterdir()) == ["scene.png", "scene_1.png"]


def test_inspect_shows_an_engines_sidecar_without_tensorrt(tmp_path, blob_onnx):
    from edge.backends import open_backend
    from edge.manifest import ArtifactSpec, TargetSpec, save_manifest
    from edge.models import resolve_manifest

    manifest = resolve_manifest(blob_onnx, open_backend(str(blob_onnx))).manifest
    engine = tmp_path / "blob.engine"
    engine.write_bytes(b"plan bytes built on a Jetson")
    save_manifest(
        manifest.replace(
            artifact=ArtifactSpec(file="blob.engine", kind="tensorrt", precision="fp16"),
            target=TargetSpec(tensorrt="10.3.0", compute_capability="8.7", l4t="36.4.0"),
        ),
        tmp_path / "blob.json",
    )
    result = jetkit("inspect", engine)
    assert result.returncode == 0
    assert "TensorRT 10.3.0, sm 8.7, L4T 36.4.0" in result.stdout
    assert "unchecked: TensorRT is not installed here" in result.stderr


def test_onnxruntime_options_are_refused_for_engines(tmp_path):
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"\x00" * 64)
    assert_user_error(
        jetkit("bench", engine, "--threads", "2"), "--threads applies to the onnxruntime backend"
    )


# --- limits and pipes -----------------------------------------------------------------------------


def test_resource_limits_are_one_line_errors_naming_the_limit(blob_onnx, scene_png, tmp_path):
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_header_only(16000, 16000))  # 200 bytes claiming 768 MB of pixels
    assert_user_error(
        jetkit("detect", blob_onnx, huge), "huge.png is 16000x16000", "limit of 100000000 pixels"
    )
    assert_user_error(
        jetkit("detect", blob_onnx, scene_png, "--max-pixels", "1000"), "limit of 1000 pixels"
    )
    assert_user_error(jetkit("detect", blob_onnx, scene_png, "--max-pixels", "0"), "--max-pixels")
    for threads in ("-1", "0", "100000"):
        assert_user_error(
            jetkit("detect", blob_onnx, scene_png, "--threads", threads),
            f"--threads must be in [1, 256], got {threads}",
        )
    for seconds in ("nan", "inf"):
        assert_user_error(
            jetkit("bench", blob_onnx, "--duration", seconds), "--duration must be a finite"
        )


def test_a_reader_that_closes_stdout_early_ends_the_command_quietly(blob_onnx, scene_png):
    """`jetkit detect … | head -1`: more output than a pipe holds, so jetkit is still writing
    when the reader goes."""
    script = Path(sys.executable).with_name("jetkit")
    process = subprocess.Popen(
        [script, "detect", blob_onnx, *[scene_png] * 1000, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert json.loads(process.stdout.readline())["image"] == str(scene_png)
        process.stdout.close()
        stderr = process.stderr.read()
        process.wait(timeout=60)
    finally:
        process.kill()
    assert process.returncode in (0, 141), stderr
    assert stderr == ""
