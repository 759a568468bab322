"""The detection loss: target padding, a loss that falls when the model learns, and validation."""

import pytest
import torch

from edge.errors import JetkitError
from trainer.loss import (
    DetectionLoss,
    LossConfig,
    distribution_focal_loss,
    pad_targets,
    target_ltrb,
)
from trainer.model import YOLOV8_REG_MAX, DetectionModel, ModelConfig


def test_pad_targets_groups_boxes_by_image():
    targets = torch.tensor(
        [[1, 2, 0, 0, 5, 5], [0, 1, 1, 1, 4, 4], [1, 0, 2, 2, 8, 8]], dtype=torch.float32
    )
    gt_class, gt_xyxy, mask = pad_targets(targets, batch=3)
    assert gt_class.tolist() == [[1, -1], [2, 0], [-1, -1]]
    assert mask.tolist() == [[True, False], [True, True], [False, False]]
    assert gt_xyxy[1, 1].tolist() == [2, 2, 8, 8]
    empty_class, empty_xyxy, empty_mask = pad_targets(torch.zeros(0, 6), batch=2)
    assert empty_class.shape == (2, 0) and empty_xyxy.shape == (2, 0, 4)


@pytest.mark.parametrize("reg_max", [1, YOLOV8_REG_MAX])
def test_a_few_steps_on_one_batch_lower_every_term(reg_max):
    torch.manual_seed(0)
    model = DetectionModel(ModelConfig(num_classes=3, size="t", reg_max=reg_max)).train()
    images = torch.rand(2, 3, 96, 96)
    targets = torch.tensor(
        [[0, 1, 8, 8, 56, 40], [0, 2, 60, 50, 90, 90], [1, 0, 4, 4, 80, 80]], dtype=torch.float32
    )
    criterion = DetectionLoss(3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    history = []
    for _ in range(25):
        loss, parts = criterion(model(images), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append({k: float(v) for k, v in parts.items()})
    assert history[-1]["box"] < 0.6 * history[0]["box"]
    assert history[-1]["cls"] < 0.6 * history[0]["cls"]
    if reg_max > 1:
        assert history[-1]["dfl"] < 0.8 * history[0]["dfl"]
    else:
        assert "dfl" not in history[-1]
    assert criterion.last_assignment.fg_mask.any()


def test_distribution_focal_loss_is_least_when_the_two_nearest_bins_share_the_mass():
    """A target of 2.25 strides is best met by 75 % on bin 2 and 25 % on bin 3: the loss is
    lowest there, and higher for all mass on bin 2 or on a far bin."""
    target = torch.tensor([[2.25] * 4])

    def loss_of(probs: list[float]) -> float:
        logits = torch.log(torch.tensor(probs) + 1e-12).expand(1, 4, -1)
        return float(distribution_focal_loss(logits, target))

    split = loss_of([0, 0, 0.75, 0.25] + [0] * 12)
    assert split < loss_of([0, 0, 1.0, 0] + [0] * 12)
    assert split < loss_of([0, 0, 0.5, 0.5] + [0] * 12)
    assert split < loss_of([0] * 10 + [1.0] + [0] * 5)


def test_side_targets_beyond_the_last_bin_are_clamped_inside_it():
    far = torch.tensor([[40.0, -1.0, 15.0, 0.0]])
    at_edge = distribution_focal_loss(torch.zeros(1, 4, 16), far)
    assert torch.isfinite(at_edge).all()
    sides = target_ltrb(
        torch.tensor([[16.0, 16.0]]), torch.tensor([8.0]), torch.tensor([[0.0, 8, 48, 20]])
    )
    assert sides.tolist() == [[2.0, 1.0, 4.0, 0.5]]


def test_images_without_boxes_train_the_classifier_towards_background():
    model = DetectionModel(ModelConfig(num_classes=2, size="t", reg_max=YOLOV8_REG_MAX)).train()
    loss, parts = DetectionLoss(2)(model(torch.rand(1, 3, 64, 64)), torch.zeros(0, 6))
    assert parts["box"] == 0 and parts["dfl"] == 0 and parts["cls"] > 0
    loss.backward()


def test_config_errors_name_the_option():
    with pytest.raises(JetkitError, match="--box-loss 'iou'"):
        LossConfig(box_kind="iou")
    with pytest.raises(JetkitError, match="topk"):
        LossConfig(topk=0)
