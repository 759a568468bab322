"""Task-aligned assignment on hand-made anchors, boxes and scores."""

import pytest
import torch

from trainer.assign import centres_inside, task_aligned_assign


def grid_anchors(size=8, stride=8):
    """`size × size` anchor centres at stride `stride`: (N, 2)."""
    centres = (torch.arange(size, dtype=torch.float32) + 0.5) * stride
    ys, xs = torch.meshgrid(centres, centres, indexing="ij")
    return torch.stack((xs, ys), dim=-1).reshape(-1, 2)


def perfect_predictions(anchors, box, num_classes, cls):
    """Every anchor predicts `box` with a score of 0.5 for class `cls`."""
    n = anchors.shape[0]
    scores = torch.full((1, n, num_classes), 0.01)
    scores[..., cls] = 0.5
    return scores, box.expand(1, n, 4).clone()


def test_only_anchors_inside_the_box_can_be_positive():
    anchors = grid_anchors()
    gt = torch.tensor([[[8.0, 8.0, 32.0, 24.0]]])
    inside = centres_inside(anchors, gt)[0, 0]
    expected = (
        (anchors[:, 0] > 8) & (anchors[:, 0] < 32) & (anchors[:, 1] > 8) & (anchors[:, 1] < 24)
    )
    assert torch.equal(inside, expected)
    scores, pred = perfect_predictions(anchors, gt[0, 0], 3, cls=1)
    result = task_aligned_assign(
        scores, pred, anchors, torch.tensor([[1]]), gt, torch.tensor([[True]]), topk=10
    )
    assert torch.equal(result.fg_mask[0], expected)  # 6 anchors inside, all within top-10
    assert torch.allclose(result.target_xyxy[0, expected], gt[0, 0].expand(6, 4))
    assert (result.target_scores[0, ~expected] == 0).all()
    # Soft targets: class 1 only, and the best anchor's target equals its IoU (1.0 here).
    assert (result.target_scores[0, expected][:, [0, 2]] == 0).all()
    assert result.target_scores[0, :, 1].max().item() == pytest.approx(1.0, abs=1e-6)


def test_topk_keeps_the_best_aligned_anchors():
    anchors = grid_anchors()
    gt = torch.tensor([[[0.0, 0.0, 64.0, 64.0]]])
    scores, pred = perfect_predictions(anchors, gt[0, 0], 2, cls=0)
    scores[0, :, 0] = torch.linspace(0.1, 0.9, anchors.shape[0])  # later anchors align better
    result = task_aligned_assign(
        scores, pred, anchors, torch.tensor([[0]]), gt, torch.tensor([[True]]), topk=5
    )
    assert result.fg_mask.sum() == 5
    assert torch.equal(result.fg_mask[0].nonzero().flatten(), torch.arange(59, 64))


def test_an_anchor_claimed_by_two_boxes_goes_to_the_one_it_overlaps_most():
    anchors = torch.tensor([[20.0, 20.0]])
    big = [0.0, 0.0, 40.0, 40.0]
    small = [10.0, 10.0, 30.0, 30.0]
    gt = torch.tensor([[big, small]])
    pred = torch.tensor([[small]])  # the prediction matches the small box exactly
    scores = torch.full((1, 1, 2), 0.5)
    result = task_aligned_assign(
        scores, pred, anchors, torch.tensor([[0, 1]]), gt, torch.tensor([[True, True]])
    )
    assert result.fg_mask.item() and result.gt_index.item() == 1
    assert torch.equal(result.target_xyxy[0, 0], gt[0, 1])
    assert result.target_scores[0, 0, 0] == 0 and result.target_scores[0, 0, 1] > 0


def test_padding_and_empty_images_assign_nothing():
    anchors = grid_anchors()
    scores = torch.full((2, anchors.shape[0], 3), 0.3)
    pred = torch.tensor([0.0, 0.0, 16.0, 16.0]).expand(2, anchors.shape[0], 4)
    gt = torch.tensor([[[0.0, 0.0, 16.0, 16.0]], [[0.0, 0.0, 16.0, 16.0]]])
    mask = torch.tensor([[True], [False]])  # image 1 has only padding
    result = task_aligned_assign(scores, pred, anchors, torch.tensor([[0], [-1]]), gt, mask)
    assert result.fg_mask[0].any() and not result.fg_mask[1].any()
    none = task_aligned_assign(
        scores,
        pred,
        anchors,
        torch.zeros(2, 0, dtype=torch.long),
        torch.zeros(2, 0, 4),
        torch.zeros(2, 0, dtype=torch.bool),
    )
    assert not none.fg_mask.any() and none.target_scores.sum() == 0


def test_a_box_between_anchor_centres_gets_its_nearest_finest_anchors():
    """A 4x4 px box lies between stride-8 centres, so no centre is inside and it would never be
    learned; with `min_candidates` its nearest stride-8 anchors compete for it, never coarser
    ones even when one is as near."""
    fine = grid_anchors(size=4, stride=8)
    coarse = torch.tensor([[16.0, 16.0]])
    anchors = torch.cat((fine, coarse))
    strides = torch.tensor([8.0] * 16 + [32.0])
    gt = torch.tensor([[[14.0, 10.0, 18.0, 14.0]]])  # centre (16, 12)
    scores, pred = perfect_predictions(anchors, gt[0, 0], 2, cls=0)
    args = (scores, pred, anchors, torch.tensor([[0]]), gt, torch.tensor([[True]]))
    assert not task_aligned_assign(*args, strides=strides).fg_mask.any()
    result = task_aligned_assign(*args, strides=strides, min_candidates=4)
    chosen = anchors[result.fg_mask[0]].tolist()
    assert sorted(chosen) == [[12.0, 12.0], [12.0, 20.0], [20.0, 12.0], [20.0, 20.0]]


def test_boxes_with_enough_centres_inside_keep_only_those():
    anchors = grid_anchors()
    gt = torch.tensor([[[8.0, 8.0, 32.0, 24.0]]])  # 6 centres inside
    scores, pred = perfect_predictions(anchors, gt[0, 0], 3, cls=1)
    args = (scores, pred, anchors, torch.tensor([[1]]), gt, torch.tensor([[True]]))
    strides = torch.full((anchors.shape[0],), 8.0)
    plain = task_aligned_assign(*args, topk=10)
    widened = task_aligned_assign(*args, topk=10, strides=strides, min_candidates=3)
    assert torch.equal(plain.fg_mask, widened.fg_mask)


def test_a_penalised_overlap_prefers_a_centred_prediction_to_an_offset_one_of_equal_iou():
    """Two anchors predict 20x20 boxes inside a 24x24 target (the same IoU), one centred on it
    and one in its corner; with CIoU in the metric (YOLOv8's) the centred one wins, wherever it
    is in the anchor order."""
    anchors = torch.tensor([[12.0, 12.0], [20.0, 20.0]])
    gt = torch.tensor([[[4.0, 4.0, 28.0, 28.0]]])
    centred, corner = [6.0, 6.0, 26.0, 26.0], [4.0, 4.0, 24.0, 24.0]
    scores = torch.full((1, 2, 1), 0.5)
    for pred, expected in (([centred, corner], [True, False]), ([corner, centred], [False, True])):
        result = task_aligned_assign(
            scores, torch.tensor([pred]), anchors, torch.tensor([[0]]), gt,
            torch.tensor([[True]]), topk=1, iou_kind="ciou",
        )  # fmt: skip
        assert result.fg_mask[0].tolist() == expected
