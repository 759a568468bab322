"""Float islands are found from a graph's structure: the same parts of every YOLO family's head
(built node for node as each exporter writes it, `helpers.yolo_heads`) and of jetkit's own
export, whatever the nodes are called; quantized, those parts carry no Q/DQ."""

import numpy as np
import onnx
import pytest
from yolo_heads import REG_MAX, STYLES, head_manifest, yolo_head

from calibration.cpu_graph import float_softmaxes
from calibration.int8 import quantize_int8
from calibration.islands import (
    REASONS,
    describe_islands,
    float_islands,
    is_projection_conv,
    island_counts,
)
from calibration.trt_rules.check import DEFAULT_VERSIONS, check_versions
from calibration.trt_rules.graph import GraphView

# The nodes each family keeps in float besides its decode tail.
EXPECTED = {
    "v8-split": {
        "first-conv": {"stem"},
        "dfl": {"dfl_softmax", "dfl_conv"},
        "box-class-concat": {"level_concat0", "level_concat1", "levels_concat"},
    },
    "v8-separate": {"first-conv": {"stem"}, "dfl": {"dfl_softmax", "dfl_conv"}},
    "yolov5": {"first-conv": {"stem"}},
    "yolox": {
        "first-conv": {"stem"},
        "box-class-concat": {"level_concat0", "level_concat1", "levels_concat"},
    },
}
LEARNED = {
    "v8-split": {"box0", "box1", "cls0", "cls1"},
    "v8-separate": {"box0", "box1", "cls0", "cls1"},
    "yolov5": {"detect0", "detect1"},
    "yolox": {"reg0", "reg1", "obj0", "obj1", "cls0", "cls1"},
}


def islands_by_reason(model):
    found = {}
    for island in float_islands(GraphView(model)):
        found.setdefault(island.reason, set()).add(island.node)
    return found


@pytest.mark.parametrize("style", STYLES)
def test_every_family_keeps_its_stem_dfl_concat_and_decode_in_float(style):
    found = islands_by_reason(yolo_head(style))
    for reason, nodes in EXPECTED[style].items():
        assert found.pop(reason) == nodes
    # The rest is the decode: everything after the head's convolutions, none of them included.
    decode = found.pop("decode")
    assert "output_identity" in decode and not decode & LEARNED[style]
    assert not found


@pytest.mark.parametrize("style", STYLES)
def test_islands_do_not_depend_on_node_names(style):
    model = yolo_head(style)
    renamed = {node.name: f"n{i}" for i, node in enumerate(model.graph.node)}
    for node in model.graph.node:
        node.name = renamed[node.name]
    expected = {
        reason: {renamed[n] for n in nodes}
        for reason, nodes in islands_by_reason(yolo_head(style)).items()
    }
    assert islands_by_reason(model) == expected


def test_only_a_fixed_arange_convolution_is_a_dfl_projection():
    model = yolo_head("v8-split")
    view = GraphView(model)
    convs = {node.name: node for node in view.nodes if node.op_type == "Conv"}
    assert [name for name, node in convs.items() if is_projection_conv(view, node)] == ["dfl_conv"]
    # A learned 1x1 convolution whose weights merely happen to be close is not one.
    weight = next(i for i in model.graph.initializer if i.name == "dfl_conv.w")
    nudged = np.arange(REG_MAX, dtype=np.float32).reshape(1, REG_MAX, 1, 1) + 1e-3
    weight.CopyFrom(onnx.numpy_helper.from_array(nudged, "dfl_conv.w"))
    assert not is_projection_conv(GraphView(model), convs["dfl_conv"])


def test_a_graph_without_learned_layers_has_no_islands(tmp_path):
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Sigmoid", ["images"], ["output0"], name="only")],
        "g",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 3, 8, 8])],
    )
    islands = float_islands(GraphView(helper.make_model(graph)))
    assert [i.reason for i in islands] == ["decode"]


def test_the_description_names_each_reason_once():
    islands = float_islands(GraphView(yolo_head("v8-split")))
    lines = list(describe_islands(islands))
    counts = island_counts(islands)
    assert list(counts) == [r for r in REASONS if r in counts]
    assert lines == [f"{n} node(s) in float: {REASONS[r]}" for r, n in counts.items()]


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("runtime", ["tensorrt", "cpu"])
def test_quantized_islands_carry_no_qdq_and_pass_tensorrts_rules(
    style, runtime, head_calibration, tmp_path
):
    source = tmp_path / f"{style}.onnx"
    onnx.save(yolo_head(style), source)
    manifest = head_manifest(style)
    result = quantize_int8(
        source, manifest, head_calibration, tmp_path / "q.onnx", runtime=runtime, method="minmax"
    )
    recorded = result.manifest.provenance["calibration"]["float_islands"]
    assert recorded == [i.to_dict() for i in result.islands] and recorded
    quantized = onnx.load(tmp_path / "q.onnx")
    view = GraphView(quantized)
    dequantized = {n.output[0] for n in view.nodes if n.op_type == "DequantizeLinear"}
    island_nodes = [n for n in view.nodes if n.name in {i.node for i in result.islands}]
    island_outputs = {out for node in island_nodes for out in node.output}
    for node in island_nodes:
        # Weights stay float, and no value passes through INT8 between two island nodes.
        if node.op_type == "Conv":
            assert node.input[1] not in dequantized, node.name
        for name in set(node.input) & dequantized:
            quantize = view.producer[view.producer[name].input[0]]
            assert quantize.input[0] not in island_outputs, node.name
        # TensorRT's layout quantizes only the inputs of layers that run in INT8; ONNX Runtime's
        # CPU format may hand an island a value its producer (a QLinearConv) wrote in INT8.
        if runtime == "tensorrt":
            assert not dequantized & set(node.input), node.name
    # The head's learned convolutions are quantized: INT8 still does the work.
    for name in LEARNED[style]:
        conv = next(n for n in view.nodes if n.name == name)
        assert set(conv.input[:2]) <= dequantized
    # ONNX Runtime's CPU runs an island's softmax faster as element-wise arithmetic.
    if runtime == "cpu":
        assert not float_softmaxes(view)
    if runtime == "tensorrt":
        errors = [
            (f.rule.id, f.message, found)
            for f, found in check_versions(quantized, DEFAULT_VERSIONS)
            if f.severity == "error"
        ]
        assert not errors
