"""ByteTrack on scripted scenes: objects keep their ids while they move, cross, fade to low
scores, vanish for a while or skip frames; new objects get new ids; bad parameters name their key."""

import numpy as np
import pytest

from edge.analytics.assignment import assign
from edge.analytics.bytetrack import ByteTracker, TrackerConfig
from edge.errors import JetkitError


def box(cx: float, cy: float, w: float = 40, h: float = 80) -> list[float]:
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def frame(boxes, scores=None, class_ids=None):
    xyxy = np.array(boxes, dtype=float).reshape(-1, 4)
    scores = np.full(len(xyxy), 0.9) if scores is None else np.asarray(scores, dtype=float)
    class_ids = np.zeros(len(xyxy), np.int64) if class_ids is None else np.asarray(class_ids)
    return xyxy, scores, class_ids


def test_assignment_minimises_the_total_and_drops_pairs_over_the_limit():
    cost = np.array([[0.1, 0.2, 0.9], [0.15, 0.9, 0.9], [0.9, 0.9, 0.95]])
    pairs, rows, cols = assign(cost, max_cost=0.5)
    # Greedy would take (0,0) and leave row 1 without a partner; the optimum is 0-1, 1-0.
    assert pairs.tolist() == [[0, 1], [1, 0]] and rows.tolist() == [2] and cols.tolist() == [2]
    pairs, rows, cols = assign(np.zeros((0, 3)), 0.5)
    assert pairs.shape == (0, 2) and rows.size == 0 and cols.tolist() == [0, 1, 2]


def test_a_moving_object_keeps_one_id_and_a_new_one_gets_the_next():
    tracker = ByteTracker()
    ids = [tracker.update(*frame([box(100 + 8 * t, 200)]))[0] for t in range(20)]
    assert ids == [1] * 20
    both = tracker.update(*frame([box(260, 200), box(500, 300)]))
    assert both[0] == 1 and both[1] == -1  # a newcomer is tentative for one frame
    both = tracker.update(*frame([box(268, 200), box(500, 300)]))
    assert both.tolist() == [1, 2]
    tracks = tracker.tracks()
    assert tracks.ids.tolist() == [1, 2] and tracks.matched.all()
    np.testing.assert_allclose(tracks.xyxy[0], box(268, 200), atol=2)


def test_a_single_false_positive_never_gets_an_id():
    tracker = ByteTracker()
    tracker.update(*frame([box(100, 100)]))
    assert tracker.update(*frame([box(100, 100), box(400, 400)])).tolist() == [1, -1]
    assert tracker.update(*frame([box(100, 100)])).tolist() == [1]
    assert tracker.tracks().ids.tolist() == [1] and len(tracker) == 1


def test_crossing_objects_keep_their_ids():
    """Two people walking towards each other and past, overlapping for a few frames."""
    tracker = ByteTracker()
    seen = []
    for t in range(40):
        left, right = box(100 + 10 * t, 200), box(500 - 10 * t, 210)
        seen.append(tracker.update(*frame([left, right])).tolist())
    assert all(ids == [1, 2] for ids in seen)


def test_a_fading_object_is_kept_by_its_low_score_boxes():
    """The second association: an occluded person's box drops to 0.3, below `high`."""
    tracker = ByteTracker(TrackerConfig(high=0.5, low=0.1))
    for t in range(5):
        tracker.update(*frame([box(100 + 5 * t, 100)]))
    faded = [tracker.update(*frame([box(125 + 5 * t, 100)], [0.3]))[0] for t in range(5)]
    assert faded == [1] * 5
    # Low-score boxes alone never start a track.
    fresh = ByteTracker(TrackerConfig(high=0.5, low=0.1))
    assert [fresh.update(*frame([box(50, 50)], [0.3]))[0] for _ in range(3)] == [-1] * 3


def test_a_lost_object_is_found_again_within_the_buffer_and_not_after():
    tracker = ByteTracker(TrackerConfig(buffer_frames=10))
    for t in range(10):
        tracker.update(*frame([box(100 + 6 * t, 100)]))
    for _ in range(5):  # hidden for 5 frames while it moves on at 6 px a frame
        assert tracker.update(*frame([])).size == 0
        assert tracker.tracks().matched.tolist() == [False]  # coasting
    assert tracker.update(*frame([box(100 + 6 * 15, 100)]))[0] == 1
    ended = []
    for _ in range(12):
        tracker.update(*frame([]))
        ended += tracker.ended_ids.tolist()
    assert ended == [1] and tracker.tracks().ids.size == 0 and len(tracker) == 0
    tracker.update(*frame([box(100, 100)]))
    assert tracker.update(*frame([box(100, 100)]))[0] == 2


def test_dropped_frames_advance_the_prediction_by_their_time():
    """At 30 px a frame, an object seen only every fourth frame (the pipeline dropped three) is
    120 px on each time: matched when the tracker is told dt=4, lost when it thinks one frame
    passed."""

    def run(dt_told: float) -> list[int]:
        tracker = ByteTracker()
        for t in range(10):
            tracker.update(*frame([box(100 + 30 * t, 100, w=60, h=60)]))
        later = [box(370 + 120 * k, 100, w=60, h=60) for k in range(1, 4)]
        return [int(tracker.update(*frame([b]), dt=dt_told)[0]) for b in later]

    assert run(4.0) == [1, 1, 1]
    assert run(1.0)[0] == -1


def test_held_tracks_stand_where_they_were_last_detected():
    """Motion gating holds tracks the detector does not look at. An object that slowed to a
    stop is held at its last detected box, exactly, where the filter's estimate still carries
    some of its speed; one the detector looked at and missed is not held."""
    tracker = ByteTracker()
    for t in range(10):
        tracker.update(*frame([box(100 + 20 * t, 100), box(600, 400)]))
    tracker.update(*frame([box(290, 100), box(600, 400)]))  # the first stopped
    tracker.hold()
    held = tracker.held()
    assert held.ids.tolist() == [1, 2] and not held.matched.any()
    np.testing.assert_array_equal(held.xyxy, [box(290, 100), box(600, 400)])
    assert np.abs(tracker.tracks().xyxy[0] - box(290, 100)).max() > 1  # the filter lags
    # A crop around the second only: the first is held outside it; the second, looked at and
    # not found, is not held.
    tracker.update(*frame([]), region_xyxy=(500, 300, 700, 500))
    assert tracker.held().ids.tolist() == [1]
    # Looked at in full and found, nothing is held.
    tracker.update(*frame([box(290, 100)]))
    assert tracker.held().ids.size == 0


def test_the_class_and_score_follow_the_latest_detection():
    tracker = ByteTracker()
    tracker.update(*frame([box(100, 100)], [0.9], [2]))
    tracker.update(*frame([box(102, 100)], [0.7], [3]))
    tracks = tracker.tracks()
    assert tracks.class_ids.tolist() == [3] and tracks.scores.tolist() == [0.7]


@pytest.mark.parametrize(
    "changes, key",
    [
        ({"kind": "sort"}, "tracker.kind"),
        ({"high": 0.0}, "tracker.high"),
        ({"low": 0.6, "high": 0.5}, "tracker.low"),
        ({"match_iou": 1.0}, "tracker.match_iou"),
        ({"buffer_frames": 0}, "tracker.buffer_frames"),
        ({"buffer_frames": 2.5}, "tracker.buffer_frames"),
    ],
)
def test_bad_parameters_name_their_key(changes, key):
    with pytest.raises(JetkitError, match=key.replace(".", r"\.")):
        TrackerConfig(**changes)
