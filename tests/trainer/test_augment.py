"""Training augmentations keep every box on the pixels of its object.

Each scene paints every box as a filled rectangle of its own colour on a green background; after
an augmentation, the region of that colour around each returned box must coincide with the box.
"""

import numpy as np
import pytest

from edge.errors import JetkitError
from edge.manifest import PreprocessSpec
from trainer.augment import (
    AugmentConfig,
    augment_hsv,
    flip,
    letterbox,
    mosaic4,
    random_affine,
    resize_to_fit,
)

BACKGROUND = (60, 160, 60)
PAD = 114
COLOURS = [(0, 0, 255), (255, 0, 0), (0, 255, 255), (255, 0, 255)]  # BGR, one per class id


def paint(size_wh, xyxy, class_ids):
    """A BGR scene of `size_wh` with each box `xyxy (N,4)` (integer corners) filled with the
    colour of its class."""
    width, height = size_wh
    image = np.full((height, width, 3), BACKGROUND, np.uint8)
    for (x0, y0, x1, y1), class_id in zip(xyxy.astype(int), class_ids, strict=True):
        image[y0:y1, x0:x1] = COLOURS[class_id]
    return image


def colour_extent(image, colour, around_xyxy, margin=3):
    """xyxy of the pixels nearest to `colour` (among all the scene's colours) within the box
    `around_xyxy` grown by `margin`, or None when there are none."""
    height, width = image.shape[:2]
    x0, y0 = (max(int(v) - margin, 0) for v in around_xyxy[:2])
    x1, y1 = (
        min(int(np.ceil(around_xyxy[2])) + margin, width),
        min(int(np.ceil(around_xyxy[3])) + margin, height),
    )
    window = image[y0:y1, x0:x1].astype(int)
    palette = np.array([colour, BACKGROUND, (PAD,) * 3, *COLOURS])
    distances = np.abs(window[:, :, None, :] - palette).sum(-1)
    ys, xs = np.nonzero(distances.argmin(-1) == 0)
    if len(xs) == 0:
        return None
    return np.array([x0 + xs.min(), y0 + ys.min(), x0 + xs.max() + 1, y0 + ys.max() + 1])


def assert_boxes_on_their_colour(image, xyxy, class_ids, tolerance_px=1.5):
    assert len(xyxy) == len(class_ids)
    for box, class_id in zip(xyxy, class_ids, strict=True):
        extent = colour_extent(image, COLOURS[class_id], box)
        assert extent is not None, f"no {COLOURS[class_id]} pixels at box {box}"
        np.testing.assert_allclose(extent, box, atol=tolerance_px)


@pytest.fixture()
def scene():
    """A 200x150 scene with four boxes, class ids 0..3."""
    xyxy = np.array([[10, 12, 60, 52], [120, 20, 190, 70], [30, 90, 80, 140], [140, 100, 170, 130]])
    class_ids = np.arange(4, dtype=np.int64)
    return paint((200, 150), xyxy, class_ids), xyxy.astype(np.float32), class_ids


@pytest.mark.parametrize(
    "spec",
    [
        PreprocessSpec(),
        PreprocessSpec(pad_position="top_left"),
        PreprocessSpec(resize="stretch"),
    ],
    ids=["letterbox-center", "letterbox-top-left", "stretch"],
)
def test_letterbox_maps_boxes_onto_their_content(scene, spec):
    image, xyxy, class_ids = scene
    boxed, moved = letterbox(image, xyxy, (96, 128), spec)
    assert boxed.shape == (96, 128, 3) and boxed.dtype == np.uint8
    assert_boxes_on_their_colour(boxed, moved, class_ids)


def test_letterbox_pads_with_the_pad_value():
    image = np.zeros((50, 100, 3), np.uint8)  # wide: letterboxed into 64x64 it is 64x32
    boxed, _ = letterbox(image, np.zeros((0, 4), np.float32), (64, 64), PreprocessSpec())
    assert (boxed[:16] == PAD).all() and (boxed[48:] == PAD).all()
    assert (boxed[16:48] == 0).all()


def test_flip_maps_boxes_and_is_an_involution(scene):
    image, xyxy, class_ids = scene
    for horizontal in (True, False):
        flipped, moved = flip(image, xyxy, horizontal)
        assert_boxes_on_their_colour(flipped, moved, class_ids, tolerance_px=0)
        back, restored = flip(flipped, moved, horizontal)
        np.testing.assert_array_equal(back, image)
        np.testing.assert_array_equal(restored, xyxy)


@pytest.mark.parametrize("seed", range(6))
def test_random_affine_keeps_boxes_on_their_content(scene, seed):
    image, xyxy, class_ids = scene
    out, moved, kept_ids = random_affine(
        image, xyxy, class_ids, (128, 160), 0.5, 0.2, np.random.default_rng(seed), PAD, 2.0, 0.1
    )
    assert out.shape == (128, 160, 3)
    assert len(moved) == len(kept_ids) <= len(xyxy)
    assert (moved[:, 0::2] >= 0).all() and (moved[:, 0::2] <= 160).all()
    assert (moved[:, 1::2] >= 0).all() and (moved[:, 1::2] <= 128).all()
    assert_boxes_on_their_colour(out, moved, kept_ids)


