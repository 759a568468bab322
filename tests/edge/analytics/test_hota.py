"""HOTA on sequences worked out by hand from its definition (Luiten et al. 2021, as TrackEval
computes it; bench_tracking checks it against TrackEval itself): perfect tracking, a track split
in two, boxes that match only at the low IoU thresholds, a missed and a spurious track."""

import numpy as np
import pytest

from edge.analytics.hota import ALPHAS, hota_scores
from tests.edge.analytics.test_mot_metrics import A, B, rows


def test_perfect_tracking_scores_one():
    scores = hota_scores(rows({1: A, 2: B}), rows({7: A, 8: B}))
    assert (scores.hota, scores.det_a, scores.ass_a) == (1.0, 1.0, 1.0)
    assert scores.loc_a == pytest.approx(1.0)


def test_a_track_split_in_two_halves_association():
    """A's hypothesis changes id after frame 5. Every box is found (DetA 1); each of A's boxes
    belongs to a pair that shares 5 of A's 10 frames: AssA for A is 5/10, for B 1."""
    scores = hota_scores(rows({1: A, 2: B}), rows({7: A[:5], 9: A[5:], 8: B}))
    assert scores.det_a == 1.0
    assert scores.ass_a == pytest.approx((10 * 0.5 + 10 * 1.0) / 20)
    assert scores.hota == pytest.approx(np.sqrt(0.75))


def test_boxes_that_overlap_by_a_third_count_up_to_alpha_one_third():
    """Shifted by half a box, a 20-px box overlaps its truth by IoU 10/30: a match for the
    alphas up to 1/3 (0.05 … 0.30, 6 of 19) and a miss plus a false positive above."""
    shifted = [(f, x + 10) for f, x in A]
    scores = hota_scores(rows({1: A}), rows({7: shifted}))
    matched = (ALPHAS <= 1 / 3).sum()
    assert matched == 6
    assert scores.det_a == pytest.approx(matched / len(ALPHAS))
    # LocA is 1/3 where matched and, by TrackEval's convention, 1 where nothing is.
    assert scores.loc_a == pytest.approx((matched / 3 + len(ALPHAS) - matched) / len(ALPHAS))
    assert scores.hota == pytest.approx(matched / len(ALPHAS))  # AssA is 1 where matched


def test_a_missed_track_and_a_spurious_one_cost_detection_not_association():
    far = [(f, 900) for f in range(1, 11)]
    scores = hota_scores(rows({1: A, 2: B}), rows({7: A, 5: far}))
    assert scores.det_a == pytest.approx(10 / 30)  # 10 matched, 10 missed, 10 spurious
    assert scores.ass_a == 1.0
    empty = np.zeros((0, 10))
    assert hota_scores(rows({1: A}), empty).hota == 0.0
