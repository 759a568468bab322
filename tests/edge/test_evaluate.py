"""COCO mAP and precision/recall: checked against pycocotools run directly, and end to end on the
blob detector over a YOLO data set written to disk."""

import contextlib
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from edge import Detector
from edge.datasets import Sample, load_dataset
from edge.errors import JetkitError
from edge.evaluate import (
    CONFIDENCE_GRID,
    EVAL_THRESHOLDS,
    ImageDetections,
    best_f1_confidence,
    evaluate,
    evaluate_detector,
    format_table,
    match_detections,
    precision_recall_curves,
    to_coco,
)
from edge.samples import BLOB_CLASSES, draw_blob_scene


def sample(name, size_wh, boxes, class_ids):
    return Sample(
        Path(name),
        size_wh,
        np.array(boxes, np.float32).reshape(-1, 4),
        np.array(class_ids, np.int64),
    )


def found(boxes, scores, class_ids):
    return ImageDetections(
        np.array(boxes, np.float32).reshape(-1, 4),
        np.array(scores, np.float32),
        np.array(class_ids, np.int64),
    )


def cocoeval_stats(samples, detections, names):
    """pycocotools on its own, through `loadRes`, as a reference."""
    gt_dict, results = to_coco(samples, detections, names)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = gt_dict
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats


def test_perfect_detections_score_one():
    samples = [
        sample("a.jpg", (640, 480), [[10, 10, 100, 80], [200, 200, 300, 400]], [0, 1]),
        sample("b.jpg", (300, 600), [[0, 0, 300, 600]], [1]),
    ]
    detections = [found(s.xyxy, np.full(len(s.class_ids), 0.9), s.class_ids) for s in samples]
    result = evaluate(samples, detections, ["cat", "dog"])
    assert (result.map50_95, result.map50, result.precision, result.recall) == pytest.approx(
        (1, 1, 1, 1)
    )
    assert [(c.name, c.num_gt, c.num_images) for c in result.per_class] == [
        ("cat", 1, 1),
        ("dog", 2, 2),
    ]
    np.testing.assert_allclose(result.pr_curves["dog"], np.ones(101))


def test_a_missed_box_and_a_false_positive_give_the_cocoeval_answer():
    samples = [
        sample("a.jpg", (200, 200), [[10, 10, 50, 50]], [0]),
        sample("b.jpg", (200, 200), [[20, 20, 60, 80]], [0]),
    ]
    # The right box first, then a false positive; the box of b.jpg is never found.
    detections = [
        found([[10, 10, 50, 50], [100, 100, 120, 120]], [0.9, 0.8], [0, 0]),
        found([], [], []),
    ]
    result = evaluate(samples, detections, ["car"])
    # Precision is 1 up to recall 0.5 (51 of COCO's 101 recall points), then 0; at every IoU.
    assert result.map50 == pytest.approx(51 / 101) and result.map50_95 == pytest.approx(51 / 101)
    stats = cocoeval_stats(samples, detections, ["car"])
    assert (result.map50_95, result.map50) == pytest.approx((stats[0], stats[1]))
    # The best F1 keeps only the 0.9 detection: precision 1, recall 1/2.
    assert (result.precision, result.recall) == pytest.approx((1.0, 0.5))
    np.testing.assert_allclose(result.pr_curves["car"], [1.0] * 51 + [0.0] * 50)


def test_class_means_equal_cocoeval_stats_on_a_multi_class_case():
    rng = np.random.default_rng(7)
    names = ["person", "car", "dog", "ghost"]  # "ghost" has detections but no ground truth
    samples, detections = [], []
    for i in range(12):
        n = int(rng.integers(0, 6))
        xy = rng.uniform(0, 400, (n, 2))
        gt = np.hstack((xy, xy + rng.uniform(20, 200, (n, 2))))
        gt_ids = rng.integers(0, 3, n)
        samples.append(sample(f"{i}.jpg", (640, 640), gt, gt_ids))
        jitter = gt + rng.normal(0, 8, gt.shape)
        extra = rng.uniform(0, 500, (3, 2))
        boxes = np.vstack((jitter, np.hstack((extra, extra + 60))))
        ids = np.concatenate((np.where(rng.random(n) < 0.85, gt_ids, 3), rng.integers(0, 4, 3)))
        detections.append(found(boxes, rng.random(n + 3), ids))
    result = evaluate(samples, detections, names)
    stats = cocoeval_stats(samples, detections, names)
    assert result.map50_95 == pytest.approx(stats[0]) and result.map50 == pytest.approx(stats[1])
    # COCOeval's -1: no box under 32² pixels in this case.
    assert stats[3] == -1 and np.isnan(result.map_small)
    assert 0.1 < result.map50_95 < result.map50 < 1
    ghost = result.per_class[3]
    assert ghost.num_gt == 0 and np.isnan(ghost.ap50) and np.isnan(ghost.precision)


