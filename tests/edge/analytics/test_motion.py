"""Motion gating on real frames: a still camera with sensor noise is skipped, one small moving box
is cropped (with the box inside the crop), a change over much of the frame runs it whole, and the
whole frame is looked at every `full_every_s` whatever moves."""

import numpy as np
import pytest

from edge.analytics.motion import CROP, FULL, SKIP, MotionConfig, MotionGate
from edge.errors import JetkitError
from edge.samples import draw_blob_scene

SIZE_WH = (1280, 720)


def frame(k, box_x=None, noise_seed=None):
    boxes = {} if box_x is None else {"red": (box_x, 300, box_x + 80, 380)}
    image = draw_blob_scene(SIZE_WH, boxes, seed=3).astype(np.int16)
    noise = np.random.default_rng(k if noise_seed is None else noise_seed).normal(0, 4, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def test_a_still_camera_is_skipped_between_full_looks():
    gate = MotionGate(MotionConfig(full_every_s=2.0))
    kinds = [gate.decide(frame(k), k / 10).kind for k in range(30)]  # 3 s at 10 fps
    assert kinds[0] == FULL and kinds[20] == FULL  # the first frame, then every 2 s
    assert kinds.count(FULL) == 2 and kinds.count(SKIP) == 28


def test_a_small_moving_box_is_cropped_around_it():
    gate = MotionGate(MotionConfig(full_every_s=100.0))
    gate.decide(frame(0), 0.0)
    for k in range(1, 6):
        x = 200 + 15 * k
        decision = gate.decide(frame(k, box_x=x), k / 10)
        assert decision.kind == CROP, k
        x0, y0, x1, y1 = decision.xyxy
        assert x0 <= x and x + 80 <= x1 and y0 <= 300 and 380 <= y1
        assert (x1 - x0) * (y1 - y0) < 0.1 * SIZE_WH[0] * SIZE_WH[1]


def test_a_change_over_much_of_the_frame_runs_it_whole():
    gate = MotionGate(MotionConfig(full_every_s=100.0))
    gate.decide(frame(0), 0.0)
    darker = (frame(1).astype(np.int16) - 60).clip(0, 255).astype(np.uint8)  # lights off
    decision = gate.decide(darker, 0.1)
    assert decision.kind == FULL and decision.changed > 0.5


def test_bad_settings_name_their_key():
    with pytest.raises(JetkitError, match=r"motion\.alpha"):
        MotionConfig(alpha=0)
