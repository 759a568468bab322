"""Frame helpers the video-writing sinks share."""

from __future__ import annotations

import numpy as np


def fit_to_size(image_bgr: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """`image_bgr` scaled to `size_wh` where it differs: a stream keeps the size it started
    with (a camera may come back from a reconnect in another mode)."""
    import cv2

    if image_bgr.shape[1::-1] == size_wh:
        return image_bgr
    return cv2.resize(image_bgr, size_wh, interpolation=cv2.INTER_AREA)
