"""Slow sink work (video encoding) on its own thread, so that `write()` only enqueues."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")


class BackgroundWorker(Generic[Item]):
    """Calls `handle(item)` for each item, in order, on one thread, so that the caller's next
    item overlaps the work on this one. With `depth` items waiting, `put()` waits for room (the
    caller slows to the worker's pace rather than losing items) up to `max_wait_s`, then drops
    the item and counts it: a hung disk must not stall the caller for good. An exception from
    `handle` is raised from the next `put()` (the pipeline counts it as a sink error)."""

    def __init__(
        self, handle: Callable[[Item], None], depth: int, max_wait_s: float, name: str
    ) -> None:
        self.dropped = 0
        self._handle = handle
        self._max_wait_s = max_wait_s
        self._queue: queue.Queue[tuple[Item] | None] = queue.Queue(maxsize=depth)
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, item: Item) -> None:
        try:
            self._queue.put((item,), timeout=self._max_wait_s)
        except queue.Full:
            self.dropped += 1
        error, self._error = self._error, None
        if error is not None:
            raise error

    def close(self) -> None:
        """Returns once every item put has been handled (at most `depth` of them)."""
        if not self._thread.is_alive():
            return
        self._queue.put(None)
        self._thread.join()
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _run(self) -> None:
        while (boxed := self._queue.get()) is not None:
            try:
                self._handle(boxed[0])
            except Exception as exc:  # reported to the writer by the next put()
                self._error = exc
