"""The plain `pytest` a developer types collects the suite as `python -m pytest` does.

`python -m pytest` puts the working directory on sys.path and `pytest` does not: a test folder
named like a package (tests/edge) on sys.path would then shadow the real one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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


def _tensorrt_here() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorrt") is not None


def test_device_tests_fail_without_tensorrt_instead_of_skipping():
    """`--run-device` where TensorRT and CUDA are missing: an error naming them, not a green run
    of skipped tests."""
    if _tensorrt_here():
        pytest.skip("TensorRT is installed here: the device tests run")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "jetson", "--run-device",
         "tests/edge/backends/test_tensorrt.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 4, result.stdout + result.stderr
    assert "--run-device: TensorRT is not installed here" in result.stderr
    assert "neither pycuda nor cuda-python" in result.stderr


def test_make_test_jetson_stops_naming_what_is_missing():
    if _tensorrt_here():
        pytest.skip("TensorRT is installed here: make test-jetson runs the device tests")
    result = subprocess.run(
        ["make", "-s", "test-jetson", "JETSON_VENV=.venv-jetson-absent"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "jetkit: error: make test-jetson runs the TensorRT tests on a Jetson" in result.stderr
    assert "TensorRT's Python bindings do not import" in result.stderr
    assert not (ROOT / ".venv-jetson-absent").exists()  # nothing set up for nothing
