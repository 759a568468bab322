"""Starting the real `jetkit serve` the way systemd does, and finding where it listens."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def start_daemon(config: Path, env=None) -> tuple[subprocess.Popen, str, str]:
    """The daemon process, its URL (from its "HTTP on" line) and its log up to there."""
    script = Path(sys.executable).with_name("jetkit")
    process = subprocess.Popen(
        [script, "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    log = ""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "HTTP on" not in log:
        line = process.stderr.readline()
        if not line and process.poll() is not None:
            process.wait()
            raise AssertionError(f"the daemon exited at start-up:\n{log}")
        log += line
    url = re.search(r"http://[\d.]+:\d+", log.splitlines()[-1]).group(0)
    return process, url, log


@contextmanager
def serving(config: Path) -> Iterator[str]:
    """The daemon's URL while the block runs; then SIGTERM, which must end it with status 0 (it
    is killed if the block failed)."""
    process, url, _ = start_daemon(config)
    try:
        yield url
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
