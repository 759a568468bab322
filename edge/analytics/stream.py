"""One stream's analytics after NMS: its tracker, its zones and lines, its lifecycle events, fed
one frame's detections at a time.

Time for the tracker is in the stream's frame periods, measured from the frames' capture times:
a frame that arrives after the pipeline dropped two (the newest-frame policy under overload) or
after the camera skipped some advances every track by as many periods, so tracks survive
overload instead of losing their objects to a prediction that fell behind.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from edge.analytics.assignment import load_solver
from edge.analytics.bytetrack import ByteTracker, TrackerConfig, Tracks
from edge.analytics.events import EventsConfig, ObjectEvents, envelope
from edge.analytics.motion import MotionConfig
from edge.analytics.zones import (
    DIRECTIONS,
    LineConfig,
    LineCounter,
    ZoneConfig,
    ZoneCounter,
    anchor_points,
    check_classes,
)
from edge.boxes import centres_inside
from edge.detector import Detections, Detector
from edge.errors import JetkitError

# Capture intervals that set a stream's frame period: enough for a stable median, few enough
# to follow a camera that changes its rate.
PERIOD_WINDOW = 32
# A gap longer than this many periods is a new start (a reconnect), not frames to coast over.
MAX_DT_PERIODS = 300.0
# Points of a track's trail kept for the overlay: a second at 30 frames/s.
TRAIL_POINTS = 30


@dataclass(frozen=True)
class AnalyticsConfig:
    """`tracker` None: no analytics (zones, lines, events and motion gating need tracks)."""

    tracker: TrackerConfig | None = None
    zones: tuple[ZoneConfig, ...] = ()
    lines: tuple[LineConfig, ...] = ()
    events: EventsConfig = field(default_factory=EventsConfig)
    motion: MotionConfig | None = None

    def __post_init__(self) -> None:
        if self.tracker is None and (self.zones or self.lines):
            raise JetkitError("zones and lines count tracks: give tracker too (or --track)")
        if self.tracker is None and self.motion is not None:
            raise JetkitError("motion gating holds tracks while nothing moves: give tracker too")
        for kind, shapes in (("zones", self.zones), ("lines", self.lines)):
            names = [shape.name for shape in shapes]
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise JetkitError(f"{kind} has more than one named {', '.join(twice)}")

    def check_classes(self, known: tuple[str, ...]) -> None:
        """Raises when a zone or line filters on a class the model does not detect."""
        for zone in self.zones:
            check_classes(zone.classes, known, f"zones.{zone.name}")
        for line in self.lines:
            check_classes(line.classes, known, f"lines.{line.name}")


class FramePeriod:
    """The stream's frame period from capture times and frame indices (median of recent
    per-frame intervals), and so how many periods lie between two processed frames."""

    def __init__(self) -> None:
        self._intervals_s: deque[float] = deque(maxlen=PERIOD_WINDOW)
        self._last: tuple[int, float] | None = None

    def periods_since_last(self, index: int, capture_s: float | None) -> float:
        """`capture_s` None (a file, read ahead of processing, so its read times say nothing
        about its own time): by the frame indices."""
        if capture_s is None:
            last_index = self._last[0] if self._last else index - 1
            self._last = (index, 0.0)
            return float(max(index - last_index, 1))
        last, self._last = self._last, (index, capture_s)
        if last is None:
            return 1.0
        frames, elapsed_s = index - last[0], capture_s - last[1]
        if frames > 0 and elapsed_s > 0:
            self._intervals_s.append(elapsed_s / frames)
        if not self._intervals_s or elapsed_s <= 0:
            return float(max(frames, 1))
        periods = elapsed_s / float(np.median(self._intervals_s))
        return float(min(max(periods, 1.0), MAX_DT_PERIODS))


@dataclass
class FrameAnalytics:
    """What one frame gave: each detection's `track_ids (D,)` (-1: untracked), the event
    messages, the trails, and the tracks held this frame (motion gating did not look where they
    are), to be reported beside the detections (`with_held`)."""

    track_ids: np.ndarray
    messages: list[dict[str, Any]]
    trails: dict[int, np.ndarray]
    held: Tracks | None = None  # ids -1: detections that stand untracked


def with_held(detections: Detections, found: FrameAnalytics) -> tuple[Detections, np.ndarray]:
    """The frame's detections and their track ids, the held tracks appended as detections at
    the boxes they were last detected in."""
    held = found.held
    if held is None or not len(held.ids):
        return detections, found.track_ids
    standing = _as_detections(held, detections.class_names)
    merged = Detections(
        np.concatenate([detections.xyxy, standing.xyxy]),
        np.concatenate([detections.scores, standing.scores]),
        np.concatenate([detections.class_ids, standing.class_ids]),
        detections.class_names,
    )
    return merged, np.concatenate([found.track_ids, held.ids])


def _as_detections(tracks: Tracks, class_names: tuple[str, ...]) -> Detections:
    return Detections(tracks.xyxy.astype(np.float32), tracks.scores.astype(np.float32),
                      tracks.class_ids, class_names)  # fmt: skip


def run_at_tracker_threshold(detector: Detector, config: AnalyticsConfig | None) -> float | None:
    """With a tracker: lowers `detector`'s confidence threshold to the tracker's `low` (its
    second association needs the weak boxes) and returns the threshold it had, at which
    untracked detections are then reported (`keep_reported`). Without one: None, and the
    detector as it was."""
    if config is None or config.tracker is None:
        return None
    report_conf = detector.thresholds.conf
    detector.thresholds = replace(detector.thresholds, conf=min(report_conf, config.tracker.low))
    return report_conf


def keep_reported(
    detections: Detections, track_ids: np.ndarray, min_score: float | None
) -> tuple[Detections, np.ndarray]:
    """The detections to report: those scoring `min_score` or more, and every tracked one (a
    tracker runs on lower scores than the user wants to see, and a tracked object whose score
    dips stays visible)."""
    if min_score is None:
        return detections, track_ids
    keep = (detections.scores >= min_score) | (track_ids > 0)
    kept = Detections(detections.xyxy[keep], detections.scores[keep],
                      detections.class_ids[keep], detections.class_names)  # fmt: skip
    return kept, track_ids[keep]


_TRACK_FIELDS = ("ids", "xyxy", "class_ids", "scores", "matched")


def _joined(*parts: Tracks) -> Tracks:
    return Tracks(*(np.concatenate([getattr(p, name) for p in parts]) for name in _TRACK_FIELDS))


def _subset(tracks: Tracks, keep: np.ndarray) -> Tracks:
    return Tracks(*(getattr(tracks, name)[keep] for name in _TRACK_FIELDS))


class StreamAnalytics:
    """`process(...)` per frame, in capture order (`capture_s` the monotonic capture time of a
    live stream's frame, None for a file's); shapes are resolved against the first frame's size
    (fractions scale to it, pixels are checked against it)."""

    def __init__(
        self, stream_id: str, config: AnalyticsConfig, class_names: tuple[str, ...]
    ) -> None:
        if config.tracker is None:
            raise ValueError("StreamAnalytics needs a tracker config")
        load_solver()
        self.stream_id = stream_id
        self.config = config
        self.class_names = class_names
        self.tracker = ByteTracker(config.tracker)
        self.events = ObjectEvents(stream_id, config.events)
        self.period = FramePeriod()
        self._trails: dict[int, deque[tuple[float, float]]] = {}
        self.zones: list[ZoneCounter] = []
        self.lines: list[LineCounter] = []
        self._size_wh: tuple[int, int] | None = None
        # What the detector found untracked where it last looked (a fast small object whose
        # track never settles, a tentative one): reported while nothing moves there, as the
        # tracks are, so that a frame motion gating skips reports what a look would have.
        self._untracked = Tracks(np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0, np.int64),
                                 np.zeros(0), np.zeros(0, bool))  # fmt: skip

    @property
    def size_wh(self) -> tuple[int, int] | None:
        """The frame size the shapes are resolved for (None before the first frame)."""
        return self._size_wh

    def resolve(self, size_wh: tuple[int, int]) -> None:
        """The shapes in pixels of `size_wh` frames; raises for a shape that does not fit."""
        self.zones = [ZoneCounter(z.resolve(size_wh, self.class_names)) for z in self.config.zones]
        self.lines = [LineCounter(ln.resolve(size_wh, self.class_names))
                      for ln in self.config.lines]  # fmt: skip
        self._size_wh = size_wh

    def process(
        self,
        index: int,
        capture_s: float | None,
        unix_s: float,
        xyxy: np.ndarray,
        scores: np.ndarray,
        class_ids: np.ndarray,
        image_bgr: np.ndarray,
        region_xyxy: tuple[int, int, int, int] | None = None,
    ) -> FrameAnalytics:
        """`region_xyxy`: the detector looked only there (motion gating's crop)."""
        size_wh = (image_bgr.shape[1], image_bgr.shape[0])
        if size_wh != self._size_wh:
            self.resolve(size_wh)
        dt = self.period.periods_since_last(index, capture_s)
        track_ids = self.tracker.update(xyxy, scores, class_ids, dt, region_xyxy)
        standing = self._standing_untracked(region_xyxy)
        untracked = track_ids <= 0
        self._untracked = _joined(standing, Tracks(
            track_ids[untracked], xyxy[untracked].astype(np.float64), class_ids[untracked],
            scores[untracked].astype(np.float64), np.zeros(int(untracked.sum()), bool)))  # fmt: skip
        ended = self.tracker.ended_ids.tolist()
        tracked = np.flatnonzero(track_ids > 0)
        ids, boxes = track_ids[tracked], xyxy[tracked]
        names = [self._name(k) for k in class_ids[tracked]]
        messages: list[dict[str, Any]] = []
        zones_of: dict[int, list[str]] = {}
        for counter in self.zones:
            zone = counter.zone.config.name
            for event in counter.update(ids, boxes, names, unix_s) + counter.forget(ended, unix_s):
                messages.append({**envelope(f"zone_{event.pop('type')}", self.stream_id, unix_s),
                                 "zone": zone, **event})  # fmt: skip
            for track_id in counter.inside():
                zones_of.setdefault(track_id, []).append(zone)
        for line in self.lines:
            for track_id, name, direction in line.update(ids, boxes, names):
                messages.append({**envelope("line_crossing", self.stream_id, unix_s),
                                 "line": line.line.config.name, "direction": direction,
                                 "track_id": track_id, "class": name})  # fmt: skip
            line.forget(ended)
        lifecycle = self.events.update(
            unix_s, ids, boxes, scores[tracked], names, zones_of, ended, image_bgr
        )
        # An object is announced before what it does, and ends after it.
        news = [m for m in lifecycle if m["type"] == "new"]
        rest = [m for m in lifecycle if m["type"] != "new"]
        return FrameAnalytics(track_ids, news + messages + rest, self._trail(ids, boxes, ended),
                              _joined(self.tracker.held(), standing))  # fmt: skip

    def _standing_untracked(self, region_xyxy: tuple[int, int, int, int] | None) -> Tracks:
        """The untracked detections of earlier looks outside `region_xyxy` (none for a look at
        the whole frame)."""
        kept = self._untracked
        if region_xyxy is None:
            return _subset(kept, np.zeros(len(kept.ids), bool))
        return _subset(kept, ~centres_inside(kept.xyxy, region_xyxy))

    def hold(self, index: int, capture_s: float | None) -> tuple[Detections, FrameAnalytics]:
        """A frame the detector skipped (nothing moved): the tracks hold where they are and are
        reported as this frame's detections."""
        self.period.periods_since_last(index, capture_s)
        self.tracker.hold()
        held = _joined(self.tracker.held(), self._untracked)
        trails = {t: np.array(self._trails[t]) for t in held.ids.tolist() if t in self._trails}
        return _as_detections(held, self.class_names), FrameAnalytics(held.ids.copy(), [], trails)

    def _trail(self, ids: np.ndarray, boxes: np.ndarray, ended: list[int]) -> dict[int, np.ndarray]:
        for track_id in ended:
            self._trails.pop(track_id, None)
        for track_id, point in zip(ids.tolist(), anchor_points(boxes, "center").tolist(),
                                   strict=True):  # fmt: skip
            self._trails.setdefault(track_id, deque(maxlen=TRAIL_POINTS)).append(tuple(point))
        return {t: np.array(self._trails[t]) for t in ids.tolist()}

    def _name(self, class_id: int) -> str:
        return self.class_names[class_id] if 0 <= class_id < len(self.class_names) else (
            f"class{class_id}")  # fmt: skip

    def status(self) -> dict[str, Any]:
        """Counts for `/status`, metrics and the summary: confirmed tracks now, line crossings
        per class and direction, zone occupancy and entries per class."""
        lines: dict[str, dict[str, dict[str, int]]] = {}
        for line in self.lines:
            by_class = lines.setdefault(line.line.config.name, {})
            for (name, direction), n in sorted(line.counts.items()):
                by_class.setdefault(name, dict.fromkeys(DIRECTIONS, 0))[direction] = n
        return {
            "tracks": int(self.tracker.tracks().ids.size),
            "lines": lines,
            "zones": {z.zone.config.name: {"occupancy": dict(z.occupancy()),
                                           "entered": dict(z.entered_total)}
                      for z in self.zones},
        }  # fmt: skip
