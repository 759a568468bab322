"""One stream's analytics on scripted detections: a person walks into a zone, across a line and
out of sight; the messages come in order with the schema's fields, and the counts add up. Time
for the tracker follows the capture clock."""

import numpy as np
import pytest

from edge.analytics.bytetrack import TrackerConfig
from edge.analytics.stream import AnalyticsConfig, FramePeriod, StreamAnalytics
from edge.analytics.zones import LineConfig, ZoneConfig
from edge.errors import JetkitError

CLASSES = ("person", "car")
IMAGE = np.zeros((480, 640, 3), np.uint8)


def test_a_walk_through_a_zone_and_across_a_line():
    config = AnalyticsConfig(
        tracker=TrackerConfig(buffer_frames=5),
        zones=(ZoneConfig("lawn", ((0, 0.5), (1, 0.5), (1, 1), (0, 1))),),
        lines=(LineConfig("gate", ((0, 0.4), (1, 0.4))),),
    )
    analytics = StreamAnalytics("yard", config, CLASSES)
    messages = []
    for t in range(40):  # feet from y=470 up to y=90, 10 px a frame, at 10 fps
        y = 470 - 10 * t
        box = np.array([[300.0, y - 60, 330, y]])
        result = analytics.process(t, t / 10, 1000 + t / 10, box, np.array([0.9]),
                                   np.array([0]), IMAGE)  # fmt: skip
        messages += result.messages
    for t in range(40, 50):  # gone: the track ends after its buffer
        messages += analytics.process(t, t / 10, 1000 + t / 10, np.zeros((0, 4)), np.zeros(0),
                                      np.zeros(0, np.int64), IMAGE).messages  # fmt: skip
    kinds = [m["type"] for m in messages]
    assert kinds[:2] == ["new", "zone_enter"] and kinds[-1] == "end"
    assert kinds.count("zone_exit") == 1 and kinds.count("line_crossing") == 1
    assert all(m["schema"] == 1 and m["stream"] == "yard" for m in messages)
    (crossing,) = [m for m in messages if m["type"] == "line_crossing"]
    assert crossing["line"] == "gate" and crossing["direction"] == "in"
    assert crossing["class"] == "person" and crossing["track_id"] == 1
    (exit_,) = [m for m in messages if m["type"] == "zone_exit"]
    assert exit_["reason"] == "left" and exit_["dwell_s"] == pytest.approx(2.3, abs=0.15)
    end = messages[-1]
    assert end["entered_zones"] == ["lawn"] and end["zones"] == []
    status = analytics.status()
    assert status["lines"] == {"gate": {"person": {"in": 1, "out": 0}}}
    assert status["zones"] == {"lawn": {"occupancy": {}, "entered": {"person": 1}}}
    assert status["tracks"] == 0


def test_a_skipped_frame_reports_what_the_last_look_found():
    """Motion gating skips frames where nothing moved: a car that stopped is reported with its
    id at the box it was detected in, and a weak box that never made a track (reported
    untracked when looked at) stands untracked, as both would be if the frame were looked at.
    A crop look elsewhere keeps both; a look at the whole frame replaces them."""
    analytics = StreamAnalytics("yard", AnalyticsConfig(TrackerConfig()), CLASSES)
    car, weak = [100.0, 100, 180, 140], [400.0, 300, 420, 320]
    for t in range(5):
        x = 20 * min(t, 3)
        analytics.process(t, t / 10, t / 10, np.array([[car[0] + x, 100, car[2] + x, 140], weak]),
                          np.array([0.9, 0.3]), np.array([1, 0]), IMAGE)  # fmt: skip
    held, found = analytics.hold(5, 0.5)
    assert found.track_ids.tolist() == [1, -1] and held.names == ["car", "person"]
    np.testing.assert_array_equal(held.xyxy, [[160, 100, 240, 140], weak])
    crop = analytics.process(6, 0.6, 0.6, np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64),
                             IMAGE, region_xyxy=(0, 200, 300, 480))  # fmt: skip
    assert crop.held.ids.tolist() == [1, -1]
    whole = analytics.process(7, 0.7, 0.7, np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64),
                              IMAGE)  # fmt: skip
    assert whole.held.ids.size == 0
    assert analytics.hold(8, 0.8)[1].track_ids.size == 0


def test_periods_follow_the_capture_clock():
    period = FramePeriod()
    times = [k / 30 for k in range(10)]
    assert [period.periods_since_last(k, t) for k, t in enumerate(times)] == pytest.approx(
        [1.0] * 10
    )
    # The pipeline dropped frames 10-12: the next processed frame is 4 periods on.
    assert period.periods_since_last(13, 13 / 30) == pytest.approx(4.0)
    # The camera itself skipped (no index gap, a time gap): by time.
    assert period.periods_since_last(14, 16 / 30) == pytest.approx(3.0, rel=0.05)
    # A reconnect after minutes is not coasted over for minutes.
    assert period.periods_since_last(15, 600.0) == 300.0
    # A file's frames go by their indices.
    frames = FramePeriod()
    assert [frames.periods_since_last(k, None) for k in (0, 1, 4, 5)] == [1.0, 1.0, 3.0, 1.0]


def test_zones_and_lines_need_a_tracker_and_unique_names():
    gate = LineConfig("gate", ((0, 0.4), (1, 0.4)))
    with pytest.raises(JetkitError, match="give tracker too"):
        AnalyticsConfig(lines=(gate,))
    with pytest.raises(JetkitError, match="lines has more than one named gate"):
        AnalyticsConfig(tracker=TrackerConfig(), lines=(gate, gate))


def test_weak_boxes_are_reported_only_when_tracked(blob_onnx):
    from edge.analytics.stream import keep_reported, run_at_tracker_threshold
    from edge.detector import Detections, Detector

    found = Detections(np.zeros((3, 4), np.float32), np.array([0.9, 0.2, 0.2], np.float32),
                       np.zeros(3, np.int64), CLASSES)  # fmt: skip
    kept, ids = keep_reported(found, np.array([-1, 4, -1]), 0.5)
    assert kept.scores.tolist() == pytest.approx([0.9, 0.2]) and ids.tolist() == [-1, 4]
    # The detector runs at the tracker's low threshold; results are reported at its own.
    detector = Detector.open(blob_onnx, conf=0.4)
    tracking = AnalyticsConfig(TrackerConfig(low=0.15))
    assert run_at_tracker_threshold(detector, tracking) == 0.4
    assert detector.thresholds.conf == 0.15
    assert run_at_tracker_threshold(detector, None) is None and detector.thresholds.conf == 0.15
    detector.close()
