"""Each decoder on outputs constructed by hand, in the layout its exporter writes."""

import numpy as np
import pytest

from edge.decode import (
    decode,
    decode_end2end,
    decode_yolov5,
    decode_yolov8,
    decode_yolox,
    yolox_grid,
)
from edge.errors import JetkitError


def test_yolov8_picks_the_best_class_and_converts_centres_to_corners():
    nc, n = 3, 5
    out = np.zeros((1, 4 + nc, n), np.float32)
    out[0, :4, 1] = [100, 50, 20, 10]  # cx, cy, w, h
    out[0, 4:, 1] = [0.1, 0.9, 0.3]
    out[0, :4, 3] = [10, 10, 4, 4]
    out[0, 4:, 3] = [0.2, 0.1, 0.2]  # below 0.25: dropped
    (cands,) = decode_yolov8(out, 0.25)
    np.testing.assert_allclose(cands.xyxy, [[90, 45, 110, 55]])
    np.testing.assert_allclose(cands.scores, [0.9])
    assert cands.class_ids.tolist() == [1]


def test_yolov8_batch_keeps_images_apart():
    out = np.zeros((2, 6, 4), np.float32)
    out[0, :, 0] = [5, 5, 2, 2, 0.8, 0.0]
    out[1, :, 2] = [7, 7, 2, 2, 0.0, 0.6]
    first, second = decode_yolov8(out, 0.5)
    assert first.class_ids.tolist() == [0] and second.class_ids.tolist() == [1]
    np.testing.assert_allclose(second.xyxy, [[6, 6, 8, 8]])


def test_yolov5_multiplies_objectness_and_class_score():
    out = np.zeros((1, 3, 5 + 2), np.float32)
    out[0, 0] = [20, 20, 10, 10, 0.9, 0.5, 0.8]  # score 0.72, class 1
    out[0, 1] = [50, 50, 10, 10, 0.3, 0.9, 0.1]  # 0.27
    out[0, 2] = [80, 80, 10, 10, 0.2, 1.0, 1.0]  # objectness below threshold
    (cands,) = decode_yolov5(out, 0.25)
    np.testing.assert_allclose(cands.scores, [0.72, 0.27], rtol=1e-6)
    assert cands.class_ids.tolist() == [1, 0]
    np.testing.assert_allclose(cands.xyxy[0], [15, 15, 25, 25])


def test_yolox_grid_order_is_stride_then_row_major():
    cells, strides = yolox_grid((64, 32), (8, 16, 32))
    assert cells.shape == (8 * 4 + 4 * 2 + 2 * 1, 2)
    np.testing.assert_array_equal(cells[:5], [[0, 0], [1, 0], [2, 0], [3, 0], [0, 1]])
    assert strides[0, 0] == 8 and strides[-1, 0] == 32


def test_yolox_decodes_offsets_and_log_sizes_with_strides():
    input_hw = (64, 64)
    n = 8 * 8 + 4 * 4 + 2 * 2
    out = np.zeros((1, n, 5 + 2), np.float32)
    # Anchor 8*8 + 5 is the stride-16 cell (x=1, y=1).
    out[0, 64 + 5] = [0.5, 0.25, np.log(2.0), 0.0, 0.8, 0.1, 0.9]
    (cands,) = decode_yolox(out, 0.25, input_hw)
    cx, cy, w, h = (1 + 0.5) * 16, (1 + 0.25) * 16, 2 * 16, 16
    np.testing.assert_allclose(
        cands.xyxy, [[cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]], rtol=1e-6
    )
    np.testing.assert_allclose(cands.scores, [0.72], rtol=1e-6)
    assert cands.class_ids.tolist() == [1]


def test_yolox_refuses_an_output_that_does_not_fit_the_grid():
    with pytest.raises(JetkitError, match="anchors"):
        decode_yolox(np.zeros((1, 100, 7), np.float32), 0.25, (64, 64))


def test_end2end_filters_by_score_only():
    out = np.array([[[1, 2, 3, 4, 0.9, 2], [5, 6, 7, 8, 0.1, 0], [0, 0, 0, 0, 0.0, 0]]], np.float32)
    (cands,) = decode_end2end(out, 0.25)
    np.testing.assert_allclose(cands.xyxy, [[1, 2, 3, 4]])
    assert cands.class_ids.tolist() == [2]


def test_end2end_shape_is_checked():
    with pytest.raises(JetkitError, match="must end in 6"):
        decode_end2end(np.zeros((1, 10, 7), np.float32), 0.25)


def test_dispatch_converts_half_precision_outputs():
    out = np.zeros((1, 6, 2), np.float16)
    out[0, :, 0] = [4, 4, 2, 2, 0.75, 0]
    (cands,) = decode([out], "yolov8", 0.25, (8, 8))
    assert cands.xyxy.dtype == np.float32 and cands.scores.tolist() == [0.75]


def test_dispatch_rejects_unknown_format_and_bad_rank():
    with pytest.raises(JetkitError, match="unknown output format"):
        decode([np.zeros((1, 6, 2), np.float32)], "detr", 0.25, (8, 8))
    with pytest.raises(JetkitError, match="--format"):
        decode([np.zeros((6, 2), np.float32)], "yolov8", 0.25, (8, 8))
