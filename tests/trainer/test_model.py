"""The detector family: sizes, the yolov8 output layout the edge decoder reads, freezing, counts."""

import numpy as np
import pytest
import torch

from edge.decode import decode_yolov8
from edge.errors import JetkitError
from trainer.model import (
    SIZES,
    DetectionModel,
    ModelConfig,
    check_input_hw,
    count_gflops,
    count_parameters,
    freeze_stages,
    make_anchors,
)


def test_eval_output_is_the_yolov8_layout_with_pixel_boxes_and_probabilities():
    model = DetectionModel(ModelConfig(num_classes=4, size="n")).eval()
    with torch.no_grad():
        output = model(torch.rand(2, 3, 128, 96))
    anchors = 16 * 12 + 8 * 6 + 4 * 3
    assert output.shape == (2, 4 + 4, anchors)
    cx, cy, w, h = output[0, :4]
    assert (w > 0).all() and (h > 0).all()
    assert 0 <= cx.min() and cx.max() <= 96 + w.max()
    scores = output[:, 4:]
    assert ((scores >= 0) & (scores <= 1)).all()
    candidates = decode_yolov8(output.numpy(), conf_threshold=0.0)
    assert candidates[0].xyxy.shape == (anchors, 4)


def test_raw_and_eval_outputs_describe_the_same_boxes():
    model = DetectionModel(ModelConfig(num_classes=2, size="n")).eval()
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        raw = model(images, raw=True)
        final = model(images)
    xyxy = decode_yolov8(final.numpy(), conf_threshold=0.0)[0].xyxy
    order = np.argsort(-final[0, 4:].amax(0).numpy(), kind="stable")
    np.testing.assert_allclose(xyxy, raw.xyxy[0].numpy()[order], atol=1e-4)
    assert [f.shape[1] for f in raw.features] == list(ModelConfig(2, "n").neck_channels)


def test_anchor_centres_are_cell_centres_level_by_level():
    anchors, strides = make_anchors([(2, 3), (1, 1)], (8, 16), torch.device("cpu"))
    assert anchors[:3].tolist() == [[4, 4], [12, 4], [20, 4]]
    assert anchors[-1].tolist() == [8, 8] and strides.tolist() == [8] * 6 + [16]


def test_each_size_has_at_most_a_quarter_of_the_next_ones_parameters_and_flops():
    sizes = list(SIZES)
    for small, large in zip(sizes, sizes[1:], strict=False):
        a, b = DetectionModel(ModelConfig(6, small)), DetectionModel(ModelConfig(6, large))
        assert count_parameters(a) <= count_parameters(b) / 4
        assert count_gflops(a, (128, 128)) <= count_gflops(b, (128, 128)) / 4


def test_gflops_count_grows_with_the_input_area():
    model = DetectionModel(ModelConfig(3, "n"))
    assert count_gflops(model, (256, 256)) == pytest.approx(
        4 * count_gflops(model, (128, 128)), rel=0.01
    )


def test_freezing_stops_gradients_and_batchnorm_updates_in_the_first_stages():
    model = DetectionModel(ModelConfig(3, "n")).train()
    freeze_stages(model, 2)
    frozen, free = model.backbone.stages[:2], model.backbone.stages[2]
    assert not any(p.requires_grad for p in frozen.parameters())
    assert all(p.requires_grad for p in free.parameters())
    stats_before = frozen[0][1].running_mean.clone()
    model(torch.rand(2, 3, 64, 64))
    assert torch.equal(frozen[0][1].running_mean, stats_before)


def test_bad_sizes_are_refused_with_the_option_named():
    with pytest.raises(JetkitError, match="model size 'xl'"):
        ModelConfig(3, "xl")
    with pytest.raises(JetkitError, match="multiple of 32"):
        check_input_hw((300, 320))
