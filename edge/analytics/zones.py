"""Zones (polygons: enter, exit, dwell per track) and directed lines (crossings per class and
direction), from tracked boxes.

Shapes are given in frame pixels or, when every coordinate is within [0, 1], in fractions of the
frame (so one config serves cameras of any resolution); `resolve(size_wh)` turns them into pixels
and checks them against the frame.

A track is at the point `anchor` of its box (`bottom_center` by default: where a person or a car
meets the ground). The double and missed counts users of other counters report come from a track
whose point sits on the line and jitters across it, or that is lost for a few frames while it
crosses. Here a track's side of a line changes only once its point is `band_px` or more from the
line (jitter inside the band counts nothing), and a crossing is the segment from the last point
where the side was settled to the new settled point intersecting the line: a track lost on one
side and found on the other counts once; one that comes back to the side it left counts nothing.
A track seen first beyond the line has no side to come from and counts nothing, so an identity
switch does not count twice.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.errors import JetkitError

ANCHORS = ("bottom_center", "center", "top_center")
DIRECTIONS = ("in", "out")
# Half-width of the band around a line in which a track's side does not change, as a fraction of
# the frame's diagonal when not given: 1% is 15 px at 1080p, beyond box jitter at that size.
DEFAULT_BAND_FRACTION = 0.01

Point = tuple[float, float]


def _points(value: Any, key: str, least: int) -> tuple[Point, ...]:
    try:
        points = tuple((float(x), float(y)) for x, y in value)
    except (TypeError, ValueError):
        raise JetkitError(f"{key} must be a list of [x, y] points, got {value!r}") from None
    if len(points) < least:
        raise JetkitError(f"{key} needs at least {least} points, got {len(points)}")
    if not all(np.isfinite(points).all(axis=1)):
        raise JetkitError(f"{key} has a coordinate that is not a finite number")
    return points


def _in_pixels(points: tuple[Point, ...], size_wh: tuple[int, int], key: str) -> np.ndarray:
    """Fractions (every coordinate within [0, 1]) scaled to the frame, or pixels checked
    against it."""
    array = np.array(points, dtype=float)
    width, height = size_wh
    if (array >= 0).all() and (array <= 1).all():
        return array * (width, height)
    if (array < 0).any() or (array[:, 0] > width).any() or (array[:, 1] > height).any():
        raise JetkitError(
            f"{key} {[list(p) for p in points]} reaches outside the {width}x{height} frame; give "
            "pixels inside it, or fractions of it (every coordinate within [0, 1])"
        )
    return array


def _polygon_area(points: np.ndarray) -> float:
    """`(N,2)` vertices → the enclosed area (shoelace), in their units squared."""
    x, y = points.T
    return float(abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))) / 2)


def anchor_points(xyxy: np.ndarray, anchor: str) -> np.ndarray:
    """`(N,4)` boxes → `(N,2)` points."""
    x0, y0, x1, y1 = xyxy.T
    y = {"bottom_center": y1, "center": (y0 + y1) / 2, "top_center": y0}[anchor]
    return np.stack(((x0 + x1) / 2, y), axis=1)


def _check_anchor(anchor: str, key: str) -> None:
    if anchor not in ANCHORS:
        raise JetkitError(f"{key}.anchor {anchor!r} is not one of {', '.join(ANCHORS)}")


def check_classes(classes: tuple[str, ...] | None, known: tuple[str, ...], key: str) -> None:
    """Raises when `classes` (a filter; None: all) names a class not in `known`."""
    unknown = sorted(set(classes or ()) - set(known))
    if unknown:
        raise JetkitError(
            f"{key}.classes names {', '.join(unknown)}, which the model does not detect; its "
            f"classes are {', '.join(known)}"
        )


@dataclass(frozen=True)
class LineConfig:
    """A directed line from `points[0]` to `points[1]`. Crossing it to the left (seen walking
    from the first point to the second) is `in`, to the right `out`."""

    name: str
    points: tuple[Point, ...]
    classes: tuple[str, ...] | None = None
    anchor: str = "bottom_center"
    band_px: float | None = None

    def __post_init__(self) -> None:
        key = f"lines.{self.name}"
        object.__setattr__(self, "points", _points(self.points, f"{key}.points", 2))
        if len(self.points) != 2:
            raise JetkitError(f"{key}.points must be 2 points, got {len(self.points)}")
        if self.points[0] == self.points[1]:
            raise JetkitError(f"{key}.points are the same point: a line needs a length")
        _check_anchor(self.anchor, key)
        if self.band_px is not None and not self.band_px >= 0:
            raise JetkitError(f"{key}.band_px must be >= 0, got {self.band_px}")

    def resolve(self, size_wh: tuple[int, int], known: tuple[str, ...]) -> ResolvedLine:
        key = f"lines.{self.name}"
        start, end = _in_pixels(self.points, size_wh, f"{key}.points")
        if np.hypot(*(end - start)) < 1:
            raise JetkitError(f"{key}.points are the same point: a line needs a length")
        check_classes(self.classes, known, key)
        band = self.band_px
        if band is None:
            band = DEFAULT_BAND_FRACTION * float(np.hypot(*size_wh))
        return ResolvedLine(self, start, end, band)


@dataclass(frozen=True)
class ResolvedLine:
    config: LineConfig
    start: np.ndarray
    end: np.ndarray
    band_px: float

    def signed_distance(self, points: np.ndarray) -> np.ndarray:
        """`(N,2)` points → `(N,)` pixels from the (infinite) line, positive on its left."""
        direction = self.end - self.start
        offset = points - self.start
        # Image y grows downwards, so the left of the direction is the negative cross product.
        cross = direction[0] * offset[:, 1] - direction[1] * offset[:, 0]
        return -cross / np.hypot(*direction)

    def crosses_segment(self, a: np.ndarray, b: np.ndarray) -> bool:
        """Whether the segment from point `a` to `b` meets the line's segment."""

        def orient(p: np.ndarray, q: np.ndarray, r: np.ndarray) -> float:
            return float((q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0]))

        d1, d2 = orient(a, b, self.start), orient(a, b, self.end)
        d3, d4 = orient(self.start, self.end, a), orient(self.start, self.end, b)
        return d1 * d2 <= 0 and d3 * d4 <= 0


