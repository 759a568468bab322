"""Shared fixtures, and the `jetson`/`gpu` markers: such tests run only with `--run-device` on a
machine that has TensorRT (jetson) or a CUDA GPU (gpu), and skip with the reason elsewhere."""

from __future__ import annotations

import importlib.util

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-device",
        action="store_true",
        help="run the tests marked jetson/gpu (make test-jetson on a device)",
    )


def _tensorrt_missing() -> str | None:
    if importlib.util.find_spec("tensorrt") is None:
        return "TensorRT is not installed here"
    import tensorrt

    if not hasattr(tensorrt, "Builder"):
        return "only TensorRT type stubs are installed here, not TensorRT"
    return None


def _cuda_missing() -> str | None:
    for module in ("pycuda", "cuda"):
        if importlib.util.find_spec(module) is not None:
            return None
    return "neither pycuda nor cuda-python is installed (no CUDA here)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run_device = config.getoption("--run-device")
    for item in items:
        reasons = []
        if "jetson" in item.keywords:
            reasons += [r for r in (_tensorrt_missing(), _cuda_missing()) if r]
        if "gpu" in item.keywords:
            reasons += [r for r in (_cuda_missing(),) if r]
        if ("jetson" in item.keywords or "gpu" in item.keywords) and not run_device:
            reasons.append("device test: run with `make test-jetson` (pytest --run-device)")
        if reasons:
            item.add_marker(pytest.mark.skip(reason="; ".join(reasons)))
