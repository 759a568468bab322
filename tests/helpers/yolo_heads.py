"""Tiny detector graphs with the heads of the YOLO families users export, built with
`onnx.helper` and runnable in ONNX Runtime: a stem convolution, one learned convolution per
branch and level, then each family's own decode, node for node as its exporter writes it.

- `v8-split`: Ultralytics ≤ 8.3 (and YOLO11 of that era): per level `Concat(box 4·R, cls nc)`,
  reshaped and concatenated over levels, `Split` into box and class, DFL (`Reshape → Transpose
  → Softmax → Conv(0..R-1)`), dist2bbox, `Sigmoid`, output `[1, 4+nc, A]`.
- `v8-separate`: Ultralytics 8.4: box and class levels concatenated separately, no mixing.
- `yolov5`: a Focus stem (four `Slice`s and a `Concat`), per level `Conv → Reshape → Transpose →
  Sigmoid → Split(xy, wh, conf)`, grid arithmetic, output `[1, A, 5+nc]`.
- `yolox`: per level `Concat(reg, Sigmoid(obj), Sigmoid(cls))`, levels concatenated, the decode
  slicing `xy` and `wh` back out, output `[1, A, 5+nc]`.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edge.manifest import InputSpec, Manifest, OutputSpec

STYLES = ("v8-split", "v8-separate", "yolov5", "yolox")
REG_MAX = 4
CLASSES = 2
SIZE = 32
STRIDES = (8, 16)


class _Builder:
    def __init__(self) -> None:
        self.nodes: list = []
        self.inits: list = []
        self.rng = np.random.default_rng(0)

    def const(self, name: str, value) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], name: str, outputs: int = 1, **attrs) -> list[str]:
        outs = [f"{name}_out{i}" if outputs > 1 else f"{name}_out" for i in range(outputs)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=name, **attrs))
        return outs

    def conv(self, x: str, channels_in: int, channels_out: int, name: str, stride: int = 1,
             weight=None) -> str:  # fmt: skip
        if weight is None:
            weight = self.rng.normal(0, 0.3, (channels_out, channels_in, 1, 1)).astype(np.float32)
        inputs = [x, self.const(f"{name}.w", weight)]
        return self.node("Conv", inputs, name, strides=[stride, stride])[0]

    def shape(self, name: str, dims: list[int]) -> str:
        return self.const(name, np.array(dims, dtype=np.int64))


def head_manifest(style: str) -> Manifest:
    """The manifest of `yolo_head(style)`."""
    return Manifest(
        input=InputSpec(shape=(1, 3, SIZE, SIZE)),
        output=OutputSpec(format="yolov8" if style.startswith("v8") else style, strides=STRIDES),
        classes=tuple("ab"[:CLASSES]),
    )


def yolo_head(style: str) -> onnx.ModelProto:
    """The graph of one `STYLES` family; input `images [1, 3, SIZE, SIZE]`, output `output0`."""
    b = _Builder()
    x = "images"
    channels = 3
    if style == "yolov5":
        slices = []
        for i, (y0, x0) in enumerate(((0, 0), (1, 0), (0, 1), (1, 1))):
            starts, ends = b.shape(f"s{i}", [y0, x0]), b.shape(f"e{i}", [SIZE, SIZE])
            axes, steps = b.shape(f"a{i}", [2, 3]), b.shape(f"st{i}", [2, 2])
            slices += b.node("Slice", [x, starts, ends, axes, steps], f"focus_slice{i}")
        x = b.node("Concat", slices, "focus_concat", axis=1)[0]
        channels = 12
        stem = b.conv(x, channels, 8, "stem", stride=4)
    else:
        stem = b.conv(x, channels, 8, "stem", stride=8)
    features = [b.node("Relu", [stem], "stem_act")[0]]
    features.append(
        b.node("MaxPool", [features[0]], "down", kernel_shape=[2, 2], strides=[2, 2])[0]
    )
    anchors = [(SIZE // s) ** 2 for s in STRIDES]
    total = sum(anchors)
    if style in ("v8-split", "v8-separate"):
        out = _v8_head(b, features, anchors, total, separate=style == "v8-separate")
        out_shape = [1, 4 + CLASSES, total]
    elif style == "yolov5":
        out = _v5_head(b, features, anchors)
        out_shape = [1, total, 5 + CLASSES]
    else:
        out = _yolox_head(b, features, anchors, total)
        out_shape = [1, total, 5 + CLASSES]
    b.nodes.append(helper.make_node("Identity", [out], ["output0"], name="output_identity"))
    graph = helper.make_graph(
        b.nodes,
        style,
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, out_shape)],
        b.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _v8_head(b: _Builder, features, anchors, total, separate: bool) -> str:
    box_levels, cls_levels, mixed = [], [], []
    for level, feature in enumerate(features):
        box = b.conv(feature, 8, 4 * REG_MAX, f"box{level}")
        cls = b.conv(feature, 8, CLASSES, f"cls{level}")
        if separate:
            box_levels += b.node(
                "Reshape", [box, b.shape(f"rb{level}", [1, 4 * REG_MAX, -1])], f"box_flat{level}"
            )
            cls_levels += b.node(
                "Reshape", [cls, b.shape(f"rc{level}", [1, CLASSES, -1])], f"cls_flat{level}"
            )
        else:
            both = b.node("Concat", [box, cls], f"level_concat{level}", axis=1)[0]
            mixed += b.node(
                "Reshape",
                [both, b.shape(f"r{level}", [1, 4 * REG_MAX + CLASSES, -1])],
                f"level_flat{level}",
            )
    if separate:
        box = b.node("Concat", box_levels, "box_levels", axis=2)[0]
        cls = b.node("Concat", cls_levels, "cls_levels", axis=2)[0]
    else:
        cat = b.node("Concat", mixed, "levels_concat", axis=2)[0]
        split = b.const("split_sizes", np.array([4 * REG_MAX, CLASSES], dtype=np.int64))
        box, cls = b.node("Split", [cat, split], "box_cls_split", outputs=2, axis=1)
    dist = b.node("Reshape", [box, b.shape("dfl_shape", [1, 4, REG_MAX, total])], "dfl_reshape")[0]
    dist = b.node("Transpose", [dist], "dfl_transpose", perm=[0, 2, 1, 3])[0]
    dist = b.node("Softmax", [dist], "dfl_softmax", axis=1)[0]
    projection = np.arange(REG_MAX, dtype=np.float32).reshape(1, REG_MAX, 1, 1)
    dist = b.conv(dist, REG_MAX, 1, "dfl_conv", weight=projection)
    dist = b.node("Reshape", [dist, b.shape("ltrb_shape", [1, 4, total])], "dfl_flat")[0]
    grid = b.const("anchor_points", np.ones((1, 2, total), dtype=np.float32))
    lt, rb = b.node(
        "Split",
        [dist, b.const("lt_rb", np.array([2, 2], dtype=np.int64))],
        "ltrb_split",
        outputs=2,
        axis=1,
    )
    x0y0 = b.node("Sub", [grid, lt], "x0y0")[0]
    x1y1 = b.node("Add", [grid, rb], "x1y1")[0]
    xyxy = b.node("Concat", [x0y0, x1y1], "xyxy", axis=1)[0]
    stride = b.const("stride_row", np.full((1, 1, total), 8.0, dtype=np.float32))
    boxes = b.node("Mul", [xyxy, stride], "to_pixels")[0]
    scores = b.node("Sigmoid", [cls], "scores")[0]
    return b.node("Concat", [boxes, scores], "output_concat", axis=1)[0]


def _v5_head(b: _Builder, features, anchors) -> str:
    levels = []
    for level, feature in enumerate(features):
        raw = b.conv(feature, 8, 5 + CLASSES, f"detect{level}")
        side = int(np.sqrt(anchors[level]))
        raw = b.node(
            "Reshape",
            [raw, b.shape(f"r{level}", [1, 1, 5 + CLASSES, side, side])],
            f"reshape{level}",
        )[0]
        raw = b.node("Transpose", [raw], f"transpose{level}", perm=[0, 1, 3, 4, 2])[0]
        act = b.node("Sigmoid", [raw], f"sigmoid{level}")[0]
        sizes = b.const(f"sizes{level}", np.array([2, 2, 1 + CLASSES], dtype=np.int64))
        xy, wh, conf = b.node("Split", [act, sizes], f"split{level}", outputs=3, axis=4)
        grid = b.const(f"grid{level}", np.zeros((1, 1, side, side, 2), dtype=np.float32))
        xy = b.node(
            "Add",
            [b.node("Mul", [xy, b.const(f"two{level}", np.float32(2.0))], f"xy2_{level}")[0], grid],
            f"xy_{level}",
        )[0]
        wh = b.node("Mul", [wh, wh], f"wh_{level}")[0]
        cat = b.node("Concat", [xy, wh, conf], f"decoded{level}", axis=4)[0]
        levels += b.node(
            "Reshape", [cat, b.shape(f"flat{level}", [1, -1, 5 + CLASSES])], f"flat{level}"
        )
    return b.node("Concat", levels, "levels_concat", axis=1)[0]


def _yolox_head(b: _Builder, features, anchors, total) -> str:
    levels = []
    for level, feature in enumerate(features):
        reg = b.conv(feature, 8, 4, f"reg{level}")
        obj = b.node("Sigmoid", [b.conv(feature, 8, 1, f"obj{level}")], f"obj_sig{level}")[0]
        cls = b.node("Sigmoid", [b.conv(feature, 8, CLASSES, f"cls{level}")], f"cls_sig{level}")[0]
        cat = b.node("Concat", [reg, obj, cls], f"level_concat{level}", axis=1)[0]
        levels += b.node(
            "Reshape", [cat, b.shape(f"r{level}", [1, 5 + CLASSES, -1])], f"flat{level}"
        )
    cat = b.node("Concat", levels, "levels_concat", axis=2)[0]
    rows = b.node("Transpose", [cat], "to_rows", perm=[0, 2, 1])[0]

    def part(start: int, end: int, name: str) -> str:
        inputs = [
            rows,
            b.shape(f"{name}_s", [start]),
            b.shape(f"{name}_e", [end]),
            b.shape(f"{name}_a", [2]),
        ]
        return b.node("Slice", inputs, name)[0]

    grid = b.const("grid", np.zeros((1, total, 2), dtype=np.float32))
    strides = b.const("strides", np.full((1, total, 1), 8.0, dtype=np.float32))
    xy = b.node("Mul", [b.node("Add", [part(0, 2, "xy"), grid], "xy_grid")[0], strides], "xy_px")[0]
    wh = b.node("Mul", [b.node("Exp", [part(2, 4, "wh")], "wh_exp")[0], strides], "wh_px")[0]
    return b.node("Concat", [xy, wh, part(4, 5 + CLASSES, "scores")], "decoded", axis=2)[0]
