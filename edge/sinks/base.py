"""What every sink receives (`Result`: a frame with its detections) and the one interface every
sink implements."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from edge.detector import Detections
from edge.sources.base import Frame


@dataclass(frozen=True)
class Result:
    """One frame's detections and when they were delivered (`time.time()`), with the frame.
    With tracking: each detection's `track_ids (N,)` (-1: not tracked), the frame's analytics
    `events` (edge.analytics.events) and each track's recent `trails` (`(K,2)` points)."""

    frame: Frame
    detections: Detections
    delivered_unix_s: float
    track_ids: np.ndarray | None = None
    events: tuple[dict[str, Any], ...] = ()
    trails: Mapping[int, np.ndarray] = field(default_factory=dict)

    @property
    def latency_ms(self) -> float:
        return (self.delivered_unix_s - self.frame.capture_unix_s) * 1e3

    def to_dict(self) -> dict[str, Any]:
        detections = self.detections.to_list()
        if self.track_ids is not None:
            for row, track_id in zip(detections, self.track_ids.tolist(), strict=True):
                row["track_id"] = track_id
        record = {
            "stream": self.frame.stream_id,
            "frame": self.frame.index,
            "capture_unix_s": round(self.frame.capture_unix_s, 6),
            "delivered_unix_s": round(self.delivered_unix_s, 6),
            "latency_ms": round(self.latency_ms, 3),
            "size_wh": [self.frame.image_bgr.shape[1], self.frame.image_bgr.shape[0]],
            "detections": detections,
        }
        if self.events:
            record["events"] = list(self.events)
        return record

    def annotated_bgr(self) -> np.ndarray:
        """A copy of the frame with the detections (and tracks, with their trails) drawn on it."""
        from edge.draw import annotate, draw_trails

        found = self.detections
        labels = found.names
        if self.track_ids is not None:
            labels = [f"{name} #{t}" if t > 0 else name
                      for name, t in zip(labels, self.track_ids.tolist(), strict=True)]  # fmt: skip
        canvas = annotate(self.frame.image_bgr, found.xyxy, found.scores, labels, found.class_ids)
        return draw_trails(canvas, self.trails) if self.trails else canvas


class SinkError(Exception):
    """A sink failed at run time (a stream cannot be encoded, a GStreamer element failed): the
    pipeline counts it as a sink error and goes on."""


class Sink(Protocol):
    """`write()` is called from the pipeline's sink thread for every result and must return
    quickly whatever happens downstream (a slow network, a full disk): inference waits on it.
    An exception from `write()` is counted as a sink error and the pipeline goes on. `close()`
    flushes what is pending, within a bounded time. `uri` names the sink in messages and metric
    labels, its credentials masked (`edge.redact`)."""

    uri: str

    def write(self, result: Result) -> None: ...

    def close(self) -> None: ...
