"""The Detector end to end on real frames: boxes come back in frame pixels."""

import numpy as np
import pytest

from edge import Detector
from edge.errors import JetkitError
from edge.samples import build_blob_detector, draw_blob_scene


def boxes_by_name(detections):
    return {name: box for name, box in zip(detections.names, detections.xyxy, strict=True)}


def test_finds_each_object_where_it_is_drawn(blob_onnx, scene_bgr, scene_boxes):
    detections = Detector.open(blob_onnx)(scene_bgr)
    found = boxes_by_name(detections)
    assert sorted(found) == ["blue", "red"]
    for name, expected in scene_boxes.items():
        # The 4x downscale to 320x320 blurs edges by about one input pixel (4 frame pixels).
        np.testing.assert_allclose(found[name], expected, atol=8)
    assert detections.xyxy.dtype == np.float32 and detections.class_ids.dtype == np.int64


def test_a_batch_gives_the_same_answers_as_single_frames(blob_onnx, scene_bgr):
    detector = Detector.open(blob_onnx)
    other = draw_blob_scene((640, 960), {"green": (50, 500, 300, 900)}, seed=3)
    batch = detector.detect_batch([scene_bgr, other, scene_bgr])
    assert [len(d) for d in batch] == [2, 1, 2]
    for single, batched in zip((scene_bgr, other), batch, strict=False):
        np.testing.assert_allclose(detector(single).xyxy, batched.xyxy, atol=1e-4)
    assert batch[1].names == ["green"]


def test_static_batch_model_takes_fewer_frames_than_its_batch(tmp_path, scene_bgr):
    path = tmp_path / "static4.onnx"
    build_blob_detector(path, max_batch=4, dynamic_batch=False)
    detector = Detector.open(path)
    results = detector.detect_batch([scene_bgr])
    assert len(results) == 1 and len(results[0]) == 2
    with pytest.raises(JetkitError, match="max batch 4"):
        detector.detect_batch([scene_bgr] * 5)


def test_thresholds_override_the_manifest(blob_onnx, scene_bgr):
    # Scores are compared with ">" (as Ultralytics does): the blob scores of exactly 1.0 fail 1.0.
    assert len(Detector.open(blob_onnx, conf=1.0)(scene_bgr)) == 0
    assert len(Detector.open(blob_onnx, conf=0.5)(scene_bgr)) == 2
    with pytest.raises(JetkitError, match="--conf must be between 0 and 1"):
        Detector.open(blob_onnx, conf=2.0)


def test_stage_times_are_recorded(blob_onnx, scene_bgr):
    detector = Detector.open(blob_onnx)
    detector(scene_bgr)
    times = detector.last_times
    assert times.preprocess > 0 and times.infer > 0 and times.postprocess > 0
    assert "compute" in times.backend


def test_json_ready_detections(blob_onnx, scene_bgr):
    (first, *_) = Detector.open(blob_onnx)(scene_bgr).to_list()
    assert set(first) == {"xyxy", "score", "class_id", "class_name"}
    assert first["class_name"] in ("red", "blue") and len(first["xyxy"]) == 4


def test_unknown_nms_kind_is_refused(blob_onnx):
    with pytest.raises(JetkitError, match="NMS kind 'fastest'"):
        Detector.open(blob_onnx, nms="fastest")


def constant_end2end_model(path, rows):
    """An NMS-in-graph model `[1, K, 6]` (xyxy, score, class) whose detections are `rows`,
    in a 320x320 input's pixels, whatever the image."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    detections = np.asarray(rows, np.float32)[None]
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["table", "nothing"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "end2end",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 320, 320])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(detections.shape))],
        initializer=[
            numpy_helper.from_array(detections, "table"),
            numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_end2end_model_skips_nms_and_maps_boxes_back(tmp_path):
    from edge.models import Overrides

    # Two identical boxes: a real NMS would drop one; an end-to-end model already did its NMS.
    rows = [[40, 100, 120, 180, 0.9, 1], [40, 100, 120, 180, 0.8, 1], [0, 0, 10, 10, 0.1, 0]]
    path = constant_end2end_model(tmp_path / "e2e.onnx", rows)
    with pytest.raises(JetkitError, match="pass --classes"):
        Detector.open(path)
    detector = Detector.open(path, overrides=Overrides(classes=("cat", "dog")))
    assert detector.manifest.output.format == "end2end"
    frame = np.zeros((640, 1280, 3), np.uint8)  # letterboxed at scale 1/4, 80 px pad on top
    detections = detector(frame)
    assert detections.names == ["dog", "dog"]
    np.testing.assert_allclose(detections.xyxy[0], [160, 80, 480, 400])
