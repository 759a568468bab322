"""Scoring as the MOTChallenge benchmark does: boxes on distractors neither right nor wrong,
several sequences scored as one without matching across them, and ByteTrack on public
detections."""

import numpy as np
import pytest

from edge.analytics.bytetrack import TrackerConfig
from edge.analytics.mot import drop_distractor_matches
from edge.analytics.mot_eval import (
    concatenated,
    format_scores,
    prepared,
    score,
    track_detections,
)
from tests.edge.analytics.test_mot_metrics import A, B, rows


def with_class(gt_rows, track_id, mot_class):
    out = gt_rows.copy()
    out[out[:, 1] == track_id, 7] = mot_class
    out[:, 6] = 1  # considered
    return out


def test_a_box_on_a_static_person_is_dropped_not_counted_as_false():
    gt = with_class(with_class(rows({1: A, 2: B}), 1, 1), 2, 7)  # B is a static person
    hyp = rows({7: A, 8: B})
    kept = drop_distractor_matches(gt, hyp)
    assert set(kept[:, 1].tolist()) == {7}
    scored_gt, scored_hyp = prepared(gt, hyp)
    scores = score("seq", scored_gt, scored_hyp)
    assert (scores.mota, scores.false_positives, scores.gt_objects) == (1.0, 0, 10)


def test_sequences_scored_together_never_match_across_each_other():
    """Both sequences use id 1 in frames 1-10; concatenated, each keeps its own frames and ids,
    so perfect tracking on each is perfect together and the counts add up."""
    first, second = rows({1: A}), rows({1: B})
    gt, hyp = concatenated([(first, first), (second, second)])
    together = score("all", gt, hyp)
    assert (together.mota, together.idf1, together.gt_objects) == (1.0, 1.0, 20)
    assert together.hota == pytest.approx(1.0)
    assert len(np.unique(gt[:, 1])) == 2 and gt[:, 0].max() == 20


def test_public_detections_are_tracked_into_one_id_per_object():
    det = rows({1: A, 2: B})
    det[:, 1], det[:, 6] = -1, 0.9  # det.txt: no ids, the detector's score
    tracked = track_detections(det, 10, TrackerConfig())
    assert len(np.unique(tracked[:, 1])) == 2  # A and B, one id each
    assert score("seq", rows({1: A, 2: B}), tracked).idf1 > 0.9


def test_the_table_shows_percentages_and_counts():
    line = format_scores([score("MOT17-02", rows({1: A}), rows({3: A}))]).splitlines()
    assert line[0].split() == ["sequence", "HOTA", "DetA", "AssA", "MOTA", "IDF1", "IDsw", "FP",
                               "FN", "GT"]  # fmt: skip
    assert line[1].split() == ["MOT17-02", "100.0", "100.0", "100.0", "100.0", "100.0", "0", "0",
                               "0", "10"]  # fmt: skip
