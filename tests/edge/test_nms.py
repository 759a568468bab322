"""NMS against the slow obviously-correct reference on random inputs, and the other kinds."""

import numpy as np
import pytest

from edge.nms import nms, nms_reference, soft_nms


def random_boxes(rng: np.random.Generator, n: int, clustered: bool):
    """`n` boxes, optionally in a few tight clusters so that suppression chains happen."""
    if clustered:
        centres = rng.uniform(0, 200, (max(1, n // 10), 2))
        xy = centres[rng.integers(0, centres.shape[0], n)] + rng.normal(0, 6, (n, 2))
    else:
        xy = rng.uniform(0, 200, (n, 2))
    wh = rng.uniform(10, 60, (n, 2))
    xyxy = np.concatenate([xy - wh / 2, xy + wh / 2], axis=1).astype(np.float32)
    # Coarse score levels make ties, which must be broken like the reference (lower index first).
    scores = rng.choice(np.linspace(0.05, 1.0, 12), n).astype(np.float32)
    return xyxy, scores


@pytest.mark.parametrize("kind", ["iou", "diou"])
@pytest.mark.parametrize("grouped", [False, True])
def test_matches_reference_on_random_inputs(kind, grouped):
    rng = np.random.default_rng(7)
    for trial in range(60):
        n = int(rng.integers(1, 120))
        xyxy, scores = random_boxes(rng, n, clustered=trial % 2 == 0)
        groups = rng.integers(0, 4, n) if grouped else None
        threshold = float(rng.choice([0.3, 0.45, 0.7]))
        expected = nms_reference(xyxy, scores, threshold, groups, kind)
        np.testing.assert_array_equal(nms(xyxy, scores, threshold, groups, kind), expected)


def test_overlapping_boxes_of_different_groups_both_survive():
    xyxy = np.array([[0, 0, 10, 10], [1, 1, 10, 10]], np.float32)
    scores = np.array([0.9, 0.8], np.float32)
    assert nms(xyxy, scores, 0.5).tolist() == [0]
    assert nms(xyxy, scores, 0.5, group_ids=np.array([0, 1])).tolist() == [0, 1]


def test_max_detections_keeps_the_best():
    rng = np.random.default_rng(3)
    xyxy, scores = random_boxes(rng, 200, clustered=False)
    groups = rng.integers(0, 3, 200)
    full = nms(xyxy, scores, 0.45, groups)
    np.testing.assert_array_equal(nms(xyxy, scores, 0.45, groups, max_detections=5), full[:5])


def test_empty_input():
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5).shape == (0,)


def test_diou_nms_keeps_a_box_whose_centre_is_far_even_when_iou_is_high():
    # IoU 6400/13600 = 0.47; DIoU = 0.47 - 800/28800 = 0.443, below the 0.45 threshold.
    xyxy = np.array([[0, 0, 100, 100], [20, 20, 120, 120]], np.float32)
    scores = np.array([0.9, 0.8], np.float32)
    assert nms(xyxy, scores, 0.45, kind="iou").tolist() == [0]
    assert nms(xyxy, scores, 0.45, kind="diou").tolist() == [0, 1]


def soft_nms_reference(xyxy, scores, sigma=0.5, score_threshold=0.001):
    """Bodla et al.'s sequential loop, Gaussian variant, one group."""
    from edge.boxes import box_iou

    remaining = list(range(len(scores)))
    current = scores.astype(np.float64).copy()
    kept, kept_scores = [], []
    while remaining:
        best = max(remaining, key=lambda i: (current[i], -i))
        kept.append(best)
        kept_scores.append(current[best])
        remaining.remove(best)
        for j in list(remaining):
            current[j] *= np.exp(-(float(box_iou(xyxy[best], xyxy[j])) ** 2) / sigma)
            if current[j] < score_threshold:
                remaining.remove(j)
    return np.array(kept), np.array(kept_scores)


def test_soft_nms_matches_the_sequential_algorithm():
    rng = np.random.default_rng(11)
    for _ in range(30):
        xyxy, _ = random_boxes(rng, int(rng.integers(1, 40)), clustered=True)
        scores = rng.uniform(0.1, 1.0, xyxy.shape[0]).astype(np.float32)
        expected_idx, expected_scores = soft_nms_reference(xyxy, scores)
        idx, decayed = soft_nms(xyxy, scores)
        order = np.argsort(-expected_scores, kind="stable")
        np.testing.assert_array_equal(idx, expected_idx[order])
        np.testing.assert_allclose(decayed, expected_scores[order], rtol=1e-4)


def test_soft_nms_decays_instead_of_removing():
    xyxy = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    idx, decayed = soft_nms(xyxy, scores, group_ids=np.zeros(3, int))
    assert sorted(idx.tolist()) == [0, 1, 2]
    assert decayed[idx.tolist().index(1)] < 0.8 * 0.5  # heavily overlapped: decayed
    assert decayed[idx.tolist().index(2)] == pytest.approx(0.7)  # untouched


def test_soft_nms_groups_are_independent():
    xyxy = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], np.float32)
    scores = np.array([0.9, 0.8], np.float32)
    _, decayed = soft_nms(xyxy, scores, group_ids=np.array([0, 1]))
    np.testing.assert_allclose(sorted(decayed), [0.8, 0.9], rtol=1e-6)
