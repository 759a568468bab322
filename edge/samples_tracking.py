"""A scene for testing trackers, with its ground truth: `objects` coloured boxes cross the frame
on straight paths, pass behind a pillar and behind each other, leave and come back; and a
detector for it, built from plain ONNX operators, that finds every box from its pixels.

Frame k depends only on the parameters and k. Object i cycles: it crosses the frame from one edge
to another on a path drawn anew each cycle, then stays away for a while; it keeps its identity
(`track_id` i + 1) from cycle to cycle, as MOTChallenge ground truth keeps a pedestrian's. Its
`visibility` is the share of its box that shows: the frame's edge, the pillar and the boxes
drawn over it (higher ids are nearer) hide the rest. With `moving_share` < 1 the scene is mostly
still, as a parking lot is: in every `MOTION_PERIOD_FRAMES` frames everything moves during the
first `moving_share` of them and stands where it is for the rest.

The detector computes, around every stride-8 cell, the moments of the coloured pixels in a
window of `WINDOW` px: their mass, centre and spread give the box of the one object in the window
(a rectangle's width is √12 × the standard deviation of its x), and the score is the share of
that object's pixels inside the window times how near its centre is to the cell's. Boxes come out
exact for an object alone and shrink to its visible part when something covers it; two objects
in one window merge, as they do for real detectors when people walk together.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from edge.manifest import ArtifactSpec, InputSpec, Manifest, OutputSpec, embed_manifest
from edge.samples import BLOB_BGR, BLOB_CLASSES, draw_blob_scene

# Object sides, in pixels: within the detector's window with room to spare.
SIDE_RANGE_PX = (20, 44)
WINDOW = 64
STRIDE = 8
# Cycle shares: the crossing, then time away (in frames).
CROSSING_FRAMES = (60, 180)
AWAY_FRAMES = (10, 90)
# The pillar objects pass behind, as fractions of the frame's width.
PILLAR_X = (0.46, 0.52)
MOTION_PERIOD_FRAMES = 100


@dataclass(frozen=True)
class SceneObject:
    track_id: int
    class_name: str
    xyxy: tuple[float, float, float, float]  # the whole box, possibly beyond the frame
    visibility: float


@dataclass(frozen=True)
class _Mover:
    class_name: str
    side_wh: tuple[int, int]
    crossing: int
    cycle: int
    phase: int


class MovingScene:
    """`objects_at(k)`: the objects in frame k (visible or not, while crossing); `draw(k)`: the
    BGR frame; `gt_rows(k)`: its MOTChallenge ground truth; `moving(k)`: whether anything moves
    from frame k - 1 to k."""

    def __init__(
        self, size_wh: tuple[int, int], objects: int, seed: int, moving_share: float = 1.0
    ) -> None:
        self.size_wh = size_wh
        self.seed = seed
        self.moving_frames = round(moving_share * MOTION_PERIOD_FRAMES)
        rng = np.random.default_rng((seed, 1))
        self.movers = []
        for i in range(objects):
            crossing = int(rng.integers(*CROSSING_FRAMES))
            cycle = crossing + int(rng.integers(*AWAY_FRAMES))
            side = tuple(int(v) for v in rng.integers(*SIDE_RANGE_PX, 2))
            name = BLOB_CLASSES[i % len(BLOB_CLASSES)]
            self.movers.append(_Mover(name, side, crossing, cycle, int(rng.integers(cycle))))
        width, _ = size_wh
        self.pillar_x = (int(PILLAR_X[0] * width), int(PILLAR_X[1] * width))

    @cached_property
    def background_bgr(self) -> np.ndarray:
        return draw_blob_scene(self.size_wh, {}, seed=self.seed)

    def _path(self, i: int, cycle: int) -> tuple[np.ndarray, np.ndarray]:
        """Object i's start and end centre in its crossing number `cycle`: on two different
        edges, just outside the frame."""
        width, height = self.size_wh
        mover = self.movers[i]
        margin = max(mover.side_wh)
        rng = np.random.default_rng((self.seed, 2, i, cycle))
        edges = rng.choice(4, 2, replace=False)
        points = []
        for edge in edges:
            t = rng.uniform(0.1, 0.9)
            points.append({0: (t * width, -margin), 1: (width + margin, t * height),
                           2: (t * width, height + margin), 3: (-margin, t * height)}[edge])  # fmt: skip
        return np.array(points[0]), np.array(points[1])

    def scene_time(self, index: int) -> int:
        """How many frames' worth the objects have moved by frame `index`."""
        periods, into = divmod(index, MOTION_PERIOD_FRAMES)
        return periods * self.moving_frames + min(into, self.moving_frames)

    def moving(self, index: int) -> bool:
        return index > 0 and self.scene_time(index) != self.scene_time(index - 1)

    def _boxes(self, index: int) -> list[tuple[int, np.ndarray]]:
        """`(i, xyxy)` of the objects crossing in frame `index`."""
        index = self.scene_time(index)
        boxes = []
        for i, mover in enumerate(self.movers):
            cycle, into = divmod(index + mover.phase, mover.cycle)
            if into >= mover.crossing:
                continue
            start, end = self._path(i, cycle)
            centre = start + (end - start) * into / (mover.crossing - 1)
            half = np.array(mover.side_wh) / 2
            boxes.append((i, np.concatenate([centre - half, centre + half])))
        return boxes

    def _raster(self, index: int) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
        """Which object shows at each pixel (-1: none), nearer ids drawn over farther."""
        width, height = self.size_wh
        raster = np.full((height, width), -1, np.int32)
        boxes = self._boxes(index)
        for i, xyxy in boxes:
            x0, y0, x1, y1 = _pixels(xyxy, self.size_wh)
            raster[y0:y1, x0:x1] = i
        raster[:, self.pillar_x[0] : self.pillar_x[1]] = -1
        return raster, boxes

    def objects_at(self, index: int) -> list[SceneObject]:
        return self._objects(*self._raster(index))

    def _objects(self, raster: np.ndarray, boxes: list[tuple[int, np.ndarray]]) -> list[SceneObject]:
        counts = np.bincount(raster.ravel() + 1, minlength=len(self.movers) + 1)[1:]
        found = []
        for i, xyxy in boxes:
            area = float(np.prod(self.movers[i].side_wh))
            found.append(SceneObject(i + 1, self.movers[i].class_name,
                                     tuple(float(v) for v in xyxy),  # type: ignore[arg-type]
                                     min(counts[i] / area, 1.0)))  # fmt: skip
        return found

    @cached_property
    def palette_bgr(self) -> np.ndarray:
        """`(objects, 3)`: each object's colour, indexed by the raster."""
        return np.array([BLOB_BGR[m.class_name] for m in self.movers], np.uint8).reshape(-1, 3)

    def draw(self, index: int) -> np.ndarray:
        return self._painted(self._raster(index)[0])

    def frame_and_truth(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """`draw(index)` and `gt_rows(index)` from one rasterisation of the frame."""
        raster, boxes = self._raster(index)
        return self._painted(raster), self._rows(index, self._objects(raster, boxes))

    def _painted(self, raster: np.ndarray) -> np.ndarray:
        frame = self.background_bgr.copy()
        shown = raster >= 0
        frame[shown] = self.palette_bgr[raster[shown]]  # one pass, however many objects
        return frame

    def gt_rows(self, index: int) -> np.ndarray:
        """Frame `index`'s ground truth as `(N,10)` MOT rows (frame index + 1; class -1; the
        visibility last but one), the objects that show at all."""
        return self._rows(index, self.objects_at(index))

    @staticmethod
    def _rows(index: int, objects: list[SceneObject]) -> np.ndarray:
        rows = []
        for found in objects:
            if found.visibility <= 0:
                continue
            x0, y0, x1, y1 = found.xyxy
            rows.append([index + 1, found.track_id, x0, y0, x1 - x0, y1 - y0, 1, -1,
                         found.visibility, -1])  # fmt: skip
        return np.array(rows, dtype=np.float64).reshape(-1, 10)


def _pixels(xyxy: np.ndarray, size_wh: tuple[int, int]) -> tuple[int, int, int, int]:
    width, height = size_wh
    x0, y0, x1, y1 = (int(round(v)) for v in xyxy)
    return max(x0, 0), max(y0, 0), min(max(x1, 0), width), min(max(y1, 0), height)


def build_moving_detector(path: str | Path, input_hw: tuple[int, int] = (640, 640),
                          max_batch: int = 8) -> Manifest:  # fmt: skip
    """Write the moment detector (dynamic batch up to `max_batch`, manifest embedded)."""
    from edge.atomic import write_bytes_atomic

    path = Path(path)
    model = _moments_graph(input_hw)
    manifest = Manifest(
        name=path.stem,
        input=InputSpec(
            name="images", shape=(max_batch, 3, *input_hw), dynamic_batch=True, max_batch=max_batch
        ),  # fmt: skip
        output=OutputSpec(format="yolov8", names=("output0",)),
        classes=BLOB_CLASSES,
        artifact=ArtifactSpec(file=path.name, kind="onnx", precision="fp32"),
        provenance={"built_by": "edge.samples_tracking.build_moving_detector"},
    )
    embed_manifest(model, manifest)
    write_bytes_atomic(path, model.SerializeToString())
    return manifest


def _moments_graph(input_hw: tuple[int, int]) -> Any:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    height, width = input_hw
    if height % STRIDE or width % STRIDE:
        raise ValueError(f"input size {input_hw} must be a multiple of {STRIDE}")
    inits = []
    nodes = []

    def const(name: str, array: Any) -> str:
        inits.append(numpy_helper.from_array(np.asarray(array, dtype=np.float32), name))
        return name

    def int_const(name: str, values: list[int]) -> str:
        inits.append(numpy_helper.from_array(np.array(values, dtype=np.int64), name))
        return name

    def node(op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [output], **attrs))
        return output

    # Each colour's mask, as the blob detector makes it (input RGB in [0, 1]).
    colour_w = np.array([[1, -0.5, -0.5], [-0.5, 1, -0.5], [-0.5, -0.5, 1]])[:, :, None, None]
    d = node("Conv", ["images", const("colour_w", colour_w), const("colour_b", [-0.4] * 3)], "d")
    masks = node("Clip", [node("Mul", [d, const("ten", 10.0)], "d10"), const("zero", 0.0),
                          const("one", 1.0)], "masks")  # fmt: skip
    mass = node("ReduceMax", [masks], "mass", axes=[1], keepdims=1)  # (B,1,H,W)
    xs = np.arange(width, dtype=np.float32).reshape(1, 1, 1, width) + 0.5
    ys = np.arange(height, dtype=np.float32).reshape(1, 1, height, 1) + 0.5
    mx = node("Mul", [mass, const("xs", xs)], "mx")
    my = node("Mul", [mass, const("ys", ys)], "my")
    mxx = node("Mul", [mx, "xs"], "mxx")
    myy = node("Mul", [my, "ys"], "myy")
    stack = node("Concat", [mass, mx, my, mxx, myy, masks], "stack", axis=1)  # (B,8,H,W)
    # The window's sums, separably: a column pass, then a row pass (sums = means × WINDOW²).
    half = (WINDOW - STRIDE) // 2
    pooled = node("AveragePool", [node("AveragePool", [stack], "cols", kernel_shape=[WINDOW, 1],
                                       strides=[STRIDE, 1], pads=[half, 0, half, 0])],
                  "pooled", kernel_shape=[1, WINDOW], strides=[1, STRIDE],
                  pads=[0, half, 0, half])  # fmt: skip
    grid_h, grid_w = height // STRIDE, width // STRIDE
    flat = node("Reshape", [pooled, int_const("flat_shape", [0, 8, grid_h * grid_w])], "flat")
    parts = [f"m{k}" for k in range(8)]
    nodes.append(helper.make_node("Split", [flat, int_const("ones8", [1] * 8)], parts, axis=1))
    eps_mass = node("Add", ["m0", const("eps", 1e-6)], "mass_eps")
    cx = node("Div", ["m1", eps_mass], "cx")
    cy = node("Div", ["m2", eps_mass], "cy")
    var_x = node("Sub", [node("Div", ["m3", eps_mass], "ex2"), node("Mul", [cx, cx], "cx2")],
                 "var_x")  # fmt: skip
    var_y = node("Sub", [node("Div", ["m4", eps_mass], "ey2"), node("Mul", [cy, cy], "cy2")],
                 "var_y")  # fmt: skip
    twelve = const("twelve", 12.0)
    w = node("Sqrt", [node("Relu", [node("Mul", [var_x, twelve], "vx12")], "vx12r")], "w")
    h = node("Sqrt", [node("Relu", [node("Mul", [var_y, twelve], "vy12")], "vy12r")], "h")
    # The share of the object inside the window: its mass there over its box's area.
    window_area = const("window_area", float(WINDOW * WINDOW))
    inside = node("Div", [node("Mul", ["m0", window_area], "pixels"),
                          node("Add", [node("Mul", [w, h], "wh"), "eps"], "wh_eps")], "inside")  # fmt: skip
    inside = node("Clip", [inside, "zero", "one"], "inside01")
    cell_x = (np.arange(grid_w, dtype=np.float32) + 0.5) * STRIDE
    cell_y = (np.arange(grid_h, dtype=np.float32) + 0.5) * STRIDE
    cells_x = np.tile(cell_x, grid_h).reshape(1, 1, -1)
    cells_y = np.repeat(cell_y, grid_w).reshape(1, 1, -1)
    dx = node("Sub", [cx, const("cells_x", cells_x)], "dx")
    dy = node("Sub", [cy, const("cells_y", cells_y)], "dy")
    dist2 = node("Add", [node("Mul", [dx, dx], "dx2"), node("Mul", [dy, dy], "dy2")], "dist2")
    near = node("Exp", [node("Mul", [dist2, const("falloff", -1.0 / (2 * STRIDE**2))], "fall")],
                "near")  # fmt: skip
    score = node("Mul", [inside, near], "score")
    # Class scores: each colour's share of the window's mass.
    colours = node("Concat", ["m5", "m6", "m7"], "colours", axis=1)
    share = node("Div", [colours, eps_mass], "share")
    class_scores = node("Mul", [share, score], "class_scores")
    node("Concat", [cx, cy, w, h, class_scores], "output0", axis=1)
    graph = helper.make_graph(
        nodes,
        "jetkit_moving_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, height, width])],
        [
            helper.make_tensor_value_info(
                "output0", TensorProto.FLOAT, ["batch", 7, grid_h * grid_w]
            )
        ],  # fmt: skip
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="jetkit")  # fmt: skip
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