def test_ap_small_scores_the_boxes_under_32_pixels_square_as_cocoeval_does():
    samples = [sample("a.jpg", (640, 480), [[10, 10, 30, 30], [100, 100, 300, 300]], [0, 0])]
    only_large = [found([[100, 100, 300, 300]], [0.9], [0])]
    result = evaluate(samples, only_large, ["car"])
    assert result.map_small == 0.0 and result.map50 == pytest.approx(51 / 101)
    assert result.map_small == pytest.approx(cocoeval_stats(samples, only_large, ["car"])[3])
    both = [found([[10, 10, 30, 30], [100, 100, 300, 300]], [0.8, 0.9], [0, 0])]
    assert evaluate(samples, both, ["car"]).map_small == pytest.approx(1.0)
    large_only = [sample("b.jpg", (640, 480), [[100, 100, 300, 300]], [0])]
    no_small = evaluate(large_only, only_large, ["car"])
    assert np.isnan(no_small.map_small) and no_small.to_dict()["map_small"] is None


def test_no_detections_score_zero():
    samples = [sample("a.jpg", (100, 100), [[0, 0, 10, 10]], [1])]
    result = evaluate(samples, [found([], [], [])], ["a", "b"])
    assert (result.map50_95, result.map50, result.precision, result.recall) == (0, 0, 0, 0)
    assert result.per_class[1].ap50 == 0 and np.isnan(result.per_class[0].ap50)
    assert not result.pr_curves["b"].any()


def test_nothing_to_evaluate_is_refused():
    with pytest.raises(JetkitError, match="no images to evaluate"):
        evaluate([], [], ["a"])
    background = [sample("a.jpg", (100, 100), [], [])]
    with pytest.raises(JetkitError, match="none of the 1 images has a ground-truth box"):
        evaluate(background, [found([], [], [])], ["a"])
    labelled = [sample("a.jpg", (100, 100), [[0, 0, 5, 5]], [0])]
    with pytest.raises(JetkitError, match="the detections use class id 4, but there are 1"):
        evaluate(labelled, [found([[0, 0, 5, 5]], [0.5], [4])], ["a"])


def test_matching_is_greedy_by_score_and_per_class():
    gt = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], np.float32)
    dets = np.array([[0, 0, 10, 10], [0, 0, 10, 9], [20, 0, 30, 10], [0, 0, 10, 10]], np.float32)
    # The 0.9 detection takes box 0 though the 0.5 one fits it better; the 0.8 detection is of
    # another class than box 1; the last one finds box 0 already taken.
    tp = match_detections(
        dets, np.array([0.5, 0.9, 0.8, 0.1]), np.array([0, 0, 1, 0]), gt, np.array([0, 0])
    )
    assert tp.tolist() == [False, True, False, False]


def test_precision_and_recall_are_those_of_each_confidence_threshold():
    # Two boxes to find; detections scoring 0.9 (right), 0.6 (wrong) and 0.3 (right).
    precision, recall = precision_recall_curves(
        np.array([True, False, True]), np.array([0.9, 0.6, 0.3]), np.array([0, 0, 0]), np.array([2])
    )

    def at(confidence):
        i = int(np.searchsorted(CONFIDENCE_GRID, confidence))
        return precision[0, i], recall[0, i]

    assert at(0.95) == (1, 0)  # nothing kept
    assert at(0.7) == (1, 0.5)
    assert at(0.45) == (0.5, 0.5)
    assert at(0.2) == pytest.approx((2 / 3, 1))


def test_the_report_is_json_ready_and_a_table():
    samples = [sample("a.jpg", (100, 100), [[0, 0, 10, 10]], [0])]
    result = evaluate(samples, [found([[0, 0, 10, 10]], [0.7], [0])], ["person", "bicycle"])
    report = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert report["map50"] == pytest.approx(1) and report["num_images"] == 1
    assert report["per_class"]["bicycle"] == {
        "num_images": 0,
        "num_gt": 0,
        "ap50_95": None,
        "ap50": None,
        "precision": None,
        "recall": None,
    }
    header, overall, person, bicycle = format_table(result).splitlines()
    assert header.split() == ["class", "images", "gt", "P", "R", "mAP50", "mAP50-95"]
    assert overall.split() == ["all", "1", "1", "1.000", "1.000", "1.000", "1.000"]
    assert person.split()[0] == "person" and bicycle.split()[1:] == ["0", "0", "-", "-", "-", "-"]


