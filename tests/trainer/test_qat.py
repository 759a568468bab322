"""Quantization-aware fine-tuning (`jetkit calibrate --qat`): the folded model computes what the
trained one did and exports to the same graph; the fake quantization is the runtimes' INT8;
and the command writes a fine-tuned artifact in the PTQ artifact's Q/DQ layout, with its ranges,
or refuses, naming why, and writes nothing."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from cli_helpers import assert_user_error, jetkit
from torch import nn

from calibration.islands import is_projection_conv
from calibration.qat_plan import ConvFakeQuant
from calibration.trt_rules.graph import GraphView
from edge.manifest import load_manifest
from trainer.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from trainer.export import export_checkpoint, export_proto
from trainer.model import DetectionModel, ModelConfig
from trainer.qat import PerChannelInt8, QatConfig, fold_batchnorm, match_convolutions


@pytest.fixture(scope="module")
def student(tiny_run, tiny_data, tmp_path_factory):
    """The tiny run's best checkpoint exported as a user exports it (static batch 1)."""
    from edge.datasets import load_dataset

    images = [s.image_path for s in load_dataset(tiny_data).val]
    out = tmp_path_factory.mktemp("qat-export")
    return export_checkpoint(tiny_run.best_path, out, images).onnx_path


def with_random_statistics(model: nn.Module) -> nn.Module:
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            channels = module.num_features
            module.running_mean.copy_(torch.randn(channels, generator=generator))
            module.running_var.copy_(torch.rand(channels, generator=generator) + 0.5)
            module.weight.data.copy_(torch.randn(channels, generator=generator))
            module.bias.data.copy_(torch.randn(channels, generator=generator))
    return model.eval()


def test_folding_batchnorm_keeps_the_outputs_and_the_exported_graph(tmp_path):
    model = with_random_statistics(DetectionModel(ModelConfig(num_classes=3, size="t")))
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        before = model(x, raw=False)
    exported_before = export_proto(model, (64, 64), False, 1, 17, tmp_path / "a.onnx")
    assert fold_batchnorm(model) > 0
    with torch.no_grad():
        after = model(x, raw=False)
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-3)
    exported_after = export_proto(model, (64, 64), False, 1, 17, tmp_path / "b.onnx")
    assert [n.name for n in exported_after.graph.node] == [
        n.name for n in exported_before.graph.node
    ]


def test_weights_are_fake_quantized_per_channel_to_symmetric_int8():
    weight = torch.randn(4, 3, 3, 3) * torch.tensor([0.01, 0.1, 1.0, 10.0])[:, None, None, None]
    quantized = PerChannelInt8()(weight)
    scale = weight.abs().amax(dim=(1, 2, 3)) / 127
    levels = quantized / scale[:, None, None, None]
    torch.testing.assert_close(levels, levels.round(), rtol=0, atol=1e-3)
    assert levels.abs().max() <= 127 + 1e-3
    # Each channel keeps its own resolution: the error is at most half a step of its scale.
    error = (quantized - weight).abs().amax(dim=(1, 2, 3))
    assert torch.all(error <= scale / 2 + 1e-7)


def test_the_fine_tuning_options_are_checked():
    for bad in ({"epochs": 0}, {"epochs": 1, "lr": 0.0}, {"epochs": 1, "batch": 0}):
        with pytest.raises(Exception, match="--qat"):
            QatConfig(**bad)


def test_layers_are_found_by_their_folded_weights_whatever_their_names(tiny_run, student):
    """The plan names graph nodes; the trainer finds the torch layers by weights alone, and a
    checkpoint holding other weights is refused."""
    model = model_from_checkpoint(load_checkpoint(tiny_run.best_path)).float()
    fold_batchnorm(model)
    graph = onnx.load(student)
    plans = conv_fake_quants_of_float(graph)
    pairs = match_convolutions(model, plans)
    assert len(pairs) == len(plans) == len({id(conv) for conv, _ in pairs})
    other = model_from_checkpoint(load_checkpoint(tiny_run.best_path)).float()
    with torch.no_grad():
        for conv in other.modules():
            if isinstance(conv, nn.Conv2d):
                conv.weight.add_(0.01)
    fold_batchnorm(other)
    with pytest.raises(Exception, match="does not hold the model that was exported"):
        match_convolutions(other, plans)


def conv_fake_quants_of_float(graph):
    """A plan for every learned convolution of a float graph (unit input scale), to test
    matching; the box distributions' fixed projection stays float in every INT8 artifact."""
    view = GraphView(graph)
    return [
        ConvFakeQuant(n.name, view.constant_array(n.input[1]), 1.0, 0, 0, 255)
        for n in view.nodes
        if n.op_type == "Conv" and not is_projection_conv(view, n)
    ]


