"""The pure part of the TensorRT backend: dtypes, I/O planning, version dispatch, engine headers."""

from __future__ import annotations

import ast
import json
import struct

import numpy as np
import pytest

from edge.backends import trt_plan
from edge.backends.trt_plan import TensorInfo
from edge.errors import JetkitError

# A YOLOv8-style detector: images [B,3,640,640] → [B, 4+80, 8400], batch 1..8 (opt 4).
DYNAMIC = [
    TensorInfo(
        "images",
        True,
        (-1, 3, 640, 640),
        "float32",
        ((1, 3, 640, 640), (4, 3, 640, 640), (8, 3, 640, 640)),
    ),
    TensorInfo("output0", False, (-1, 84, 8400), "float32"),
]
STATIC = [
    TensorInfo("images", True, (1, 3, 320, 320), "float16"),
    TensorInfo("output0", False, (1, 84, 2100), "float16"),
]


# --- dtypes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trt_name", "numpy_name"),
    [
        ("DataType.FLOAT", "float32"),
        ("DataType.HALF", "float16"),
        ("DataType.INT8", "int8"),
        ("DataType.INT32", "int32"),
        ("DataType.INT64", "int64"),
        ("DataType.BOOL", "bool"),
        ("DataType.UINT8", "uint8"),
        ("FLOAT", "float32"),
        ("half", "float16"),
    ],
)
def test_numpy_dtype_name_maps_every_host_type(trt_name: str, numpy_name: str) -> None:
    assert trt_plan.numpy_dtype_name(trt_name) == numpy_name
    assert np.dtype(numpy_name).name == numpy_name


@pytest.mark.parametrize("trt_name", ["DataType.BF16", "DataType.FP8", "DataType.INT4", "FP4"])
def test_numpy_dtype_name_refuses_types_without_numpy_twin(trt_name: str) -> None:
    short = trt_name.rsplit(".", 1)[-1]
    with pytest.raises(JetkitError, match=rf"type {short} has no numpy equivalent.*rebuild"):
        trt_plan.numpy_dtype_name(trt_name)


# --- I/O planning ------------------------------------------------------------------------------


def test_plan_dynamic_batch_follows_the_request_and_allocates_for_the_maximum() -> None:
    plan = trt_plan.plan_io(DYNAMIC, batch=3)

    assert plan.batch == 3 and plan.max_batch == 8
    assert plan.shapes == {"images": (3, 3, 640, 640), "output0": (3, 84, 8400)}
    assert plan.size_bytes == {"images": 3 * 3 * 640 * 640 * 4, "output0": 3 * 84 * 8400 * 4}
    assert plan.buffer_size_bytes == {
        "images": 8 * 3 * 640 * 640 * 4,
        "output0": 8 * 84 * 8400 * 4,
    }


def test_plan_buffers_are_the_same_for_every_batch() -> None:
    sizes = {b: trt_plan.plan_io(DYNAMIC, b).buffer_size_bytes for b in (1, 5, 8)}
    assert sizes[1] == sizes[5] == sizes[8]
    assert all(
        trt_plan.plan_io(DYNAMIC, b).size_bytes[name] <= sizes[1][name]
        for b in (1, 5, 8)
        for name in sizes[1]
    )


def test_plan_static_engine_uses_its_declared_shapes() -> None:
    plan = trt_plan.plan_io(STATIC, batch=1)

    assert plan.max_batch == 1
    assert plan.shapes == {"images": (1, 3, 320, 320), "output0": (1, 84, 2100)}
    assert plan.buffer_size_bytes == {"images": 3 * 320 * 320 * 2, "output0": 84 * 2100 * 2}
    assert plan.size_bytes == plan.buffer_size_bytes


def test_plan_static_engine_refuses_another_batch() -> None:
    with pytest.raises(JetkitError, match=r"fixed batch of 1, got 2.*--max-batch 2"):
        trt_plan.plan_io(STATIC, batch=2)


def test_plan_batch_above_profile_maximum_names_max_and_fix() -> None:
    with pytest.raises(JetkitError) as error:
        trt_plan.plan_io(DYNAMIC, batch=9)
    message = str(error.value)
    assert "batch 9 is larger than the engine's profile maximum 8" in message
    assert "jetkit build --max-batch 9" in message
    assert "\n" not in message


def test_plan_batch_below_profile_minimum() -> None:
    tensors = [
        TensorInfo("x", True, (-1, 4), "float32", ((2, 4), (2, 4), (4, 4))),
        TensorInfo("y", False, (-1, 2), "float32"),
    ]
    with pytest.raises(JetkitError, match="batch 1 is smaller than the engine's profile minimum 2"):
        trt_plan.plan_io(tensors, batch=1)


