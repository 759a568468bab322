"""The sensitivity metric, ranking and selection on hand-made arrays; the candidates of a real
model."""

import numpy as np
import onnx
import pytest

from calibration.artifacts import name_unnamed_nodes
from calibration.islands import float_islands
from calibration.sensitivity import (
    AutoExclusion,
    NodeSensitivity,
    candidate_nodes,
    check_auto_exclude,
    output_error,
    rank_nodes,
    select_nodes,
)
from calibration.trt_rules.graph import GraphView
from edge.errors import JetkitError


def yolov8_outputs(rng, images=2, anchors=50):
    """`[B, 4+2, N]`: boxes in pixels (0..640), two class scores in [0, 1]."""
    boxes = rng.uniform(0, 640, (images, 4, anchors))
    scores = rng.uniform(0, 1, (images, 2, anchors))
    return np.concatenate([boxes, scores], axis=1).astype(np.float32)


def test_identical_outputs_have_no_error():
    outputs = yolov8_outputs(np.random.default_rng(0))
    assert output_error(outputs, outputs.copy(), "yolov8") == 0.0


def test_a_score_channel_counts_as_much_as_a_box_channel():
    rng = np.random.default_rng(1)
    outputs_fp32 = yolov8_outputs(rng).astype(np.float64)
    noise_bn = rng.normal(0, 1, (2, 50))
    moved_box, moved_score = outputs_fp32.copy(), outputs_fp32.copy()
    moved_box[:, 0] += 0.1 * outputs_fp32[:, 0].std() * noise_bn
    moved_score[:, 4] += 0.1 * outputs_fp32[:, 4].std() * noise_bn
    box_error = output_error(outputs_fp32, moved_box, "yolov8")
    assert box_error > 0
    assert output_error(outputs_fp32, moved_score, "yolov8") == pytest.approx(box_error)
    # One channel of six moved by RMS 0.1 std: about 0.1 / 6.
    assert box_error == pytest.approx(0.1 / 6, rel=0.2)


def test_the_channel_axis_follows_the_format():
    rng = np.random.default_rng(2)
    outputs_bcn = yolov8_outputs(rng)
    moved_bcn = outputs_bcn.copy()
    moved_bcn[:, 5] += 0.05
    outputs_bnc, moved_bnc = outputs_bcn.transpose(0, 2, 1), moved_bcn.transpose(0, 2, 1)
    expected = output_error(outputs_bcn, moved_bcn, "yolov8")
    assert output_error(outputs_bnc, moved_bnc, "yolov5") == pytest.approx(expected)
    assert output_error(outputs_bnc, moved_bnc, "yolox") == pytest.approx(expected)
    # Read in the wrong layout, the same change is spread over anchors, not one channel.
    assert output_error(outputs_bcn, moved_bcn, "yolov5") != pytest.approx(expected)


def test_a_constant_channel_counts_its_error_unscaled():
    outputs_fp32 = np.zeros((1, 5, 10), np.float32)
    moved = outputs_fp32.copy()
    moved[:, 4] = 0.5
    assert output_error(outputs_fp32, moved, "yolov8") == pytest.approx(0.5 / 5)


def test_formats_without_raw_outputs_are_refused():
    outputs = np.zeros((1, 10, 6), np.float32)
    with pytest.raises(JetkitError, match=r"raw \(pre-NMS\) outputs .* 'end2end'"):
        output_error(outputs, outputs, "end2end")
    with pytest.raises(JetkitError, match="'end2end'; keep nodes in float with --exclude"):
        check_auto_exclude(1, "end2end")
    check_auto_exclude(0, "end2end")
    with pytest.raises(JetkitError, match="--auto-exclude must be >= 0, got -1"):
        check_auto_exclude(-1, "yolov8")
    with pytest.raises(JetkitError, match="not a rank-3 'yolov8' output"):
        output_error(outputs[0], outputs[0], "yolov8")


def test_ranking_puts_the_largest_reduction_first_and_is_deterministic():
    ranking = rank_nodes(
        0.5, [("c", "Conv", 0.4), ("a", "Gemm", 0.2), ("b", "Conv", 0.4), ("d", "Conv", 0.6)]
    )
    assert [s.node for s in ranking] == ["a", "b", "c", "d"]
    assert ranking[0] == NodeSensitivity("a", "Gemm", 0.2, pytest.approx(0.3))
    assert ranking[-1].error_reduction == pytest.approx(-0.1)


def test_selection_keeps_nodes_that_still_help_together():
    ranking = rank_nodes(
        0.5, [("a", "Conv", 0.2), ("b", "Conv", 0.3), ("c", "Conv", 0.4), ("d", "Conv", 0.6)]
    )
    # b helps alone but not on top of a (their errors cancelled); c helps on top of a.
    errors_with = {("a",): 0.2, ("a", "b"): 0.25, ("a", "c"): 0.1, ("a", "c", "b"): 0.05}
    tried = []

    def error_with(nodes):
        tried.append(nodes)
        return errors_with[nodes]

    assert select_nodes(ranking, 2, 0.5, error_with) == (("a", "c"), 0.1)
    assert tried == [("a",), ("a", "b"), ("a", "c")]
    # d makes things worse alone: never tried, even when fewer nodes than asked were found.
    tried.clear()
    assert select_nodes(ranking, 3, 0.5, error_with) == (("a", "c"), 0.1)
    assert ("a", "c", "d") not in tried
    assert select_nodes(ranking, 0, 0.5, error_with) == ((), 0.5)


def test_the_record_lists_the_top_of_the_ranking():
    ranking = rank_nodes(0.5, [(f"n{i}", "Conv", 0.5 - i / 100) for i in range(12)])
    found = AutoExclusion(3, ("n11", "n10"), ranking, 0.5, 0.3, 8)
    record = found.provenance()
    assert [r["node"] for r in record["ranking"]] == [f"n{i}" for i in range(11, 1, -1)]
    assert record["error_before"] == 0.5 and record["error_after"] == 0.3
    assert record["requested"] == 3 and record["images"] == 8
    lines = found.table(top=3).splitlines()
    assert [line.split()[-1] for line in lines[2:5]] == ["n11", "n10", "n9"]
    assert lines[5].startswith("auto-excluded 2 node(s) of 3 (no other node")
    assert lines[5].endswith("output error 0.5000 → 0.3000:")
    assert lines[6:] == ["  n11", "  n10"]


def test_candidates_are_the_weighted_nodes_outside_the_float_islands(blob_onnx):
    """The sample detector has four convolutions: two read the image (`first-conv` islands),
    two remain."""
    model = onnx.load(blob_onnx)
    name_unnamed_nodes(model)
    islands = [i.node for i in float_islands(GraphView(model))]
    candidates = candidate_nodes(model, islands)
    assert [op for _, op in candidates] == ["Conv"] * 2
    assert candidate_nodes(model, [*islands, candidates[0][0]]) == candidates[1:]
