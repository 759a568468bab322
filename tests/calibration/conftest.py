"""Calibration images shared by the tests of the tiny YOLO heads (`helpers.yolo_heads`)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def head_calibration(tmp_path_factory):
    """Eight 40×40 noise images: enough to calibrate a 32×32 head, whatever their content."""
    import cv2

    folder = tmp_path_factory.mktemp("head-calib")
    rng = np.random.default_rng(0)
    for i in range(8):
        cv2.imwrite(str(folder / f"{i}.png"), rng.integers(0, 255, (40, 40, 3), dtype=np.uint8))
    return sorted(folder.iterdir())
