"""A small real detector and scenes for it, made on the spot: no download needed.

`build_blob_detector` writes an ONNX model (with `onnx.helper`; `onnx` is imported lazily) that
finds one solid red, green or blue object per class: per-pixel colour masks from a 1×1
convolution, and for each class the box spanning its mask (min/max over coordinate maps) with
the mask's peak as the score. Its output is the `yolov8` format `[B, 4+3, 3+G]`: three colour
anchors, then G anchors from a small stride-8 convolution stack whose scores stay far below any
threshold, so the model costs what a small CNN costs. `draw_blob_scene` draws matching frames with
known boxes, which lets tests check the whole path (letterbox, decode, NMS, inverse transform)
against ground truth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge.manifest import (
    ArtifactSpec,
    InputSpec,
    Manifest,
    OutputSpec,
    embed_manifest,
    save_manifest,
    sidecar_path,
)

BLOB_CLASSES = ("red", "green", "blue")
BLOB_BGR = {"red": (0, 0, 255), "green": (0, 255, 0), "blue": (255, 0, 0)}


def blob_manifest(
    input_hw: tuple[int, int], max_batch: int, dynamic_batch: bool, file_name: str
) -> Manifest:
    return Manifest(
        name=Path(file_name).stem,
        input=InputSpec(
            name="images",
            shape=(max_batch, 3, *input_hw),
            dynamic_batch=dynamic_batch,
            max_batch=max_batch,
        ),
        output=OutputSpec(format="yolov8", names=("output0",)),
        classes=BLOB_CLASSES,
        artifact=ArtifactSpec(file=file_name, kind="onnx", precision="fp32"),
        provenance={"built_by": "edge.samples.build_blob_detector"},
    )


def _blob_graph(input_hw: tuple[int, int], batch: int | str, seed: int) -> Any:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    height, width = input_hw
    if height % 8 or width % 8:
        raise ValueError(f"input size {input_hw} must be a multiple of 8")
    rng = np.random.default_rng(seed)
    inits = []

    def const(name: str, array: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.asarray(array, dtype=np.float32), name))
        return name

    colour_w = np.array([[1, -0.5, -0.5], [-0.5, 1, -0.5], [-0.5, -0.5, 1]])[:, :, None, None]
    xs = np.arange(width, dtype=np.float32).reshape(1, 1, 1, width)
    ys = np.arange(height, dtype=np.float32).reshape(1, 1, height, 1)
    nodes = [
        helper.make_node(
            "Conv", ["images", const("colour_w", colour_w), const("colour_b", [-0.4] * 3)], ["d"]
        ),
        helper.make_node("Mul", ["d", const("ten", np.array(10.0))], ["d10"]),
        helper.make_node(
            "Clip", ["d10", const("zero", np.array(0.0)), const("one", np.array(1.0))], ["mask"]
        ),
        helper.make_node("ReduceMax", ["mask"], ["score"], axes=[2, 3], keepdims=0),
    ]
    inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"))
    edges = {
        "x_hi": ("xs_hi", xs + 1),
        "x_lo_flip": ("xs_flip", width - xs),
        "y_hi": ("ys_hi", ys + 1),
        "y_lo_flip": ("ys_flip", height - ys),
    }
    for out, (cname, values) in edges.items():
        nodes.append(helper.make_node("Mul", ["mask", const(cname, values)], [f"{out}_m"]))
        nodes.append(helper.make_node("ReduceMax", [f"{out}_m"], [out], axes=[2, 3], keepdims=0))
    nodes += [
        helper.make_node("Sub", [const("width", np.array(float(width))), "x_lo_flip"], ["x_lo"]),
        helper.make_node("Sub", [const("height", np.array(float(height))), "y_lo_flip"], ["y_lo"]),
        helper.make_node("Add", ["x_lo", "x_hi"], ["x_sum"]),
        helper.make_node("Add", ["y_lo", "y_hi"], ["y_sum"]),
        helper.make_node("Mul", ["x_sum", const("half", np.array(0.5))], ["cx"]),
        helper.make_node("Mul", ["y_sum", "half"], ["cy"]),
        helper.make_node("Sub", ["x_hi", "x_lo"], ["w"]),
        helper.make_node("Sub", ["y_hi", "y_lo"], ["h"]),
    ]
    for name in ("cx", "cy", "w", "h", "score"):
        nodes.append(helper.make_node("Unsqueeze", [name, "axis1"], [f"{name}_u"]))
    nodes += [
        helper.make_node("Mul", ["score_u", const("eye", np.eye(3)[None])], ["class_rows"]),
        helper.make_node(
            "Concat", ["cx_u", "cy_u", "w_u", "h_u", "class_rows"], ["colour_out"], axis=1
        ),
    ]
    channels = [3, 16, 32, 7]
    feature = "images"
    for layer in range(3):
        c_in, c_out = channels[layer], channels[layer + 1]
        weights = rng.normal(0, 0.05, (c_out, c_in, 3, 3))
        conv_out = f"conv{layer}"
        nodes.append(
            helper.make_node(
                "Conv",
                [feature, const(f"w{layer}", weights), const(f"b{layer}", np.zeros(c_out))],
                [conv_out],
                kernel_shape=[3, 3],
                strides=[2, 2],
                pads=[1, 1, 1, 1],
            )
        )
        feature = conv_out
        if layer < 2:
            nodes.append(helper.make_node("Relu", [conv_out], [f"relu{layer}"]))
            feature = f"relu{layer}"
    grid = (height // 8) * (width // 8)
    inits.append(numpy_helper.from_array(np.array([0, 7, grid], dtype=np.int64), "grid_shape"))
    nodes += [
        helper.make_node("Reshape", [feature, "grid_shape"], ["grid_raw"], allowzero=0),
        helper.make_node(
            "Add",
            ["grid_raw", const("grid_bias", np.array([0, 0, 0, 0, -30, -30, -30])[None, :, None])],
            ["grid_b"],
        ),
        helper.make_node("Sigmoid", ["grid_b"], ["grid_s"]),
        helper.make_node(
            "Mul",
            [
                "grid_s",
                const("grid_scale", np.array([width, height, 64, 64, 1, 1, 1])[None, :, None]),
            ],
            ["grid_out"],
        ),
        helper.make_node("Concat", ["colour_out", "grid_out"], ["output0"], axis=2),
    ]
    graph = helper.make_graph(
        nodes,
        "jetkit_blob_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, height, width])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [batch, 7, 3 + grid])],
        initializer=inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="jetkit"
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def build_blob_detector(
    path: str | Path,
    input_hw: tuple[int, int] = (320, 320),
    max_batch: int = 8,
    dynamic_batch: bool = True,
    manifest_in: str = "embedded",
    metadata: dict[str, str] | None = None,
    seed: int = 0,
) -> Manifest:
    """Write the blob detector to `path`. `manifest_in`: "embedded" (in metadata_props),
    "sidecar" (`<stem>.json`) or "none" (a third-party-like model; `metadata` adds raw
    metadata_props such as Ultralytics' `names`/`imgsz`). Returns the manifest."""
    from edge.atomic import write_bytes_atomic

    path = Path(path)
    batch: int | str = "batch" if dynamic_batch else max_batch
    model = _blob_graph(input_hw, batch, seed)
    manifest = blob_manifest(input_hw, max_batch, dynamic_batch, path.name)
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    if manifest_in == "embedded":
        embed_manifest(model, manifest)
    write_bytes_atomic(path, model.SerializeToString())
    if manifest_in == "sidecar":
        from edge.models import file_sha256

        artifact = ArtifactSpec(
            file=path.name, kind="onnx", precision="fp32", sha256=file_sha256(path)
        )
        save_manifest(manifest.replace(artifact=artifact), sidecar_path(path))
    return manifest


def draw_blob_scene(
    size_wh: tuple[int, int],
    boxes_xyxy: dict[str, tuple[int, int, int, int]],
    seed: int = 0,
) -> np.ndarray:
    """A BGR frame `(H,W,3)`: grey textured background with a solid box per named class."""
    width, height = size_wh
    rng = np.random.default_rng(seed)
    frame = rng.integers(90, 140, (height, width, 3), dtype=np.uint8)
    for name, (x0, y0, x1, y1) in boxes_xyxy.items():
        frame[y0:y1, x0:x1] = BLOB_BGR[name]
    return frame


def write_sample_kit(out_dir: str | Path, input_hw: tuple[int, int] = (640, 640)) -> list[Path]:
    """The sample detector (`blob.onnx`) and three scenes (`images/*.jpg`) in `out_dir`."""
    import cv2

    from edge.atomic import write_bytes_atomic

    out_dir = Path(out_dir)
    written = [out_dir / "blob.onnx"]
    build_blob_detector(written[0], input_hw=input_hw, max_batch=8)
    scenes = {
        "street.jpg": ((1920, 1080), {"red": (200, 300, 700, 800), "blue": (1200, 150, 1700, 500)}),
        "portrait.jpg": ((720, 1280), {"green": (100, 600, 500, 1100)}),
        "square.jpg": (
            (800, 800),
            {"red": (50, 50, 250, 200), "green": (300, 300, 700, 700), "blue": (600, 40, 780, 260)},
        ),
    }
    for seed, (name, (size_wh, boxes)) in enumerate(scenes.items()):
        ok, encoded = cv2.imencode(".jpg", draw_blob_scene(size_wh, boxes, seed=seed))
        path = out_dir / "images" / name
        write_bytes_atomic(path, encoded.tobytes())
        written.append(path)
    return written


if __name__ == "__main__":
    import sys

    for written_path in write_sample_kit(sys.argv[1] if len(sys.argv) > 1 else "runs/demo"):
        print(written_path)
