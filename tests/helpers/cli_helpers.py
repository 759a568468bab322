"""Running the installed `jetkit` console script the way a user does, and checking that a user
mistake comes back as one line `jetkit: error: …` with exit status 2 and no traceback."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path


def jetkit(*args, cwd=None, timeout=240, env=None):
    script = Path(sys.executable).with_name("jetkit")
    return subprocess.run(
        [script, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env=env,
    )


def assert_user_error(result, *fragments, progress=False):
    """Exit 2, no traceback, and the error as one line (the last, after the progress lines of
    a command that shows its steps, with `progress`)."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert progress or len(lines) == 1, result.stderr
    assert lines[-1].startswith("jetkit: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]


def popen_interruptible(args, **kwargs) -> subprocess.Popen:
    """`subprocess.Popen` for a command the test will Ctrl-C: SIGINT back to its default in the
    child, as in a terminal. A test run started as a background job (`cmd &`) has SIGINT
    ignored, the child inherits that, and Python then never raises KeyboardInterrupt."""
    return subprocess.Popen(
        args, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kwargs
    )
