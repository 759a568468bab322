"""Live sources that fail come back after growing waits; close() is honoured at any moment."""

import time

import numpy as np
import pytest

from edge.errors import JetkitError
from edge.sources.base import SourceError
from edge.sources.reconnect import Backoff, ReconnectingSource

from .conftest import close_during_read

FRAME = np.zeros((4, 4, 3), np.uint8)


class FlakySource:
    """A real live source whose reads fail `read_failures` times and whose reopens fail
    `reopen_failures` times (the device gone, then back) before it works."""

    uri = "test://flaky"
    live = True

    def __init__(self, read_failures: int, reopen_failures: int = 0) -> None:
        self.read_failures = read_failures
        self.reopen_failures = reopen_failures
        self.opens = 0
        self.closes = 0

    def open(self) -> None:
        self.opens += 1
        if self.opens > 1 and self.reopen_failures:
            self.reopen_failures -= 1
            raise JetkitError("no such device /dev/video0")

    def read(self) -> np.ndarray | None:
        if self.read_failures:
            self.read_failures -= 1
            raise SourceError("camera unplugged")
        return FRAME

    def close(self) -> None:
        self.closes += 1


def test_backoff_grows_to_its_cap():
    backoff = Backoff(initial_s=0.5, factor=2.0, cap_s=30.0)
    assert [backoff.delay_s(k) for k in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert backoff.delay_s(5000) == 30.0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"initial_s": 0}, "initial_s must be > 0"),
        ({"factor": 0.5}, "factor must be >= 1"),
        ({"initial_s": 2.0, "cap_s": 1.0}, "cap_s must be >= initial_s"),
    ],
)
def test_backoff_checks_its_fields(fields, message):
    with pytest.raises(JetkitError, match=message):
        Backoff(**fields)


def test_reconnects_after_failures_with_growing_waits():
    inner = FlakySource(read_failures=2, reopen_failures=1)
    heard: list[tuple[str, float]] = []
    source = ReconnectingSource(
        inner,
        Backoff(initial_s=0.01, factor=2.0, cap_s=1.0),
        lambda e, d: heard.append((str(e), d)),
    )
    source.open()
    start_s = time.monotonic()
    assert source.read() is FRAME
    assert time.monotonic() - start_s >= 0.065  # 0.01 + 0.02 + 0.04, less clock rounding
    assert heard == [
        ("camera unplugged", 0.01),
        ("no such device /dev/video0", 0.02),
        ("camera unplugged", 0.04),
    ]
    assert source.reconnects == 2 and str(source.last_error) == "camera unplugged"
    assert inner.opens == 4 and not source.in_backoff


def test_a_frame_resets_the_waits():
    inner = FlakySource(read_failures=1)
    heard: list[float] = []
    source = ReconnectingSource(inner, Backoff(initial_s=0.01), lambda e, d: heard.append(d))
    source.open()
    source.read()
    inner.read_failures = 1
    source.read()
    assert heard == [0.01, 0.01] and source.reconnects == 2


def test_the_first_open_raises_for_the_caller_to_report():
    class Missing(FlakySource):
        def open(self) -> None:
            raise JetkitError("no such device /dev/video9")

    with pytest.raises(JetkitError, match="/dev/video9"):
        ReconnectingSource(Missing(0)).open()


def test_close_during_the_wait_ends_the_read_promptly():
    inner = FlakySource(read_failures=1)
    heard: list[float] = []
    source = ReconnectingSource(inner, Backoff(initial_s=30.0), lambda e, d: heard.append(d))
    source.open()
    results, close_s = close_during_read(source)
    assert heard == [30.0] and results == [None] and close_s < 0.2
    assert source.read() is None and inner.opens == 1
