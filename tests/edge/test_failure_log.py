"""A failure on every frame makes a line per interval, not a line per frame."""

from __future__ import annotations

from edge.failure_log import FailureLog


class Clock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def test_the_first_failure_in_full_then_a_count_per_interval_then_the_rest_at_the_end():
    lines: list[str] = []
    clock = Clock()
    failures = FailureLog(lines.append, interval_s=10.0, clock=clock)
    for frame in range(121):  # 30 frames/s for 4 s
        clock.now_s = 100.0 + frame / 30
        failures.failed("sink jsonl:///x", f"disk full ({frame})")
    assert lines == ["sink jsonl:///x: disk full (0)"]
    clock.now_s = 111.0
    failures.failed("sink jsonl:///x", "disk full (121)")
    assert lines[1:] == [
        "sink jsonl:///x: 121 more failures in the last 11 s, the latest: disk full (121)"
    ]
    failures.failed("sink jsonl:///x", "disk full (122)")
    failures.flush()
    assert lines[2:] == ["sink jsonl:///x: 1 more failure, the latest: disk full (122)"]
    failures.flush()
    assert len(lines) == 3


def test_each_key_has_its_own_first_line():
    lines: list[str] = []
    failures = FailureLog(lines.append, clock=Clock())
    failures.failed("s0", "a.png cannot be read")
    failures.failed("sink mqtt://b/t", "refused")
    failures.failed("s0", "c.png cannot be read")
    failures.flush()
    assert lines == [
        "s0: a.png cannot be read",
        "sink mqtt://b/t: refused",
        "s0: 1 more failure, the latest: c.png cannot be read",
    ]
