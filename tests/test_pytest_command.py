"""The plain `pytest` a developer types collects the suite as `python -m pytest` does.

`python -m pytest` puts the working directory on sys.path and `pytest` does not: a test folder
named like a package (tests/edge) on sys.path would then shadow the real one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_pytest_script_imports_the_real_packages_from_any_test_folder():
    pytest_script = Path(sys.executable).with_name("pytest")
    result = subprocess.run(
        [
            pytest_script,
            "--collect-only",
            "-q",
            "tests/edge/test_nms.py",
            "tests/calibration/test_gate.py",
            "tests/deploy/test_plan.py",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "error" not in result.stdout.lower(), result.stdout
    assert "tests collected" in result.stdout