def blob_dataset(root):
    """Five blob scenes of mixed sizes as a YOLO data set (PNG, so the colours stay exact)."""
    scenes = [
        ((1280, 720), {"red": (100, 96, 420, 336), "blue": (760, 400, 1160, 688)}),
        ((640, 960), {"green": (50, 500, 300, 900)}),
        ((800, 800), {"red": (50, 50, 250, 200), "green": (300, 300, 700, 700)}),
        ((500, 300), {"blue": (300, 40, 480, 260), "green": (20, 20, 120, 120)}),
        ((960, 540), {}),
    ]
    for i, (size_wh, boxes) in enumerate(scenes):
        image = root / f"images/val/scene{i}.png"
        image.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(image), draw_blob_scene(size_wh, boxes, seed=i))
        width, height = size_wh
        lines = [
            f"{BLOB_CLASSES.index(name)} {(x0 + x1) / 2 / width} {(y0 + y1) / 2 / height} "
            f"{(x1 - x0) / width} {(y1 - y0) / height}\n"
            for name, (x0, y0, x1, y1) in boxes.items()
        ]
        label = root / f"labels/val/scene{i}.txt"
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text("".join(lines))
    names = ", ".join(BLOB_CLASSES)
    (root / "data.yaml").write_text(f"train: images/val\nval: images/val\nnames: [{names}]\n")
    return root / "data.yaml"


def test_evaluate_detector_on_a_data_set_from_disk(tmp_path, blob_onnx):
    ds = load_dataset(blob_dataset(tmp_path))
    t = EVAL_THRESHOLDS
    detector = Detector.open(blob_onnx, conf=t.conf, iou=t.iou, max_detections=t.max_detections)
    calls = []
    result = evaluate_detector(
        detector,
        ds.val,
        batch=2,
        progress=lambda done, total: calls.append((done, total)),
        names=ds.names,
    )
    assert calls == [(2, 5), (4, 5), (5, 5)]
    assert result.num_images == 5 and result.map50 > 0.9 and result.map50_95 > 0.8
    assert result.recall == 1
    assert [c.num_gt for c in result.per_class] == [2, 3, 2]


def test_evaluate_detector_refuses_other_classes_and_a_batch_too_big(tmp_path, blob_onnx):
    ds = load_dataset(blob_dataset(tmp_path))
    detector = Detector.open(blob_onnx, conf=0.001)
    with pytest.raises(JetkitError, match=r"model's classes \(red, green, blue\) differ"):
        evaluate_detector(detector, ds.val, names=["cat", "dog", "bird"])
    with pytest.raises(JetkitError, match="batch 9 must be between 1 and the model's max batch 8"):
        evaluate_detector(detector, ds.val, batch=9)


def test_best_f1_confidence_separates_objects_from_clutter():
    """True boxes at 0.6-0.9, clutter at 0.1-0.3: the confidence chosen keeps every object and
    no clutter (the lowest such, for recall), with F1 1."""
    rng = np.random.default_rng(0)
    samples, detections = [], []
    for i in range(6):
        gt = np.array([[10, 10, 50, 50], [60, 60, 90, 100]], np.float32)
        samples.append(sample(f"{i}.jpg", (128, 128), gt, [0, 1]))
        clutter = np.array([[100, 0, 120, 20], [0, 100, 30, 120]], np.float32)
        detections.append(
            ImageDetections(
                np.concatenate([gt, clutter]),
                np.concatenate([rng.uniform(0.6, 0.9, 2), rng.uniform(0.1, 0.3, 2)]).astype(
                    np.float32
                ),
                np.array([0, 1, 0, 1]),
            )
        )
    confidence, f1 = best_f1_confidence(samples, detections, 2)
    top_clutter = max(float(d.scores[2:].max()) for d in detections)
    weakest_object = min(float(d.scores[:2].min()) for d in detections)
    assert top_clutter < confidence <= weakest_object and f1 == pytest.approx(1.0)
    assert best_f1_confidence(samples, detections, 2, min_confidence=0.7)[0] >= 0.7


def test_best_f1_confidence_needs_boxes():
    empty = [sample("0.jpg", (64, 64), np.zeros((0, 4)), [])]
    none = [ImageDetections(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64))]
    with pytest.raises(JetkitError, match="threshold yourself"):
        best_f1_confidence(empty, none, 2)
