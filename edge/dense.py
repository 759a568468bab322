"""Per-cell predictions before any threshold: what a distillation teacher's outputs say about every
cell of the P3–P5 grids, in the layout jetkit's own head uses (levels in stride order, each
row-major), whatever the model's output format.

A teacher that runs at another input size than the student is resampled onto the student's grid
(the nearest cell of the same stride), with its boxes scaled by the size ratio. Pure numpy.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from edge.boxes import cxcywh_to_xyxy
from edge.decode import yolox_grid
from edge.errors import JetkitError

# Formats with one prediction per grid cell (yolov5: several anchors per cell, the best kept).
DENSE_FORMATS = ("yolov8", "yolox", "yolov5")


class DenseGrid(NamedTuple):
    """A batch's per-cell predictions: `xyxy (B,N,4)` in input pixels, `scores (B,N,C)` class
    probabilities, with cells ordered level by level (strides ascending), each row-major."""

    xyxy: np.ndarray
    scores: np.ndarray


def grid_sizes_hw(input_hw: tuple[int, int], strides: tuple[int, ...]) -> list[tuple[int, int]]:
    """The `(rows, cols)` of each level's grid."""
    return [(input_hw[0] // stride, input_hw[1] // stride) for stride in strides]


def cell_count(input_hw: tuple[int, int], strides: tuple[int, ...]) -> int:
    return sum(rows * cols for rows, cols in grid_sizes_hw(input_hw, strides))


def dense_predictions(
    output: np.ndarray, fmt: str, input_hw: tuple[int, int], strides: tuple[int, ...]
) -> DenseGrid:
    """One model output → its per-cell boxes and class probabilities (objectness folded in)."""
    if fmt not in DENSE_FORMATS:
        raise JetkitError(
            f"a {fmt} model's output holds only its final detections, not a prediction per cell; "
            "export the teacher without NMS in the graph (yolov8, yolov5 or yolox format)"
        )
    output = np.asarray(output, dtype=np.float32)
    cells = cell_count(input_hw, strides)
    if fmt == "yolov8":
        if output.ndim != 3 or output.shape[2] != cells:
            raise _grid_mismatch(output, fmt, input_hw, strides, cells)
        return DenseGrid(
            cxcywh_to_xyxy(output[:, :4].transpose(0, 2, 1)), output[:, 4:].transpose(0, 2, 1)
        )
    if fmt == "yolox":
        if output.ndim != 3 or output.shape[1] != cells:
            raise _grid_mismatch(output, fmt, input_hw, strides, cells)
        origins, cell_strides = yolox_grid(input_hw, strides)
        xy = (output[..., :2] + origins) * cell_strides
        wh = np.exp(output[..., 2:4]) * cell_strides
        return DenseGrid(
            cxcywh_to_xyxy(np.concatenate((xy, wh), axis=-1)), output[..., 5:] * output[..., 4:5]
        )
    return _best_anchor_per_cell(output, input_hw, strides, cells)


def _best_anchor_per_cell(
    output: np.ndarray, input_hw: tuple[int, int], strides: tuple[int, ...], cells: int
) -> DenseGrid:
    """yolov5 `[B, A·N, 5+nc]`, each level laid out anchor-major (`[A, rows, cols]`, as
    Ultralytics' YOLOv5 Detect head flattens it): per cell, the anchor with the best score."""
    if output.ndim != 3 or output.shape[1] % cells or output.shape[1] == 0:
        raise _grid_mismatch(output, "yolov5", input_hw, strides, cells)
    anchors = output.shape[1] // cells
    batch = output.shape[0]
    boxes, probabilities, start = [], [], 0
    for rows, cols in grid_sizes_hw(input_hw, strides):
        level = output[:, start : start + anchors * rows * cols]
        start += anchors * rows * cols
        level = level.reshape(batch, anchors, rows * cols, -1)
        scores = level[..., 5:] * level[..., 4:5]
        best = scores.max(-1).argmax(1)[:, None, :, None]
        boxes.append(np.take_along_axis(level[..., :4], best, axis=1)[:, 0])
        probabilities.append(np.take_along_axis(scores, best, axis=1)[:, 0])
    return DenseGrid(
        cxcywh_to_xyxy(np.concatenate(boxes, axis=1)), np.concatenate(probabilities, axis=1)
    )


def _grid_mismatch(
    output: np.ndarray, fmt: str, input_hw: tuple[int, int], strides: tuple[int, ...], cells: int
) -> JetkitError:
    return JetkitError(
        f"{fmt} output of shape {list(output.shape)} does not match a {input_hw[0]}x"
        f"{input_hw[1]} input with strides {list(strides)} ({cells} cells); check the model's "
        "input size and strides in its manifest"
    )


def resample_cells(
    grid: DenseGrid,
    from_hw: tuple[int, int],
    to_hw: tuple[int, int],
    strides: tuple[int, ...],
) -> DenseGrid:
    """Predictions on the grid of a `from_hw` input → the grid of a `to_hw` input that shows the
    same picture scaled: each target cell takes the nearest source cell of its level, and boxes
    scale by `to / from` per axis."""
    if from_hw == to_hw:
        return grid
    picks, start = [], 0
    for (rows_from, cols_from), (rows_to, cols_to) in zip(
        grid_sizes_hw(from_hw, strides), grid_sizes_hw(to_hw, strides), strict=True
    ):
        rows = np.minimum(
            ((np.arange(rows_to) + 0.5) * rows_from / rows_to).astype(int), rows_from - 1
        )
        cols = np.minimum(
            ((np.arange(cols_to) + 0.5) * cols_from / cols_to).astype(int), cols_from - 1
        )
        picks.append(start + (rows[:, None] * cols_from + cols[None, :]).ravel())
        start += rows_from * cols_from
    index = np.concatenate(picks)
    gain = np.array([to_hw[1] / from_hw[1], to_hw[0] / from_hw[0]] * 2, dtype=np.float32)
    return DenseGrid(grid.xyxy[:, index] * gain, grid.scores[:, index])


def class_index_map(teacher_names: tuple[str, ...], student_names: tuple[str, ...]) -> np.ndarray:
    """For each student class, the index of the teacher class of the same name `(C_student,)`;
    a student class the teacher does not know is an error that names it."""
    position = {name: index for index, name in enumerate(teacher_names)}
    missing = [name for name in student_names if name not in position]
    if missing:
        shown = ", ".join(teacher_names[:12]) + (", …" if len(teacher_names) > 12 else "")
        raise JetkitError(
            f"the teacher knows no class named {', '.join(map(repr, missing))} (its classes: "
            f"{shown}); rename the data set's classes to the teacher's names or use a teacher "
            "trained on them"
        )
    return np.array([position[name] for name in student_names], dtype=np.int64)
