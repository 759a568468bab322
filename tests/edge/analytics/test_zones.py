"""Lines and zones on scripted tracks, the line cases through the real ByteTracker: the crossings
other counters get wrong (two at once, a reverse crossing, an object that stops on the line and
jitters, one lost mid-crossing) count exactly; zones give enter, exit and dwell; bad shapes name
their config key."""

import numpy as np
import pytest

from edge.analytics.bytetrack import ByteTracker
from edge.analytics.zones import LineConfig, LineCounter, ZoneConfig, ZoneCounter, anchor_points
from edge.errors import JetkitError

SIZE_WH = (640, 480)
CLASSES = ("person", "car")
# A line across the middle, pointing right: walking up the frame across it is "in".
MIDDLE = LineConfig("middle", ((40, 240), (600, 240)), band_px=6)


def feet_at(x: float, y: float, w: float = 30, h: float = 60) -> list[float]:
    """A box whose bottom centre is at (x, y)."""
    return [x - w / 2, y - h, x + w / 2, y]


def count(paths, line=MIDDLE, classes=None, drop=()):
    """Run `paths` (one list of bottom-centre points per object, frame by frame) through a
    ByteTracker and a LineCounter of its tracked detections; frames in `drop` have no detections
    (the object was missed). Returns the counter's counts."""
    counter = LineCounter(line.resolve(SIZE_WH, CLASSES))
    tracker = ByteTracker()
    names = classes or ["person"] * len(paths)
    for t in range(len(paths[0])):
        if t in drop:
            tracker.update(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64))
            continue
        xyxy = np.array([feet_at(*path[t]) for path in paths])
        class_ids = np.array([CLASSES.index(n) for n in names])
        ids = tracker.update(xyxy, np.full(len(paths), 0.9), class_ids)
        tracked = ids > 0  # where the objects were seen, not the filter's estimate
        counter.update(ids[tracked], xyxy[tracked], [names[i] for i in np.flatnonzero(tracked)])
    return dict(counter.counts)


def walk(x, y_from, y_to, frames):
    return [(x, y) for y in np.linspace(y_from, y_to, frames)]


def test_two_objects_crossing_at_once_count_twice():
    assert count([walk(200, 400, 100, 30), walk(300, 400, 100, 30)]) == {("person", "in"): 2}


def test_a_reverse_crossing_counts_in_the_other_direction():
    there_and_back = walk(200, 400, 100, 20) + walk(200, 100, 400, 20)
    assert count([there_and_back]) == {("person", "in"): 1, ("person", "out"): 1}


def test_an_object_that_stops_on_the_line_and_jitters_counts_once_or_not_at_all():
    rng = np.random.default_rng(0)
    jitter = [(200 + rng.normal(0, 1), 240 + 4 * (-1) ** t) for t in range(40)]
    onward = walk(200, 400, 242, 15) + jitter + walk(200, 238, 100, 15)
    assert count([onward]) == {("person", "in"): 1}
    back = walk(200, 400, 242, 15) + jitter + walk(200, 242, 400, 15)
    assert count([back]) == {}
    # Without the band every wobble would be a crossing.
    bare = LineConfig("bare", MIDDLE.points, band_px=0)
    assert count([onward], bare)[("person", "in")] > 10


def test_an_object_lost_for_a_few_frames_mid_crossing_counts_once():
    path = walk(200, 400, 100, 30)  # crosses y=240 around frame 15
    assert count([path], drop={13, 14, 15, 16, 17}) == {("person", "in"): 1}


def test_classes_count_apart_and_a_filter_keeps_its_own():
    paths = [walk(200, 100, 400, 30), walk(400, 100, 400, 30)]
    assert count(paths, classes=["person", "car"]) == {("person", "out"): 1, ("car", "out"): 1}
    cars = LineConfig("cars", MIDDLE.points, classes=("car",), band_px=6)
    assert count(paths, cars, classes=["person", "car"]) == {("car", "out"): 1}


