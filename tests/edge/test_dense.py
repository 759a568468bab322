"""Per-cell teacher predictions: every dense output format lands on jetkit's grid layout (levels in
stride order, each row-major), resampling between input sizes keeps each cell's picture, and
classes map by name."""

import numpy as np
import pytest

from edge.decode import decode_yolox
from edge.dense import (
    DenseGrid,
    cell_count,
    class_index_map,
    dense_predictions,
    grid_sizes_hw,
    resample_cells,
)
from edge.errors import JetkitError

STRIDES = (8, 16, 32)
INPUT_HW = (64, 64)  # 8x8 + 4x4 + 2x2 = 84 cells


def test_grid_sizes_and_cell_count():
    assert grid_sizes_hw(INPUT_HW, STRIDES) == [(8, 8), (4, 4), (2, 2)]
    assert cell_count((96, 64), STRIDES) == 12 * 8 + 6 * 4 + 3 * 2


def test_yolov8_output_is_transposed_to_cells_with_xyxy_boxes():
    rng = np.random.default_rng(0)
    cells = cell_count(INPUT_HW, STRIDES)
    output = rng.random((2, 4 + 3, cells), dtype=np.float32)
    output[:, 2:4] += 1.0  # positive sizes
    grid = dense_predictions(output, "yolov8", INPUT_HW, STRIDES)
    assert grid.xyxy.shape == (2, cells, 4) and grid.scores.shape == (2, cells, 3)
    np.testing.assert_allclose(grid.scores[1, 5], output[1, 4:, 5])
    cx, cy, w, h = output[1, :4, 5]
    np.testing.assert_allclose(grid.xyxy[1, 5], [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def test_yolox_cells_decode_like_the_runtime_decoder():
    rng = np.random.default_rng(1)
    cells = cell_count(INPUT_HW, STRIDES)
    output = rng.normal(0, 0.5, (1, cells, 5 + 2)).astype(np.float32)
    output[..., 4:] = rng.random((1, cells, 3))
    grid = dense_predictions(output, "yolox", INPUT_HW, STRIDES)
    candidates = decode_yolox(output, 0.0, INPUT_HW, STRIDES)[0]
    # The decoder keeps every cell at threshold 0: the same boxes, scores = best obj x class.
    np.testing.assert_allclose(grid.xyxy[0], candidates.xyxy, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(grid.scores[0].max(-1), candidates.scores, rtol=1e-6)


def test_yolov5_keeps_the_best_of_each_cells_anchors():
    cells = cell_count(INPUT_HW, STRIDES)
    output = np.zeros((1, 3 * cells, 5 + 2), dtype=np.float32)
    output[..., 2:4] = 4.0
    # Level P3 is laid out [anchor, row, col]: cell (row 1, col 2) of anchor 2 is row 2*64+10.
    output[0, 2 * 64 + 10, :5] = [20, 12, 6, 8, 0.9]
    output[0, 2 * 64 + 10, 5:] = [0.1, 0.8]
    output[0, 0 * 64 + 10, 4:] = [0.5, 0.5, 0.5]  # a weaker anchor of the same cell
    grid = dense_predictions(output, "yolov5", INPUT_HW, STRIDES)
    assert grid.scores.shape == (1, cells, 2)
    np.testing.assert_allclose(grid.scores[0, 10], [0.09, 0.72], rtol=1e-6)
    np.testing.assert_allclose(grid.xyxy[0, 10], [17, 8, 23, 16])


def test_outputs_that_do_not_fit_the_grid_or_hold_final_boxes_are_refused():
    with pytest.raises(JetkitError, match="84 cells"):
        dense_predictions(np.zeros((1, 10, 80), np.float32), "yolov8", INPUT_HW, STRIDES)
    with pytest.raises(JetkitError, match="without NMS"):
        dense_predictions(np.zeros((1, 100, 6), np.float32), "end2end", INPUT_HW, STRIDES)


def test_resampling_to_a_smaller_input_picks_the_same_picture_and_scales_boxes():
    cells = cell_count((128, 128), STRIDES)
    rng = np.random.default_rng(2)
    scores = rng.random((1, cells, 2)).astype(np.float32)
    xyxy = rng.random((1, cells, 4)).astype(np.float32) * 128
    grid = resample_cells(DenseGrid(xyxy, scores), (128, 128), (64, 64), STRIDES)
    assert grid.scores.shape == (1, cell_count(INPUT_HW, STRIDES), 2)
    # P3 cell (row 1, col 3) of the 64 px grid shows what cell (row 3, col 7) shows at 128 px
    # (the nearest centre: (1.5 / 8) * 16 = 3, (3.5 / 8) * 16 = 7).
    np.testing.assert_array_equal(grid.scores[0, 1 * 8 + 3], scores[0, 3 * 16 + 7])
    np.testing.assert_allclose(grid.xyxy[0, 1 * 8 + 3], xyxy[0, 3 * 16 + 7] / 2)
    # P5 starts after 64 + 16 cells at 64 px and after 256 + 64 at 128 px; its first cell's
    # centre (a quarter of the image) lies between source cells 0 and 1: (0.5 / 2) * 4 = 1.
    np.testing.assert_array_equal(grid.scores[0, 80], scores[0, 320 + 1 * 4 + 1])


def test_resampling_to_the_same_size_changes_nothing():
    grid = DenseGrid(np.zeros((1, 84, 4), np.float32), np.ones((1, 84, 1), np.float32))
    assert resample_cells(grid, INPUT_HW, INPUT_HW, STRIDES) is grid


def test_classes_map_by_name_and_missing_ones_are_named():
    coco_like = ("person", "bicycle", "car", "dog")
    np.testing.assert_array_equal(class_index_map(coco_like, ("car", "person")), [2, 0])
    with pytest.raises(JetkitError, match="'hexagon'.*person, bicycle"):
        class_index_map(coco_like, ("car", "hexagon"))
