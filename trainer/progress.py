"""A one-line progress bar on stderr: redrawn in place on a terminal, one line per finished
epoch otherwise (CI logs stay readable)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    def __init__(self, total: int, prefix: str, stream: TextIO | None = None, width: int = 24):
        self.total = max(1, total)
        self.prefix = prefix
        self.stream = stream or sys.stderr
        self.width = width
        self.started = time.perf_counter()
        self.interactive = self.stream.isatty()
        self._last_draw = 0.0

    def line(self, done: int, status: str) -> str:
        filled = int(self.width * done / self.total)
        bar = "=" * filled + (">" if filled < self.width else "") + " " * (self.width - filled - 1)
        elapsed = time.perf_counter() - self.started
        return f"{self.prefix} {done}/{self.total} [{bar[: self.width]}] {status} {elapsed:.0f}s"

    def update(self, done: int, status: str = "") -> None:
        now = time.perf_counter()
        if self.interactive and (now - self._last_draw > 0.2 or done >= self.total):
            self.stream.write("\r" + self.line(done, status) + "\x1b[K")
            self.stream.flush()
            self._last_draw = now

    def close(self, done: int, status: str = "") -> None:
        prefix = "\r" if self.interactive else ""
        self.stream.write(
            prefix + self.line(done, status) + ("\x1b[K\n" if self.interactive else "\n")
        )
        self.stream.flush()
