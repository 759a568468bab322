"""Shared by the metrics tests: a hand-moved clock and a stand-in `tegrastats` executable."""

import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake_tegrastats(tmp_path: Path) -> Callable[..., Path]:
    """`fake_tegrastats(lines, repeat=True)` writes `tmp_path/tegrastats`, a real executable that
    records its arguments (`args`) and pid (`pid`) beside itself and prints `lines` 10 ms apart,
    forever when `repeat`, as the real one prints a sample per interval."""

    def write(lines: list[str], repeat: bool = True) -> Path:
        script = tmp_path / "tegrastats"
        body = "".join(f"printf '%s\\n' '{line}'\n  sleep 0.01\n  " for line in lines)
        loop = "while true; do\n  " if repeat else "for _ in 1; do\n  "
        script.write_text(
            f'#!/bin/sh\necho "$@" > "{tmp_path}/args"\necho $$ > "{tmp_path}/pid"\n'
            f"{loop}{body}\ndone\n"
        )
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
        return script

    return write


@pytest.fixture
def wait_until() -> Callable[[Callable[[], bool]], None]:
    """`wait_until(condition)`: poll until it holds; fail after 10 s."""

    def wait(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.01)

    return wait
