"""Failures that repeat (a sink on a full disk fails on every frame, a folder of corrupt stills
on every read) logged without drowning the log: the first in full, then how many more came, at
most once per interval, and what is left at the end."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

Log = Callable[[str], None]

# Often enough to show a failure goes on, rarely enough that a failure per frame stays readable.
REPORT_INTERVAL_S = 10.0


@dataclass
class _Run:
    reported_s: float
    unreported: int = 0
    latest: str = ""


class FailureLog:
    """Logs `key: message` for a key's first failure; after that, a line per `interval_s`
    counting the failures since the last line, with the latest message. Safe to call from
    several threads."""

    def __init__(
        self,
        log: Log,
        interval_s: float = REPORT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._interval_s = interval_s
        self._clock = clock
        self._runs: dict[str, _Run] = {}
        self._lock = threading.Lock()

    def failed(self, key: str, message: str) -> None:
        """One failure of `key` (what failed, e.g. `sink jsonl:///x`); `message` says how."""
        now_s = self._clock()
        with self._lock:
            run = self._runs.get(key)
            if run is None:
                self._runs[key] = _Run(now_s)
                line: str | None = f"{key}: {message}"
            else:
                run.unreported += 1
                run.latest = message
                line = None
                if now_s - run.reported_s >= self._interval_s:
                    line = _more(key, run, f" in the last {now_s - run.reported_s:.0f} s")
                    run.reported_s, run.unreported = now_s, 0
        if line is not None:
            self._log(line)

    def flush(self) -> None:
        """Log the failures not yet counted in a line (at the end of a run)."""
        with self._lock:
            lines = [_more(key, run, "") for key, run in self._runs.items() if run.unreported]
            for run in self._runs.values():
                run.unreported = 0
        for line in lines:
            self._log(line)


def _more(key: str, run: _Run, span: str) -> str:
    noun = "failure" if run.unreported == 1 else "failures"
    return f"{key}: {run.unreported} more {noun}{span}, the latest: {run.latest}"
