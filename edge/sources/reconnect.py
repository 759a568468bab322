"""Live sources that come back: after a failure, close, wait (exponential backoff with a cap),
reopen, and go on reading, without the reader seeing the failure."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edge.errors import JetkitError
from edge.sources.base import Source, SourceError


@dataclass(frozen=True)
class Backoff:
    """Failure k in a row waits `min(cap_s, initial_s * factor**k)` before the next open."""

    initial_s: float = 0.5
    factor: float = 2.0
    cap_s: float = 30.0

    def __post_init__(self) -> None:
        if not self.initial_s > 0:
            raise JetkitError(f"backoff initial_s must be > 0, got {self.initial_s:g}")
        if not self.factor >= 1:
            raise JetkitError(f"backoff factor must be >= 1, got {self.factor:g}")
        if not self.cap_s >= self.initial_s:
            raise JetkitError(
                f"backoff cap_s must be >= initial_s ({self.initial_s:g}), got {self.cap_s:g}"
            )

    def delay_s(self, attempt: int) -> float:
        """The wait after failure `attempt` (0 for the first) of a run of failures."""
        try:
            return min(self.cap_s, self.initial_s * self.factor**attempt)
        except OverflowError:
            return self.cap_s


ErrorCallback = Callable[[Exception, float], None]


class ReconnectingSource:
    """Wraps a live source. The first `open()` raises as the source does (a camera missing at
    start-up is the user's to fix); afterwards a SourceError from `read()` closes the source and
    retries `open()` after `backoff` (default `Backoff()`) delays, which grow while failures
    follow one another (a frame read resets them). Reopen failures, JetkitError included (an
    unplugged camera's device is gone until it is plugged back), are retried too. `read()`
    returns the next frame, None when the inner source ends or once closed, and never raises
    SourceError.

    `on_error(error, delay_s)` hears of each failure before its wait; `reconnects`, `last_error`
    and `in_backoff` (waiting or reopening now) are there for health checks and metrics.
    """

    def __init__(
        self, inner: Source, backoff: Backoff | None = None, on_error: ErrorCallback | None = None
    ) -> None:
        self.inner = inner
        self.uri = inner.uri
        self.live = inner.live
        self.backoff = backoff or Backoff()
        self.on_error = on_error
        self.reconnects = 0
        self.last_error: Exception | None = None
        self.in_backoff = False
        self._failures_in_row = 0
        self._closed = threading.Event()

    def open(self) -> None:
        self._closed.clear()
        self.inner.open()

    def read(self) -> np.ndarray | None:
        while not self._closed.is_set():
            try:
                image = self.inner.read()
            except SourceError as error:
                self._reopen_after(error)
                continue
            self._failures_in_row = 0
            return image
        # A reopen that finished after close() left the inner source running.
        self.inner.close()
        return None

    def close(self) -> None:
        self._closed.set()
        self.inner.close()

    def _reopen_after(self, error: Exception) -> None:
        """Back off and reopen until the inner source opens again or this one is closed."""
        self.in_backoff = True
        try:
            while True:
                self.inner.close()
                delay_s = self.backoff.delay_s(self._failures_in_row)
                self._failures_in_row += 1
                self.last_error = error
                if self.on_error is not None:
                    self.on_error(error, delay_s)
                if self._closed.wait(delay_s):
                    return
                try:
                    self.inner.open()
                except (SourceError, JetkitError) as reopen_error:
                    error = reopen_error
                    continue
                self.reconnects += 1
                return
        finally:
            self.in_backoff = False