def test_plan_other_dynamic_input_dims_take_the_profile_opt() -> None:
    # Ultralytics `dynamic=True` exports: batch, height and width all dynamic.
    tensors = [
        TensorInfo(
            "images",
            True,
            (-1, 3, -1, -1),
            "float32",
            ((1, 3, 32, 32), (2, 3, 640, 480), (4, 3, 1280, 1280)),
        ),
        TensorInfo("output0", False, (-1, 84, 6300), "float32"),
    ]
    plan = trt_plan.plan_io(tensors, batch=2)
    assert plan.shapes["images"] == (2, 3, 640, 480)
    assert plan.buffer_size_bytes["images"] == 4 * 3 * 640 * 480 * 4


def test_plan_max_batch_is_the_tightest_over_inputs() -> None:
    tensors = [
        TensorInfo("a", True, (-1, 2), "float32", ((1, 2), (2, 2), (8, 2))),
        TensorInfo("b", True, (-1, 3), "int32", ((1, 3), (2, 3), (4, 3))),
        TensorInfo("out", False, (-1,), "float32"),
    ]
    assert trt_plan.batch_range(tensors) == (1, 4)
    plan = trt_plan.plan_io(tensors, batch=4)
    assert plan.shapes == {"a": (4, 2), "b": (4, 3), "out": (4,)}
    assert plan.buffer_size_bytes == {"a": 32, "b": 48, "out": 16}


def test_plan_mixed_dtypes_size_by_itemsize() -> None:
    tensors = [
        TensorInfo("img", True, (-1, 3, 4, 4), "uint8", ((1, 3, 4, 4),) * 2 + ((2, 3, 4, 4),)),
        TensorInfo("num", False, (-1, 1), "int64"),
        TensorInfo("boxes", False, (-1, 10, 4), "float16"),
        TensorInfo("keep", False, (-1, 10), "bool"),
    ]
    plan = trt_plan.plan_io(tensors, batch=1)
    assert plan.size_bytes == {"img": 48, "num": 8, "boxes": 80, "keep": 10}
    assert plan.buffer_size_bytes == {"img": 96, "num": 16, "boxes": 160, "keep": 20}


def test_plan_refuses_outputs_dynamic_beyond_batch() -> None:
    tensors = [DYNAMIC[0], TensorInfo("output0", False, (-1, 84, -1), "float32")]
    with pytest.raises(JetkitError, match=r"output 'output0' has a dynamic dimension other"):
        trt_plan.plan_io(tensors, batch=1)


def test_plan_refuses_dynamic_input_without_profile() -> None:
    tensors = [TensorInfo("images", True, (-1, 3, 8, 8), "float32"), DYNAMIC[1]]
    with pytest.raises(JetkitError, match="input 'images' is dynamic but .* no optimisation"):
        trt_plan.plan_io(tensors, batch=1)


def test_plan_refuses_an_engine_without_inputs() -> None:
    with pytest.raises(JetkitError, match="no inputs"):
        trt_plan.plan_io([DYNAMIC[1]], batch=1)


def test_resolve_output_shape_keeps_dynamic_batch() -> None:
    assert trt_plan.resolve_output_shape((-1, 84, -1), (8, 84, 8400)) == (-1, 84, 8400)
    assert trt_plan.resolve_output_shape((1, 84, 8400), (1, 84, 8400)) == (1, 84, 8400)
    assert trt_plan.resolve_output_shape((), ()) == ()


# --- input checks ------------------------------------------------------------------------------


def test_check_inputs_returns_the_batch() -> None:
    batch = np.zeros((5, 3, 640, 640), np.float32)
    assert trt_plan.check_inputs(DYNAMIC, [batch]) == 5


def test_check_inputs_accepts_same_kind_casts() -> None:
    assert trt_plan.check_inputs(STATIC, [np.zeros((1, 3, 320, 320), np.float32)]) == 1
    assert trt_plan.check_inputs(DYNAMIC, [np.zeros((1, 3, 640, 640), np.float64)]) == 1
    assert trt_plan.check_inputs(DYNAMIC, [np.zeros((1, 3, 640, 640), np.uint8)]) == 1


def test_check_inputs_refuses_wrong_count() -> None:
    with pytest.raises(JetkitError, match=r"takes 1 input\(s\) \(images\), got 2"):
        trt_plan.check_inputs(DYNAMIC, [np.zeros((1, 3, 640, 640), np.float32)] * 2)
    with pytest.raises(JetkitError, match="got 0"):
        trt_plan.check_inputs(DYNAMIC, [])


def test_check_inputs_refuses_wrong_rank() -> None:
    with pytest.raises(JetkitError, match=r"input 'images' has shape \(3, 640, 640\).*4 dim"):
        trt_plan.check_inputs(DYNAMIC, [np.zeros((3, 640, 640), np.float32)])