def quantized_convs(path):
    view = GraphView(onnx.load(path))
    return {
        n.name
        for n in view.nodes
        if n.op_type == "Conv" and view.producer_op(n.input[0]) == "DequantizeLinear"
    }


def qdq_parameters(path):
    """Each QuantizeLinear's input tensor → its scale: the activation ranges used."""
    view = GraphView(onnx.load(path))
    return {
        n.input[0]: float(view.constant_array(n.input[1]))
        for n in view.nodes
        if n.op_type == "QuantizeLinear" and view.is_activation(n.input[0])
    }


@pytest.mark.parametrize("runtime", ["cpu", "tensorrt"])
def test_qat_writes_the_ptq_layout_with_fine_tuned_weights(
    runtime, student, tiny_run, tiny_data, tmp_path
):
    common = ["--precision", "int8", "--runtime", runtime, "--data", tiny_data, "--images", "8"]
    ptq = jetkit("calibrate", student, *common, "--out", tmp_path / "ptq")
    assert ptq.returncode == 0, ptq.stderr
    qat = jetkit("calibrate", student, *common, "--qat", "1", "--out", tmp_path / "qat")
    assert qat.returncode == 0, qat.stderr
    assert "qat epoch 1/1" in qat.stderr and "fine-tuned: loss" in qat.stderr
    ptq_path, qat_path = tmp_path / "ptq" / "model-int8.onnx", tmp_path / "qat" / "model-int8.onnx"

    # The same layers in INT8, the same activation scales (QAT trained against them), the same
    # float islands; different weights.
    assert quantized_convs(qat_path) == quantized_convs(ptq_path)
    assert qdq_parameters(qat_path) == pytest.approx(qdq_parameters(ptq_path))
    ptq_manifest = load_manifest(tmp_path / "ptq" / "model-int8.json")
    manifest = load_manifest(tmp_path / "qat" / "model-int8.json")
    calibration = manifest.provenance["calibration"]
    assert calibration["float_islands"] == ptq_manifest.provenance["calibration"]["float_islands"]
    assert calibration["method"] == ptq_manifest.provenance["calibration"]["method"]
    record = calibration["qat"]
    assert record["epochs"] == 1 and record["int8_layers"] == len(quantized_convs(qat_path))
    assert record["checkpoint"].endswith("best.pt")
    assert manifest.provenance["source"]["file"] == str(student)
    ptq_weights = {
        i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(ptq_path).graph.initializer
    }
    qat_weights = {
        i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(qat_path).graph.initializer
    }
    changed = [
        name
        for name, value in qat_weights.items()
        if name in ptq_weights and value.shape == ptq_weights[name].shape and value.ndim == 4
        and not np.array_equal(value, ptq_weights[name])
    ]  # fmt: skip
    assert changed
    # And the artifact runs in ONNX Runtime like any other, on what the gate measures.
    from edge.detector import Detector

    detector = Detector.open(qat_path)
    assert detector.manifest.artifact.precision == "int8"


def test_qat_refuses_what_it_cannot_fine_tune_and_writes_nothing(
    student, tiny_run, tiny_data, ultralytics_like_onnx, tmp_path
):
    int8 = ["--precision", "int8", "--data", tiny_data, "--images", "8"]
    out = tmp_path / "out"
    cases = [
        (["calibrate", student, "--precision", "fp16", "--qat", "1"], "--precision int8"),
        (["calibrate", student, *int8, "--qat", "0"], "--qat must be"),
        (
            ["calibrate", student, "--precision", "int8", "--data", tiny_data.parent, "--qat", "1"],
            "must be a data.yaml",
        ),
        (
            ["calibrate", ultralytics_like_onnx, *int8, "--qat", "1"],
            "records no training checkpoint",
        ),
        (
            ["calibrate", student, *int8, "--qat", "1", "--checkpoint", tmp_path / "none.pt"],
            "does not exist",
        ),
    ]
    for args, fragment in cases:
        assert_user_error(jetkit(*args, "--out", out), fragment, progress=True)
    # Another checkpoint than the one exported: found out after the PTQ, before anything is
    # written.
    other = load_checkpoint(tiny_run.best_path)
    other["state_dict"] = {
        k: v + 0.01 if v.is_floating_point() else v for k, v in other["state_dict"].items()
    }
    save_checkpoint(other, tmp_path / "other.pt")
    result = jetkit(
        "calibrate", student, *int8, "--qat", "1", "--checkpoint", tmp_path / "other.pt",
        "--out", out,
    )  # fmt: skip
    assert_user_error(result, "does not hold the model that was exported", progress=True)
    assert not out.exists() or not any(out.iterdir())
