"""Motion gating on real frames: a still camera with sensor noise is skipped, one small moving box
is cropped (with the box inside the crop), a change over much of the frame runs it whole, and the
whole frame is looked at every `full_every_s` whatever moves."""

import numpy as np
import pytest

from edge.analytics.motion import CROP, FULL, SKIP, MotionConfig, MotionGate, grow_to
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


def test_a_crop_is_at_least_the_models_input_so_nothing_is_enlarged_to_fill_it():
    """Frigate's rule for regions: the moving box (about 110x110 with its margin) grows to the
    model's 320x320 input about its centre; near the edge it slides inside the frame."""
    gate = MotionGate(MotionConfig(full_every_s=100.0), min_crop_wh=(320, 320))
    gate.decide(frame(0), 0.0)
    decision = gate.decide(frame(1, box_x=600), 0.1)
    x0, y0, x1, y1 = decision.xyxy
    assert decision.kind == CROP and (x1 - x0, y1 - y0) == (320, 320)
    assert x0 <= 600 and 680 <= x1 and y0 <= 300 and 380 <= y1
    assert grow_to((0, 700, 40, 720), (320, 320), SIZE_WH) == (0, 400, 320, 720)
    assert grow_to((100, 100, 500, 140), (320, 320), SIZE_WH) == (100, 0, 500, 320)
    assert grow_to((10, 10, 20, 20), (2000, 100), SIZE_WH) == (0, 0, 1280, 100)
    # A model input a third of the frame or more: the crop would not save enough, look whole.
    big = MotionGate(MotionConfig(full_every_s=100.0), min_crop_wh=(800, 640))
    big.decide(frame(0), 0.0)
    assert big.decide(frame(1, box_x=600), 0.1).kind == FULL


def test_an_object_that_stops_is_skipped_from_the_next_frame_on():
    """The gate compares with what the detector last saw: once the box stands still there is
    nothing new to look at (a running-average background would see its ghost for many frames);
    a box creeping 2 px a frame adds up until it counts."""
    gate = MotionGate(MotionConfig(full_every_s=100.0))
    gate.decide(frame(0, box_x=200), 0.0)
    kinds = [gate.decide(frame(k, box_x=200 + 15 * min(k, 5)), k / 10).kind for k in range(1, 12)]
    assert kinds[:5] == [CROP] * 5 and kinds[5:] == [SKIP] * 6
    creeping = [gate.decide(frame(k, box_x=275 + 2 * (k - 11)), k / 10).kind
                for k in range(12, 30)]  # fmt: skip
    assert creeping[0] == SKIP and CROP in creeping


def test_a_change_over_much_of_the_frame_runs_it_whole():
    gate = MotionGate(MotionConfig(full_every_s=100.0))
    gate.decide(frame(0), 0.0)
    darker = (frame(1).astype(np.int16) - 60).clip(0, 255).astype(np.uint8)  # lights off
    decision = gate.decide(darker, 0.1)
    assert decision.kind == FULL and decision.changed > 0.5


def test_bad_settings_name_their_key():
    with pytest.raises(JetkitError, match=r"motion\.full_every_s"):
        MotionConfig(full_every_s=0)
