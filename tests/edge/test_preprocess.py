"""Letterbox geometry, the exact tensor values, and the inverse transform."""

import cv2
import numpy as np
import pytest

from edge.errors import JetkitError
from edge.manifest import PreprocessSpec
from edge.preprocess import Preprocessor, is_odd_integer_downscale, plan_placement, to_bgr


def reference_letterbox(frame, input_hw, spec):
    """The plain OpenCV path (Ultralytics LetterBox + blobFromImage-like normalisation)."""
    placement, _ = plan_placement((frame.shape[1], frame.shape[0]), input_hw, spec)
    (w, h), (left, top) = placement.size_wh, placement.offset_xy
    resized = cv2.resize(frame, (w, h), interpolation=cv2.INTER_LINEAR)
    padded = cv2.copyMakeBorder(
        resized,
        top,
        input_hw[0] - h - top,
        left,
        input_hw[1] - w - left,
        cv2.BORDER_CONSTANT,
        value=(spec.pad_value,) * 3,
    )
    if spec.color == "RGB":
        padded = padded[..., ::-1]
    x = padded.transpose(2, 0, 1).astype(np.float32)
    mean = np.asarray(spec.mean, np.float32)[:, None, None]
    std = np.asarray(spec.std, np.float32)[:, None, None]
    return (x * np.float32(spec.scale) - mean) / std


@pytest.mark.parametrize("size_wh", [(1920, 1080), (1080, 1920), (640, 640), (333, 517)])
@pytest.mark.parametrize(
    "spec",
    [
        PreprocessSpec(),
        PreprocessSpec(pad_position="top_left", color="BGR", scale=1.0),
        PreprocessSpec(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
        PreprocessSpec(resize="stretch"),
    ],
    ids=["ultralytics", "yolox", "imagenet", "stretch"],
)
def test_tensor_equals_the_plain_opencv_path(size_wh, spec):
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (size_wh[1], size_wh[0], 3), dtype=np.uint8)
    tensor, _ = Preprocessor(spec, (640, 640))([frame])
    np.testing.assert_array_equal(tensor[0], reference_letterbox(frame, (640, 640), spec))


def test_ultralytics_geometry_for_full_hd():
    placement, transform = plan_placement((1920, 1080), (640, 640), PreprocessSpec())
    assert placement.size_wh == (640, 360) and placement.offset_xy == (0, 140)
    assert transform.scale_xy == (1 / 3, 1 / 3)


def test_inverse_transform_round_trips_boxes():
    _, transform = plan_placement((1280, 720), (320, 320), PreprocessSpec())
    boxes = np.array([[100, 96, 420, 336], [0, 0, 1280, 720]], np.float32)
    np.testing.assert_allclose(transform.to_frame(transform.to_input(boxes)), boxes, atol=1e-3)


def test_inverse_transform_clips_to_the_frame():
    _, transform = plan_placement((1280, 720), (320, 320), PreprocessSpec())
    inside_pad = np.array([[0, 0, 320, 320]], np.float32)  # the whole input, padding included
    np.testing.assert_allclose(transform.to_frame(inside_pad), [[0, 0, 1280, 720]])


def test_buffer_is_reused_and_padding_follows_geometry_changes():
    pre = Preprocessor(PreprocessSpec(), (64, 64), max_batch=2)
    wide = np.full((32, 64, 3), 255, np.uint8)
    tall = np.full((64, 32, 3), 255, np.uint8)
    first, _ = pre([wide, tall])
    pad = np.float32(114) * np.float32(1 / 255)  # the same float32 arithmetic as the table
    assert first[0, 0, 0, 0] == pad and first[0, 0, 32, 32] == 1.0
    second, _ = pre([tall])
    assert second.base is first.base or np.shares_memory(first, second)
    # Slot 0 switched from wide to tall: the old image rows must now be padding on the left.
    assert second[0, 0, 32, 0] == pad and second[0, 0, 32, 32] == 1.0


def test_grayscale_and_bgra_frames_are_converted():
    gray = np.full((40, 40), 200, np.uint8)
    bgra = np.zeros((40, 40, 4), np.uint8)
    bgra[..., 2] = 255
    assert to_bgr(gray).shape == (40, 40, 3)
    pre = Preprocessor(PreprocessSpec(), (40, 40))
    tensor, _ = pre([bgra])
    assert tensor[0, 0].min() == 1.0 and tensor[0, 2].max() == 0.0  # RGB: red first


def test_bad_frames_and_oversized_batches_are_refused():
    pre = Preprocessor(PreprocessSpec(), (32, 32), max_batch=1)
    with pytest.raises(JetkitError, match="max batch 1"):
        pre([np.zeros((8, 8, 3), np.uint8)] * 2)
    with pytest.raises(JetkitError, match="8-bit"):
        pre([np.zeros((8, 8, 3), np.float32)])
    with pytest.raises(JetkitError, match="grayscale, BGR or BGRA"):
        pre([np.zeros((8, 8, 2), np.uint8)])


@pytest.mark.parametrize(
    ("frame_wh", "size_wh", "expected"),
    [
        ((1920, 1080), (640, 360), True),
        ((3200, 1800), (640, 360), True),  # k = 5
        ((1280, 720), (640, 360), False),  # k = 2: bilinear really averages
        ((1920, 1080), (640, 361), False),
        ((640, 360), (640, 360), False),
    ],
)
def test_odd_integer_downscale_is_recognised(frame_wh, size_wh, expected):
    assert is_odd_integer_downscale(frame_wh, size_wh) is expected


@pytest.mark.parametrize("factor", [3, 5])
def test_odd_integer_downscale_equals_bilinear_bit_for_bit(factor):
    rng = np.random.default_rng(factor)
    frame = rng.integers(0, 256, (120 * factor, 200 * factor, 3), dtype=np.uint8)
    bilinear = cv2.resize(frame, (200, 120), interpolation=cv2.INTER_LINEAR)
    nearest = cv2.resize(frame, (200, 120), interpolation=cv2.INTER_NEAREST_EXACT)
    np.testing.assert_array_equal(nearest, bilinear)
