"""Batch NMS: one pass over all images must equal NMS image by image."""

import numpy as np

from edge.decode import Candidates
from edge.nms import nms_reference
from edge.postprocess import suppress


def random_candidates(rng, n, num_classes=4):
    xy = rng.uniform(0, 300, (n, 2))
    wh = rng.uniform(20, 80, (n, 2))
    xyxy = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    return Candidates(
        xyxy, rng.uniform(0.3, 1, n).astype(np.float32), rng.integers(0, num_classes, n)
    )


def test_batched_class_aware_equals_per_image_reference():
    rng = np.random.default_rng(5)
    images = [random_candidates(rng, n) for n in (40, 0, 25, 60)]
    results = suppress(images, num_classes=4, iou_threshold=0.45)
    assert len(results) == 4
    for cand, result in zip(images, results, strict=True):
        keep = nms_reference(cand.xyxy, cand.scores, 0.45, cand.class_ids)
        np.testing.assert_array_equal(result.xyxy, cand.xyxy[keep])
        np.testing.assert_array_equal(result.class_ids, cand.class_ids[keep])


def test_agnostic_suppresses_across_classes():
    cand = Candidates(
        np.array([[0, 0, 10, 10], [0, 0, 10, 10]], np.float32),
        np.array([0.9, 0.8], np.float32),
        np.array([0, 1]),
    )
    assert len(suppress([cand], 2, 0.5, "class_aware")[0].scores) == 2
    assert suppress([cand], 2, 0.5, "agnostic")[0].class_ids.tolist() == [0]


def test_max_detections_is_per_image():
    rng = np.random.default_rng(9)
    images = [random_candidates(rng, 80) for _ in range(3)]
    results = suppress(images, 4, 0.9, max_detections=5)
    assert [len(r.scores) for r in results] == [5, 5, 5]
    for result in results:
        assert np.all(np.diff(result.scores) <= 0)


def test_soft_nms_returns_decayed_scores():
    cand = Candidates(
        np.array([[0, 0, 10, 10], [1, 0, 11, 10]], np.float32),
        np.array([0.9, 0.8], np.float32),
        np.array([0, 0]),
    )
    (result,) = suppress([cand], 1, 0.45, "soft")
    assert result.scores[0] == np.float32(0.9) and result.scores[1] < 0.8


def test_none_only_caps_and_orders():
    cand = Candidates(
        np.zeros((3, 4), np.float32), np.array([0.2, 0.9, 0.5], np.float32), np.zeros(3, int)
    )
    (result,) = suppress([cand], 1, 0.45, "none", max_detections=2)
    np.testing.assert_allclose(result.scores, [0.9, 0.5])
