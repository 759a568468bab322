"""A real video file for the file-source tests: MJPG frames in an AVI, written with OpenCV,
under a name with a space and a quote so that pipeline quoting is exercised too."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from edge.sources.synthetic import gradient_frame

CLIP_SIZE_WH = (160, 120)
CLIP_FRAMES = 12


@pytest.fixture(scope="session")
def clip_frames() -> list[np.ndarray]:
    # 8 gradient steps apart: 32 levels a frame, far more than MJPG's error.
    return [gradient_frame(CLIP_SIZE_WH, 8 * k) for k in range(CLIP_FRAMES)]


@pytest.fixture(scope="session")
def clip_path(tmp_path_factory: pytest.TempPathFactory, clip_frames: list[np.ndarray]):
    import cv2

    path = tmp_path_factory.mktemp("clips") / 'my "clip" 1.avi'
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 25.0, CLIP_SIZE_WH)
    for frame in clip_frames:
        writer.write(frame)
    writer.release()
    return path


def read_all(source) -> list[np.ndarray]:
    """Every frame of an opened finite source, then closes it."""
    frames = []
    while (image := source.read()) is not None:
        frames.append(image)
    source.close()
    return frames


def assert_same_clip(frames: list[np.ndarray], expected: list[np.ndarray]) -> None:
    assert len(frames) == len(expected)
    for image, want in zip(frames, expected, strict=True):
        assert image.shape == want.shape and image.dtype == np.uint8
        # MJPG at OpenCV's default quality stays within a few levels on smooth ramps.
        assert np.abs(image.astype(int) - want).mean() < 6


def close_during_read(source, settle_s: float = 0.1) -> tuple[list, float]:
    """Closes `source` from this thread while another blocks in read(): what that read returned,
    and how long it took to return after close()."""
    results: list = []
    reader = threading.Thread(target=lambda: results.append(source.read()))
    reader.start()
    time.sleep(settle_s)
    start_s = time.monotonic()
    source.close()
    reader.join(timeout=2)
    return results, time.monotonic() - start_s
