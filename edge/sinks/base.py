"""What every sink receives (`Result`: a frame with its detections) and the one interface every
sink implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from edge.detector import Detections
from edge.sources.base import Frame


@dataclass(frozen=True)
class Result:
    """One frame's detections and when they were delivered (`time.time()`), with the frame."""

    frame: Frame
    detections: Detections
    delivered_unix_s: float

    @property
    def latency_ms(self) -> float:
        return (self.delivered_unix_s - self.frame.capture_unix_s) * 1e3

    def to_dict(self) -> dict[str, Any]:
        return {
            "stream": self.frame.stream_id,
            "frame": self.frame.index,
            "capture_unix_s": round(self.frame.capture_unix_s, 6),
            "delivered_unix_s": round(self.delivered_unix_s, 6),
            "latency_ms": round(self.latency_ms, 3),
            "size_wh": [self.frame.image_bgr.shape[1], self.frame.image_bgr.shape[0]],
            "detections": self.detections.to_list(),
        }

    def annotated_bgr(self) -> np.ndarray:
        """A copy of the frame with the detections drawn on it."""
        from edge.draw import annotate

        found = self.detections
        return annotate(
            self.frame.image_bgr, found.xyxy, found.scores, found.names, found.class_ids
        )


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
