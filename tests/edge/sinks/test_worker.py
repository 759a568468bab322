"""The background worker: work in order off the caller's thread, back-pressure then a counted
drop when the worker is stuck, and the worker's errors raised to the caller."""

from __future__ import annotations

import threading

import pytest

from edge.sinks.worker import BackgroundWorker


def test_items_are_handled_in_order_and_close_waits_for_them():
    handled: list[int] = []
    worker = BackgroundWorker(handled.append, depth=2, max_wait_s=10.0, name="test")
    for item in range(20):
        worker.put(item)
    worker.close()
    assert handled == list(range(20)) and worker.dropped == 0


def test_a_stuck_worker_costs_items_not_the_caller():
    started, release = threading.Event(), threading.Event()

    def stuck(item: int) -> None:
        started.set()
        release.wait()

    worker = BackgroundWorker(stuck, depth=1, max_wait_s=0.01, name="test")
    worker.put(0)
    started.wait()
    for item in range(1, 4):
        worker.put(item)  # the first waits in the queue, the rest find no room
    assert worker.dropped == 2
    release.set()
    worker.close()


def test_an_error_in_the_worker_is_raised_by_a_later_put():
    def handle(item: int) -> None:
        if item == 0:
            raise OSError("disk full")

    worker = BackgroundWorker(handle, depth=1, max_wait_s=10.0, name="test")
    worker.put(0)
    with pytest.raises(OSError, match="disk full"):
        worker.put(1)  # room for 1 only once 0 was handled
        worker.put(2)
    worker.close()
