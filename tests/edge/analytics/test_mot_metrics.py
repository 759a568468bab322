"""Tracking scores on sequences whose right answers are worked out by hand from the metrics'
definitions (CLEAR MOT; IDF1): perfect tracking, a switch, a miss and a false positive, a track
that jumps between objects."""

import numpy as np
import pytest

from edge.analytics.mot_metrics import tracking_scores


def rows(tracks):
    """`{id: [(frame, x), …]}` → MOT rows of 20×20 boxes at (x, 0)."""
    out = [[f, tid, x, 0, 20, 20, 1, -1, -1, -1] for tid, points in tracks.items()
           for f, x in points]  # fmt: skip
    return np.array(out, dtype=float).reshape(-1, 10)


A = [(f, 10 * f) for f in range(1, 11)]  # object A moving right
B = [(f, 500) for f in range(1, 11)]  # object B standing


def test_perfect_tracking_scores_one():
    scores = tracking_scores(rows({1: A, 2: B}), rows({7: A, 8: B}))
    assert (scores.mota, scores.idf1, scores.id_switches) == (1.0, 1.0, 0)
    assert scores.motp == pytest.approx(1.0)
    assert scores.gt_objects == 20 and scores.matches == 20


def test_a_switch_halfway_costs_one_switch_and_a_quarter_of_idf1():
    """A's hypothesis id changes after frame 5: MOTA 1 - 1/20; IDF1 matches A to one of its two
    ids (5 frames): IDTP 15 of 20 + 20, so 0.75."""
    scores = tracking_scores(rows({1: A, 2: B}), rows({7: A[:5], 9: A[5:], 8: B}))
    assert scores.id_switches == 1 and scores.mota == pytest.approx(0.95)
    assert scores.idf1 == pytest.approx(0.75)


def test_misses_and_false_positives_count_against_mota():
    far = [(f, 900) for f in range(1, 4)]  # 3 boxes where nothing is
    scores = tracking_scores(rows({1: A, 2: B}), rows({7: A[:8], 8: B, 5: far}))
    assert (scores.misses, scores.false_positives, scores.id_switches) == (2, 3, 0)
    assert scores.mota == pytest.approx(1 - 5 / 20)
    assert scores.idf1 == pytest.approx(2 * 18 / (20 + 21))


def test_a_track_that_jumps_to_another_object_is_a_switch_for_both():
    """Hypothesis 7 follows A, then jumps onto B at frame 6 while 8 (on B) ends: A is lost from
    frame 6 (5 misses), B switches from 8 to 7."""
    hyp = rows({7: A[:5] + B[5:], 8: B[:5]})
    scores = tracking_scores(rows({1: A, 2: B}), hyp)
    assert scores.id_switches == 1 and scores.misses == 5 and scores.false_positives == 0
    assert scores.mota == pytest.approx(1 - 6 / 20)


def test_a_box_that_overlaps_too_little_is_a_miss_and_a_false_positive():
    shifted = [(f, x + 12) for f, x in A]  # IoU 8/32 = 0.25
    scores = tracking_scores(rows({1: A}), rows({7: shifted}))
    assert (scores.matches, scores.misses, scores.false_positives) == (0, 10, 10)
    assert scores.idf1 == 0.0
