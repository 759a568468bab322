"""What every source gives the pipeline: frames with their stream, index and capture time, and
one small interface to open, read and close."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One captured frame. `capture_monotonic_s` (time.monotonic) measures latency;
    `capture_unix_s` (time.time) is what results report. `image_bgr` is `(H, W, 3)` uint8."""

    stream_id: str
    index: int
    capture_monotonic_s: float
    capture_unix_s: float
    image_bgr: np.ndarray


class SourceError(Exception):
    """A source failed while running (camera unplugged, stream cut): the capture thread counts
    it, backs off and reopens a live source; a file source ends."""


class FrameError(SourceError):
    """One frame could not be had (a corrupt still among good ones) but the source goes on: the
    capture thread counts it as a bad frame and reads the next."""


class Source(Protocol):
    """A stream of BGR images.

    `open()` raises JetkitError when the source cannot exist (no such file, device or scheme),
    `SourceError` when it exists but fails now (refused connection). `read()` blocks until the
    next image and returns it, returns None at the end of a finite source, and raises
    `SourceError` on a failure (`FrameError` where only that frame is lost). `live` sources
    (cameras, network streams, `test://`) produce at their own pace whether or not anyone reads;
    others wait for the reader. `close()` is safe to call twice and from another thread while
    `read()` blocks; `open()` after `close()` starts the source again (ReconnectingSource relies
    on it).
    """

    uri: str
    live: bool

    def open(self) -> None: ...

    def read(self) -> np.ndarray | None: ...

    def close(self) -> None: ...
