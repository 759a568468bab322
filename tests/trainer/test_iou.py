"""The torch IoU family agrees with edge's numpy one, and its gradients exist everywhere."""

import numpy as np
import pytest
import torch

from edge.boxes import pairwise_iou
from trainer.iou import elementwise_iou


@pytest.mark.parametrize("kind", ["iou", "giou", "diou", "ciou"])
def test_matches_the_numpy_reference_used_by_nms(kind):
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 100, (40, 2))
    wh = rng.uniform(1, 60, (40, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float64)
    expected = np.diag(pairwise_iou(boxes[:20], boxes[20:], kind=kind))
    got = elementwise_iou(torch.from_numpy(boxes[:20]), torch.from_numpy(boxes[20:]), kind)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-6)


def test_identical_boxes_score_one_and_disjoint_ones_are_penalised_by_distance():
    box = torch.tensor([[10.0, 10.0, 50.0, 30.0]])
    for kind in ("iou", "giou", "diou", "ciou"):
        assert elementwise_iou(box, box, kind).item() == pytest.approx(1.0, abs=1e-6)
    near = torch.tensor([[60.0, 10.0, 100.0, 30.0]])
    far = torch.tensor([[200.0, 10.0, 240.0, 30.0]])
    for kind in ("giou", "diou", "ciou"):
        assert elementwise_iou(box, far, kind) < elementwise_iou(box, near, kind) < 0


def test_ciou_has_gradients_for_degenerate_and_disjoint_boxes():
    pred = torch.tensor([[0.0, 0.0, 0.0, 0.0], [5.0, 5.0, 9.0, 9.0]], requires_grad=True)
    target = torch.tensor([[1.0, 1.0, 4.0, 4.0], [20.0, 20.0, 30.0, 30.0]])
    (1 - elementwise_iou(pred, target, "ciou")).sum().backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown IoU kind"):
        elementwise_iou(torch.zeros(1, 4), torch.zeros(1, 4), "wiou")
