"""Where results go: one small interface (`write(result)`, `close()`) and one class per URI
scheme. `jsonl://PATH` (or `-`, stdout): one JSON object per frame, the detections as
`jetkit detect --json` writes them.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import urlsplit

from edge.detector import Detections
from edge.errors import JetkitError
from edge.sources.base import Frame

SINK_SCHEMES = ("jsonl",)


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


class Sink(Protocol):
    uri: str

    def write(self, result: Result) -> None: ...

    def close(self) -> None: ...


class JsonlSink:
    """JSON lines to a file (created or appended to) or to stdout (`-`), flushed per line so a
    reader following the file or pipe sees each frame as it is delivered."""

    def __init__(self, uri: str, target: str) -> None:
        self.uri = uri
        self._path = None if target == "-" else Path(target)
        self._handle: IO[str] | None = None

    def open(self) -> None:
        if self._path is None:
            self._handle = sys.stdout
            return
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self._path, "a", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise JetkitError(
                f"sink {self.uri}: cannot write {self._path} ({exc.strerror}); choose a writable "
                "path"
            ) from None

    def write(self, result: Result) -> None:
        assert self._handle is not None, "open() the sink first"
        self._handle.write(json.dumps(result.to_dict(), separators=(",", ":")) + "\n")
        self._handle.flush()

    def close(self) -> None:
        if self._handle is not None and self._handle is not sys.stdout:
            self._handle.close()
        self._handle = None


def open_sink(uri: str) -> Sink:
    """A sink for `uri`, opened: `jsonl://PATH`, `jsonl://-` or a bare `-` (stdout)."""
    if uri == "-":
        uri = "jsonl://-"
    parts = urlsplit(uri)
    if parts.scheme not in SINK_SCHEMES:
        raise JetkitError(
            f"sink {uri!r}: unknown scheme {parts.scheme or '(none)'!r}; use one of "
            + ", ".join(f"{s}://" for s in SINK_SCHEMES)
        )
    target = uri.split("://", 1)[1]
    if not target:
        raise JetkitError(f"sink {uri!r} names no file; write jsonl://PATH or jsonl://-")
    sink = JsonlSink(uri, target)
    sink.open()
    return sink