def test_random_affine_without_randomness_is_the_identity(scene):
    image, xyxy, class_ids = scene
    out, moved, kept = random_affine(
        image, xyxy, class_ids, (150, 200), 0.0, 0.0, np.random.default_rng(0), PAD, 2.0, 0.1
    )
    np.testing.assert_array_equal(out, image)
    np.testing.assert_array_equal(moved, xyxy)
    np.testing.assert_array_equal(kept, class_ids)


def test_random_affine_drops_boxes_pushed_out_of_the_image():
    """A 100x100 output of a 200x200 image at scale 1 is its centre crop [50, 150)."""
    xyxy = np.array(
        [
            [60, 60, 90, 90],  # inside: kept whole
            [0, 0, 30, 30],  # outside the crop: dropped
            [40, 60, 70, 90],  # 2/3 inside: kept, clipped
            [20, 100, 56, 130],  # 1/6 inside (6 px of 36): kept at ratio 0.1, not at 0.2
            [100, 100, 101.5, 120],  # 1.5 px wide: under min_box_px
        ],
        np.float32,
    )
    class_ids = np.array([0, 1, 2, 3, 0], np.int64)
    image = paint((200, 200), xyxy, class_ids)
    crop = (image, xyxy, class_ids, (100, 100), 0.0, 0.0, np.random.default_rng(0), PAD, 2.0)

    out, moved, kept = random_affine(*crop, 0.1)
    np.testing.assert_array_equal(out, image[50:150, 50:150])
    np.testing.assert_array_equal(kept, [0, 2, 3])
    np.testing.assert_allclose(moved, [[10, 10, 40, 40], [0, 10, 20, 40], [0, 50, 6, 80]])

    _, moved, kept = random_affine(*crop, 0.2)
    np.testing.assert_array_equal(kept, [0, 2])
    assert len(moved) == 2


def four_tiles(input_hw, spec):
    """Four scenes of different shapes, one box of class i in scene i, fitted to `input_hw`."""
    sizes_wh = [(160, 120), (90, 150), (200, 80), (100, 100)]
    tiles = []
    for class_id, (width, height) in enumerate(sizes_wh):
        xyxy = np.array([[width * 0.2, height * 0.3, width * 0.7, height * 0.8]]).round()
        ids = np.array([class_id], np.int64)
        image, fitted = resize_to_fit(paint((width, height), xyxy, ids), xyxy, input_hw, spec)
        tiles.append((image, fitted, ids))
    return tiles


@pytest.mark.parametrize("seed", range(4))
def test_mosaic_places_four_images_with_their_boxes(seed):
    input_hw = (64, 96)
    images, boxes, class_ids = zip(*four_tiles(input_hw, PreprocessSpec()), strict=True)
    canvas, xyxy, ids = mosaic4(
        images, boxes, class_ids, input_hw, np.random.default_rng(seed), PAD
    )
    assert canvas.shape == (128, 192, 3)
    assert (xyxy[:, 0::2] >= 0).all() and (xyxy[:, 0::2] <= 192).all()
    assert (xyxy[:, 1::2] >= 0).all() and (xyxy[:, 1::2] <= 128).all()
    assert set(ids.tolist()) <= {0, 1, 2, 3}
    assert_boxes_on_their_colour(canvas, xyxy, ids)

    out, moved, kept = random_affine(
        canvas, xyxy, ids, input_hw, 0.5, 0.1, np.random.default_rng(seed), PAD, 2.0, 0.1
    )
    assert out.shape == (64, 96, 3)
    assert_boxes_on_their_colour(out, moved, kept)


def test_mosaic_is_a_function_of_the_generator_seed():
    input_hw = (64, 96)
    images, boxes, class_ids = zip(*four_tiles(input_hw, PreprocessSpec()), strict=True)

    def make(seed):
        return mosaic4(images, boxes, class_ids, input_hw, np.random.default_rng(seed), PAD)

    first, again, other = make(7), make(7), make(8)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])


def test_hsv_jitter_changes_colours_not_greys():
    rng = np.random.default_rng(0)
    colourful = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    gains = (0.015, 0.7, 0.4)

    jittered = augment_hsv(colourful, gains, np.random.default_rng(1))
    assert jittered.shape == colourful.shape and jittered.dtype == np.uint8
    assert not np.array_equal(jittered, colourful)
    np.testing.assert_array_equal(jittered, augment_hsv(colourful, gains, np.random.default_rng(1)))
    np.testing.assert_array_equal(augment_hsv(colourful, (0, 0, 0), rng), colourful)

    grey = np.repeat(rng.integers(0, 256, (32, 48, 1), dtype=np.uint8), 3, axis=2)
    jittered_grey = augment_hsv(grey, gains, np.random.default_rng(1))
    assert (jittered_grey == jittered_grey[:, :, :1]).all()  # saturation 0 stays 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("hsv_gains", (0.1, 0.2)),
        ("hsv_gains", (0.1, 0.2, 1.5)),
        ("flip_lr", 1.5),
        ("flip_ud", -0.1),
        ("scale", 1.0),
        ("translate", 0.6),
        ("mosaic", "yes"),
        ("min_box_px", -1),
        ("min_area_ratio", 2),
    ],
)
def test_augment_config_errors_name_the_field(field, value):
    with pytest.raises(JetkitError, match=f"augment.{field}"):
        AugmentConfig(**{field: value})


def test_augment_config_defaults_are_valid():
    config = AugmentConfig()
    assert config.hsv_gains == (0.015, 0.7, 0.4) and config.mosaic == 1.0