@dataclass
class _LineTrack:
    side: int  # +1 left, -1 right
    point: np.ndarray  # where the side was last settled


@dataclass
class LineCounter:
    """Crossings of one line: `update` per frame → the crossings it saw; `counts[(class,
    direction)]` since start."""

    line: ResolvedLine
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    _tracks: dict[int, _LineTrack] = field(default_factory=dict)

    def update(
        self, track_ids: np.ndarray, xyxy: np.ndarray, class_names: list[str]
    ) -> list[tuple[int, str, str]]:
        """This frame's tracks (`track_ids (T,)`, `xyxy (T,4)`, their class names) →
        `(track_id, class, direction)` for each crossing completed now."""
        config = self.line.config
        points = anchor_points(xyxy, config.anchor)
        distances = self.line.signed_distance(points)
        crossings = []
        for track_id, point, distance, name in zip(
            track_ids.tolist(), points, distances.tolist(), class_names, strict=True
        ):
            if abs(distance) < self.line.band_px:
                continue  # on the line: nothing settles
            side = 1 if distance > 0 else -1
            known = self._tracks.get(track_id)
            if known is not None and known.side != side:
                if self.line.crosses_segment(known.point, point) and (
                    config.classes is None or name in config.classes
                ):
                    direction = "in" if side > 0 else "out"
                    self.counts[(name, direction)] += 1
                    crossings.append((track_id, name, direction))
            self._tracks[track_id] = _LineTrack(side, point)
        return crossings

    def forget(self, track_ids: list[int]) -> None:
        """Tracks that ended."""
        for track_id in track_ids:
            self._tracks.pop(track_id, None)


@dataclass(frozen=True)
class ZoneConfig:
    """A polygon of at least 3 points; `classes`: only these count (None: all)."""

    name: str
    points: tuple[Point, ...]
    classes: tuple[str, ...] | None = None
    anchor: str = "bottom_center"

    def __post_init__(self) -> None:
        key = f"zones.{self.name}"
        object.__setattr__(self, "points", _points(self.points, f"{key}.points", 3))
        _check_anchor(self.anchor, key)
        if _polygon_area(np.array(self.points)) == 0:  # in any units: no frame size needed
            raise JetkitError(f"{key}.points enclose no area: the polygon is degenerate")

    def resolve(self, size_wh: tuple[int, int], known: tuple[str, ...]) -> ResolvedZone:
        key = f"zones.{self.name}"
        polygon = _in_pixels(self.points, size_wh, f"{key}.points")
        if _polygon_area(polygon) < 1:
            raise JetkitError(f"{key}.points enclose no area: the polygon is degenerate")
        check_classes(self.classes, known, key)
        return ResolvedZone(self, polygon)


@dataclass(frozen=True)
class ResolvedZone:
    config: ZoneConfig
    polygon: np.ndarray

    def contains(self, points: np.ndarray) -> np.ndarray:
        """`(N,2)` points → `(N,)` bool, by the even-odd rule (points on an edge may go
        either way)."""
        x, y = points[:, 0:1], points[:, 1:2]
        x0, y0 = self.polygon[:, 0], self.polygon[:, 1]
        x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
        straddles = (y0 > y) != (y1 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cross = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        return ((straddles & (x < x_cross)).sum(axis=1) % 2) == 1


@dataclass
class ZoneCounter:
    """Who is in one zone: `update` per frame → enter and exit events (an exit carries the
    dwell in seconds); `occupancy()` by class now."""

    zone: ResolvedZone
    entered_total: Counter[str] = field(default_factory=Counter)
    _inside: dict[int, tuple[str, float]] = field(default_factory=dict)  # id → (class, since)

    def update(
        self, track_ids: np.ndarray, xyxy: np.ndarray, class_names: list[str], time_s: float
    ) -> list[dict[str, Any]]:
        config = self.zone.config
        inside = self.zone.contains(anchor_points(xyxy, config.anchor))
        events = []
        for track_id, is_in, name in zip(track_ids.tolist(), inside.tolist(), class_names,
                                         strict=True):  # fmt: skip
            if config.classes is not None and name not in config.classes:
                continue
            was_in = track_id in self._inside
            if is_in and not was_in:
                self._inside[track_id] = (name, time_s)
                self.entered_total[name] += 1
                events.append({"type": "enter", "track_id": track_id, "class": name})
            elif was_in and not is_in:
                events.append(self._exit(track_id, time_s, "left"))
        return events

    def forget(self, track_ids: list[int], time_s: float) -> list[dict[str, Any]]:
        """Tracks that ended: those inside leave (`reason` "lost")."""
        return [self._exit(t, time_s, "lost") for t in track_ids if t in self._inside]

    def occupancy(self) -> Counter[str]:
        return Counter(name for name, _ in self._inside.values())

    def inside(self) -> dict[int, tuple[str, float]]:
        """Track id → (class, entered at) of every track in the zone now."""
        return dict(self._inside)

    def _exit(self, track_id: int, time_s: float, reason: str) -> dict[str, Any]:
        name, since = self._inside.pop(track_id)
        return {"type": "exit", "track_id": track_id, "class": name,
                "dwell_s": round(time_s - since, 3), "reason": reason}  # fmt: skip