def test_check_inputs_refuses_unsafe_dtype() -> None:
    tensors = [TensorInfo("ids", True, (2,), "int32"), TensorInfo("out", False, (2,), "float32")]
    with pytest.raises(JetkitError, match=r"input 'ids' is float32, the engine takes int32"):
        trt_plan.check_inputs(tensors, [np.zeros(2, np.float32)])


def test_check_input_shapes_names_the_expected_shape() -> None:
    plan = trt_plan.plan_io(DYNAMIC, batch=2)
    trt_plan.check_input_shapes(plan, DYNAMIC, [(2, 3, 640, 640)])
    with pytest.raises(JetkitError, match=r"input 'images' has shape \(2, 3, 480, 640\).*"):
        trt_plan.check_input_shapes(plan, DYNAMIC, [(2, 3, 480, 640)])


# --- Ultralytics engine header -----------------------------------------------------------------

METADATA = {
    "description": "Ultralytics YOLOv8n model trained on coco.yaml",
    "stride": 32,
    "task": "detect",
    "batch": 1,
    "imgsz": [640, 640],
    "names": {"0": "person", "1": "bicycle"},
    "args": {"half": True, "int8": False, "dynamic": False},
}
# TensorRT 8.x/10.x plans begin with a 4-byte magic tag; as a length it is far too large.
RAW_PLAN = b"ftrt" + bytes(range(256)) * 8


def ultralytics_engine(metadata: dict[str, object], plan: bytes) -> bytes:
    """As Ultralytics' exporter writes it: int32 LE length of json.dumps(meta), meta, plan."""
    meta = json.dumps(metadata)
    return len(meta).to_bytes(4, byteorder="little", signed=True) + meta.encode() + plan


def test_split_engine_file_round_trips_an_ultralytics_engine() -> None:
    metadata, plan = trt_plan.split_engine_file(ultralytics_engine(METADATA, RAW_PLAN))
    assert metadata == METADATA
    assert plan == RAW_PLAN


def test_split_engine_file_leaves_a_raw_plan_alone() -> None:
    assert trt_plan.split_engine_file(RAW_PLAN) == (None, RAW_PLAN)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x02\x00",
        struct.pack("<i", 2) + b"{}",  # a header with no plan behind it
        struct.pack("<i", -5) + b"{}" * 10,
        struct.pack("<i", 1 << 30) + b"{}" * 10,  # longer than the file
        struct.pack("<i", 4) + b"\xff\xfe\x00\x01" + b"plan",  # not UTF-8
        struct.pack("<i", 6) + b"{name:" + b"plan",  # not JSON
        struct.pack("<i", 9) + b'["a","b"]' + b"plan",  # JSON, but not an object
        struct.pack("<i", 1) + b"7" + b"plan",  # too short to be an object
    ],
)
def test_split_engine_file_does_not_misread_plans_as_headers(data: bytes) -> None:
    assert trt_plan.split_engine_file(data) == (None, data)


def test_split_engine_file_corrupt_header_is_kept_as_plan() -> None:
    good = ultralytics_engine(METADATA, RAW_PLAN)
    corrupt = good[:10] + b"\x00" + good[11:]  # NUL inside the JSON text
    assert trt_plan.split_engine_file(corrupt) == (None, corrupt)


def test_header_metadata_props_match_ultralytics_onnx_metadata() -> None:
    props = trt_plan.header_metadata_props(METADATA)

    assert props["task"] == "detect"
    assert props["description"] == METADATA["description"]
    assert ast.literal_eval(props["names"]) == {0: "person", 1: "bicycle"}
    assert ast.literal_eval(props["imgsz"]) == [640, 640]
    assert ast.literal_eval(props["stride"]) == 32
    assert ast.literal_eval(props["args"]) == {"half": True, "int8": False, "dynamic": False}
    assert all(isinstance(v, str) for v in props.values())


def test_header_metadata_props_keep_non_numeric_name_keys() -> None:
    props = trt_plan.header_metadata_props({"names": {"a": "cat"}})
    assert ast.literal_eval(props["names"]) == {"a": "cat"}


# --- DLA core at run time ----------------------------------------------------------------------


def test_the_dla_core_comes_from_the_request_then_the_manifest_then_the_header() -> None:
    assert trt_plan.runtime_dla_core(None, None, None) is None
    assert trt_plan.runtime_dla_core(None, 1, None) == 1  # a jetkit engine built for core 1
    assert trt_plan.runtime_dla_core(None, None, {"dla": "1"}) == 1  # Ultralytics' header
    assert trt_plan.runtime_dla_core(None, 0, {"dla": "1"}) == 0
    assert trt_plan.runtime_dla_core(1, 0, None) == 1
    with pytest.raises(JetkitError, match="DLA core 'x' is not a number"):
        trt_plan.runtime_dla_core(None, None, {"dla": "x"})
