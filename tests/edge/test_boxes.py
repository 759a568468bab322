"""The IoU family on hand-computed cases, and the box conversions."""

import numpy as np
import pytest

from edge.boxes import box_area, box_iou, clip_xyxy, cxcywh_to_xyxy, pairwise_iou, xyxy_to_cxcywh

A = np.array([0.0, 0.0, 10.0, 10.0])
B = np.array([5.0, 0.0, 15.0, 10.0])  # half overlapping A horizontally


def test_conversions_round_trip():
    cxcywh = np.array([[50.0, 40.0, 20.0, 10.0], [0.0, 0.0, 2.0, 2.0]])
    xyxy = cxcywh_to_xyxy(cxcywh)
    np.testing.assert_allclose(xyxy, [[40, 35, 60, 45], [-1, -1, 1, 1]])
    np.testing.assert_allclose(xyxy_to_cxcywh(xyxy), cxcywh)


def test_area_of_degenerate_box_is_zero():
    np.testing.assert_allclose(box_area(np.array([[0, 0, 4, 5], [3, 3, 1, 1]], float)), [20, 0])


def test_iou_of_half_overlap_is_one_third():
    # intersection 50, union 150
    assert box_iou(A, B) == pytest.approx(1 / 3, rel=1e-5)


def test_giou_penalises_the_empty_part_of_the_enclosing_box():
    far = np.array([20.0, 0.0, 30.0, 10.0])
    # IoU 0; enclosing box 30x10=300, union 200 -> GIoU = 0 - 100/300
    assert box_iou(A, far, "giou") == pytest.approx(-1 / 3, rel=1e-5)
    assert box_iou(A, A, "giou") == pytest.approx(1.0, rel=1e-5)


def test_diou_subtracts_normalised_centre_distance():
    # centres 5 apart; enclosing diagonal^2 = 15^2 + 10^2 = 325
    assert box_iou(A, B, "diou") == pytest.approx(1 / 3 - 25 / 325, rel=1e-5)


def test_ciou_adds_aspect_ratio_term_only_when_shapes_differ():
    assert box_iou(A, B, "ciou") == pytest.approx(box_iou(A, B, "diou"), rel=1e-6)
    tall = np.array([0.0, 0.0, 10.0, 20.0])
    iou = 0.5
    v = 4 / np.pi**2 * (np.arctan(0.5) - np.arctan(1.0)) ** 2
    alpha = v / (1 - iou + v)
    diou = box_iou(A, tall, "diou")
    assert box_iou(A, tall, "ciou") == pytest.approx(diou - alpha * v, rel=1e-5)


def test_pairwise_matches_elementwise():
    rng = np.random.default_rng(1)
    a = cxcywh_to_xyxy(np.c_[rng.uniform(0, 50, (7, 2)), rng.uniform(1, 20, (7, 2))])
    b = cxcywh_to_xyxy(np.c_[rng.uniform(0, 50, (5, 2)), rng.uniform(1, 20, (5, 2))])
    for kind in ("iou", "giou", "diou", "ciou"):
        matrix = pairwise_iou(a, b, kind)
        assert matrix.shape == (7, 5)
        for i in range(7):
            for j in range(5):
                assert matrix[i, j] == pytest.approx(box_iou(a[i], b[j], kind))


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown IoU kind"):
        box_iou(A, B, "eiou")


def test_clip_to_image():
    boxes = np.array([[-5.0, -1.0, 700.0, 300.0]])
    np.testing.assert_allclose(clip_xyxy(boxes, (640, 480)), [[0, 0, 640, 300]])
