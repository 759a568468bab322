"""The detector family: sizes, the yolov8 output layout the edge decoder reads, freezing, counts."""

import math

import numpy as np
import pytest
import torch

from edge.decode import decode_yolov8
from edge.errors import JetkitError
from trainer.model import (
    SIZES,
    YOLOV8_REG_MAX,
    DetectionModel,
    DistributionDecode,
    ModelConfig,
    check_input_hw,
    count_gflops,
    count_parameters,
    freeze_stages,
    make_anchors,
)


def test_eval_output_is_the_yolov8_layout_with_pixel_boxes_and_probabilities():
    model = DetectionModel(ModelConfig(num_classes=4, size="t")).eval()
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


def canonical_order(xyxy: np.ndarray) -> np.ndarray:
    """Boxes sorted by their coordinates: fresh class priors tie many scores, so the decoder's
    score order among them is arbitrary. Sorted on rounded keys, since one box may differ in its
    last float bit between the two paths."""
    return xyxy[np.lexsort(np.round(xyxy, 2).T[::-1])]


def test_raw_and_eval_outputs_describe_the_same_boxes():
    model = DetectionModel(ModelConfig(num_classes=2, size="t")).eval()
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        raw = model(images, raw=True)
        final = model(images)
    decoded = decode_yolov8(final.numpy(), conf_threshold=0.0)[0]
    np.testing.assert_allclose(
        canonical_order(decoded.xyxy), canonical_order(raw.xyxy[0].numpy()), atol=1e-4
    )
    assert [f.shape[1] for f in raw.features] == list(ModelConfig(2, "t").neck_channels)


def test_anchor_centres_are_cell_centres_level_by_level():
    anchors, strides = make_anchors([(2, 3), (1, 1)], (8, 16), torch.device("cpu"))
    assert anchors[:3].tolist() == [[4, 4], [12, 4], [20, 4]]
    assert anchors[-1].tolist() == [8, 8] and strides.tolist() == [8] * 6 + [16]


# YOLOv8n with 80 classes at 640 px, as Ultralytics' model table lists it (docs.ultralytics.com,
# YOLOv8 "Performance": 3.2 M parameters, 8.7 GFLOPs).
YOLOV8N_PARAMETERS_M, YOLOV8N_GFLOPS_640 = 3.2, 8.7


def test_n_is_at_most_yolov8ns_compute_and_t_a_quarter_of_it():
    n, t = DetectionModel(ModelConfig(80, "n")), DetectionModel(ModelConfig(80, "t"))
    assert count_parameters(n) / 1e6 <= YOLOV8N_PARAMETERS_M
    assert 0.9 * YOLOV8N_GFLOPS_640 <= count_gflops(n, (640, 640)) <= YOLOV8N_GFLOPS_640
    assert count_gflops(t, (640, 640)) <= YOLOV8N_GFLOPS_640 / 4


def test_each_size_is_larger_than_the_one_below():
    sizes = list(SIZES)
    for small, large in zip(sizes, sizes[1:], strict=False):
        a, b = DetectionModel(ModelConfig(6, small)), DetectionModel(ModelConfig(6, large))
        assert count_parameters(a) < count_parameters(b)
        assert count_gflops(a, (128, 128)) < count_gflops(b, (128, 128))


def test_a_checkpoint_of_the_sizes_before_channel_caps_and_box_bins_still_loads():
    """Sizes are named as YOLO users read them now; a checkpoint stores its width and depth, and
    one written before caps and box distributions was uncapped with one distance per side, so it
    loads as it was trained."""
    from trainer.checkpoint import model_config_of

    old = {"num_classes": 3, "size": "l", "width": 1.0, "depth": 1.0}
    before = DetectionModel(ModelConfig(3, "l", 1.0, 1.0, max_channels=1024, reg_max=1))
    loaded = DetectionModel(model_config_of({"model": old}))
    assert loaded.config.max_channels == 1024 and loaded.config.neck_channels == (256, 512, 1024)
    assert loaded.config.reg_max == 1 and loaded.head.decode is None
    loaded.load_state_dict(before.state_dict())


def test_a_side_distribution_decodes_to_its_mean_in_strides():
    decode = DistributionDecode(16)
    logits = torch.full((1, 4, 16, 2), -1e4)
    logits[0, :, 3, 0] = 0.0  # all mass on bin 3
    logits[0, :, 5:7, 1] = 0.0  # half on 5, half on 6
    distances = decode(logits.reshape(1, 64, 2))
    np.testing.assert_allclose(distances[0].numpy(), [[3.0, 5.5]] * 4, atol=1e-5)


def test_a_head_with_yolov8s_bins_decodes_eval_boxes_from_their_means():
    model = DetectionModel(ModelConfig(2, "t", reg_max=YOLOV8_REG_MAX)).eval()
    assert DetectionModel(ModelConfig(2, "t")).head.decode is None  # one distance by default
    with torch.no_grad():
        raw = model(torch.rand(1, 3, 64, 64), raw=True)
    assert raw.ltrb_logits.shape == (1, raw.xyxy.shape[1], 4, YOLOV8_REG_MAX)
    means = raw.ltrb_logits.softmax(-1) @ torch.arange(YOLOV8_REG_MAX, dtype=torch.float32)
    left_px = (raw.anchors_xy[:, 0] - raw.xyxy[0, :, 0]) / raw.strides
    np.testing.assert_allclose(left_px.numpy(), means[0, :, 0].numpy(), atol=1e-4)


def test_class_priors_start_coarse_levels_higher():
    """YOLOv8's prior: about 5 objects per 640² image over each level's cells, so a P5 cell starts
    16x as likely to hold an object as a P3 cell."""
    head = DetectionModel(ModelConfig(4, "t")).head
    p3, _, p5 = (torch.sigmoid(branch[-1].bias).mean().item() for branch in head.cls)
    assert p5 / p3 == pytest.approx(16, rel=0.01)
    assert p3 == pytest.approx(torch.sigmoid(torch.tensor(math.log(5 / 4 / 80**2))).item())


def test_gflops_count_grows_with_the_input_area():
    model = DetectionModel(ModelConfig(3, "t"))
    assert count_gflops(model, (256, 256)) == pytest.approx(
        4 * count_gflops(model, (128, 128)), rel=0.01
    )


def test_freezing_stops_gradients_and_batchnorm_updates_in_the_first_stages():
    model = DetectionModel(ModelConfig(3, "t")).train()
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