def test_a_track_that_starts_beyond_the_line_or_passes_its_end_counts_nothing():
    short = LineConfig("short", ((40, 240), (300, 240)), band_px=6)
    assert count([walk(200, 230, 100, 20)]) == {}  # first seen across it already
    assert count([walk(500, 400, 100, 30)], short) == {}  # beside the segment's end


def test_zones_give_enter_exit_and_dwell_and_who_is_inside():
    door = ZoneConfig("door", ((0.5, 0.5), (1, 0.5), (1, 1), (0.5, 1)))
    counter = ZoneCounter(door.resolve(SIZE_WH, CLASSES))
    ids = np.array([7, 8])
    outside, inside = feet_at(100, 100), feet_at(500, 400)
    assert counter.update(ids, np.array([outside, outside]), ["person", "car"], 0.0) == []
    events = counter.update(ids, np.array([inside, outside]), ["person", "car"], 1.0)
    assert events == [{"type": "enter", "track_id": 7, "class": "person"}]
    counter.update(ids, np.array([inside, inside]), ["person", "car"], 2.0)
    assert counter.occupancy() == {"person": 1, "car": 1}
    events = counter.update(ids, np.array([outside, inside]), ["person", "car"], 4.5)
    assert events == [{"type": "exit", "track_id": 7, "class": "person", "dwell_s": 3.5,
                       "reason": "left"}]  # fmt: skip
    assert counter.forget([8], 6.0) == [{"type": "exit", "track_id": 8, "class": "car",
                                         "dwell_s": 4.0, "reason": "lost"}]  # fmt: skip
    assert counter.occupancy() == {} and counter.entered_total == {"person": 1, "car": 1}


def test_a_concave_zone_contains_only_what_is_inside_it():
    ell = ZoneConfig("ell", ((0, 0), (200, 0), (200, 100), (100, 100), (100, 200), (0, 200)))
    zone = ell.resolve(SIZE_WH, CLASSES)
    points = np.array([[50, 50], [150, 50], [50, 150], [150, 150], [300, 50]])
    assert zone.contains(points).tolist() == [True, True, True, False, False]


def test_anchors_are_points_of_the_box():
    box = np.array([[10.0, 20, 30, 60]])
    assert anchor_points(box, "bottom_center").tolist() == [[20, 60]]
    assert anchor_points(box, "center").tolist() == [[20, 40]]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: ZoneConfig("z", ((0, 0), (1, 1))), r"zones\.z\.points needs at least 3 points"),
        (lambda: ZoneConfig("z", ((0, 0), (0.5, 0.5), (1, 1))).resolve(SIZE_WH, CLASSES),
         r"zones\.z\.points enclose no area"),
        (lambda: LineConfig("l", ((10, 10), (10, 10))).resolve(SIZE_WH, CLASSES),
         r"lines\.l\.points are the same point"),
        (lambda: LineConfig("l", ((10, 10), (700, 10))).resolve(SIZE_WH, CLASSES),
         r"lines\.l\.points .* outside the 640x480 frame"),
        (lambda: LineConfig("l", ((0, 0), (1, 1)), classes=("bus",)).resolve(SIZE_WH, CLASSES),
         r"lines\.l\.classes names bus, which the model does not detect"),
        (lambda: ZoneConfig("z", ((0, 0), (1, 0), (1, 1)), anchor="feet"),
         r"zones\.z\.anchor 'feet' is not one of"),
        (lambda: LineConfig("l", (("a", 0), (1, 1))), r"lines\.l\.points must be a list"),
    ],
)  # fmt: skip
def test_bad_shapes_name_their_key(make, message):
    with pytest.raises(JetkitError, match=message):
        make()


def test_fractions_scale_to_the_frame():
    line = LineConfig("l", ((0, 0.5), (1, 0.5))).resolve(SIZE_WH, CLASSES)
    assert line.start.tolist() == [0, 240] and line.end.tolist() == [640, 240]
    assert line.band_px == pytest.approx(0.01 * 800)
