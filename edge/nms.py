"""Non-maximum suppression, vectorized numpy: class-aware (batched), class-agnostic, DIoU, soft.

Greedy NMS is sequential within a group (a class, or an image and class), but groups are
independent. `nms` runs every group's greedy loop in lockstep: each round keeps the best
surviving box of every group and suppresses what overlaps it in that group, in one pass over
the survivors. The first round removes most candidates (each object's cluster); once few
same-group pairs remain, their overlaps are computed at once and the rest of the greedy order
is resolved from them (`_greedy_by_pairs`). The result is exactly greedy NMS.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from edge.boxes import box_area, iou_of_coords

SOFT_METHODS = ("gaussian", "linear")
# Below this many same-group candidate pairs, all overlaps are computed in one pass (cheaper than
# more lockstep rounds); above it, lockstep rounds thin the candidates first.
PAIR_BUDGET = 4096


def _sorted_by_group_then_score(scores: np.ndarray, group_ids: np.ndarray | None) -> np.ndarray:
    """Order: group ascending, score descending, index ascending for ties (stable)."""
    if group_ids is None:
        return np.argsort(-scores, kind="stable")
    # One float64 key sorts faster than np.lexsort. Groups sit `span` apart, more than the score
    # range, and float32 scores stay exact in float64 next to group * span (< 2**29 here).
    low, high = float(scores.min()), float(scores.max())
    span = high - low + 1.0
    key = group_ids * span - scores.astype(np.float64)
    return np.argsort(key, kind="stable")


class _Runs(NamedTuple):
    """Runs of equal labels in a sorted `(M,)` array: `is_head (M,)` marks each run's first
    element, `head_pos (R,)` and `lengths (R,)` describe the runs, `head_of (M,)` gives each
    element the position of its run's head."""

    is_head: np.ndarray
    head_pos: np.ndarray
    lengths: np.ndarray
    head_of: np.ndarray

    @property
    def same_run_pairs(self) -> int:
        """How many (earlier, later) element pairs share a run."""
        return int((self.lengths * (self.lengths - 1)).sum()) // 2


def _runs(groups: np.ndarray) -> _Runs:
    m = groups.shape[0]
    is_head = np.empty(m, dtype=bool)
    is_head[0] = True
    np.not_equal(groups[1:], groups[:-1], out=is_head[1:])
    head_pos = is_head.nonzero()[0]
    ends = np.empty_like(head_pos)
    ends[:-1] = head_pos[1:]
    ends[-1:] = m
    lengths = ends - head_pos
    return _Runs(is_head, head_pos, lengths, head_pos.repeat(lengths))


def _greedy_by_pairs(
    ids: np.ndarray,
    boxes: np.ndarray,
    runs: _Runs,
    iou_threshold: float,
    kind: str,
    max_per_group: int,
) -> np.ndarray:
    """Greedy NMS of few candidates from all same-group overlaps at once. `ids (2,M)` holds
    original index and group, `boxes (5,M)` the corners and area, sorted by group, then score.

    A candidate is kept iff no kept candidate before it in its group overlaps it: iterating
    `keep = not any(keep[i] for overlapping i before)` from all-kept fixes one more position of
    every group per pass, and its fixed point is the greedy result. Passes: the longest
    suppression chain, usually two or three.
    """
    m = ids.shape[1]
    later = (runs.head_pos + runs.lengths).repeat(runs.lengths) - np.arange(m) - 1
    first = np.arange(m).repeat(later)
    second = first + 1 + np.arange(first.shape[0]) - (later.cumsum() - later).repeat(later)
    overlap = iou_of_coords(
        tuple(boxes.take(first, axis=1)), tuple(boxes.take(second, axis=1)), kind
    )
    over = overlap > iou_threshold
    suppressor, suppressed = first[over], second[over]
    keep = np.ones(m, dtype=bool)
    while True:
        hit = np.zeros(m, dtype=bool)
        hit[suppressed[keep[suppressor]]] = True
        if np.array_equal(~hit, keep):
            break
        keep = ~hit
    kept_pos = keep.nonzero()[0]
    kept_groups = ids[1, kept_pos]
    rank_in_group = np.arange(kept_pos.shape[0]) - np.searchsorted(kept_groups, kept_groups)
    return ids[0, kept_pos[rank_in_group < max_per_group]]


def nms(
    xyxy: np.ndarray,
    scores: np.ndarray,
    iou_threshold: float,
    group_ids: np.ndarray | None = None,
    kind: str = "iou",
    max_detections: int | None = None,
    max_per_group: int | None = None,
) -> np.ndarray:
    """Greedy NMS. Returns the kept indices `(K,)`, highest score first (ties: lower index first).

    `xyxy (N,4)`, `scores (N,)`. A box is suppressed by a kept, higher-ranked box of the same
    group whose overlap exceeds `iou_threshold`; `group_ids (N,)` (class ids, or image × classes +
    class id for a batch) makes it class-aware, `None` class-agnostic. `kind` is the overlap
    measure: "iou", or "diou" for DIoU-NMS. `max_detections` caps the result; `max_per_group`
    stops a group after that many kept boxes (for a batch whose groups are image × class, pass
    the per-image cap: a group's later boxes cannot enter its image's top anyway).
    """
    n = scores.shape[0]
    if n == 0:
        return np.empty(0, dtype=np.int64)
    limit = n if max_detections is None else min(max_detections, n)
    rounds = limit if max_per_group is None else min(limit, max_per_group)
    order = _sorted_by_group_then_score(scores, group_ids)
    # Survivors travel as two stacked arrays so that each round compacts them in two calls:
    # ids (2, M) = original index, group; boxes (5, M) = x0, y0, x1, y1, area.
    ids = np.zeros((2, n), dtype=np.int64)
    ids[0] = order
    if group_ids is not None:
        ids[1] = group_ids[order]
    boxes = np.empty((5, n), dtype=np.result_type(xyxy.dtype, np.float32))
    boxes[:4] = xyxy[order].T
    boxes[4] = box_area(boxes[:4].T)
    kept = []
    # A group that already kept `rounds` boxes cannot place another in the overall top `limit`.
    while rounds > 0:
        runs = _runs(ids[1])
        if runs.same_run_pairs <= PAIR_BUDGET:
            kept.append(_greedy_by_pairs(ids, boxes, runs, iou_threshold, kind, rounds))
            break
        kept.append(ids[0, runs.head_pos])
        heads = boxes.take(runs.head_of, axis=1)
        overlap = iou_of_coords(tuple(heads), tuple(boxes), kind)
        survive = overlap <= iou_threshold
        survive[runs.head_pos] = False
        if not survive.any():
            break
        # compress/take: several times faster than boolean/fancy indexing along axis 1.
        ids, boxes = ids.compress(survive, axis=1), boxes.compress(survive, axis=1)
        rounds -= 1
    keep = np.concatenate(kept)
    keep = keep[np.lexsort((keep, -scores[keep]))]
    return keep[:limit]


def soft_nms(
    xyxy: np.ndarray,
    scores: np.ndarray,
    group_ids: np.ndarray | None = None,
    sigma: float = 0.5,
    iou_threshold: float = 0.3,
    score_threshold: float = 0.001,
    method: str = "gaussian",
) -> tuple[np.ndarray, np.ndarray]:
    """Soft-NMS (Bodla et al. 2017): overlapping boxes get their scores decayed, not removed.

    Gaussian: `s *= exp(-iou² / sigma)`; linear: `s *= 1 - iou` where `iou > iou_threshold`.
    Boxes whose decayed score falls below `score_threshold` are dropped. Returns
    `(indices (K,), decayed_scores (K,))`, highest decayed score first.
    """
    if method not in SOFT_METHODS:
        raise ValueError(f"unknown soft-NMS method {method!r}; choose one of {SOFT_METHODS}")
    n = scores.shape[0]
    if n == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
    order = np.argsort(group_ids, kind="stable") if group_ids is not None else np.arange(n)
    index = order
    groups = np.zeros(n, dtype=np.int64) if group_ids is None else group_ids[order]
    current = scores[order].astype(np.float32)
    x0, y0, x1, y1 = (np.ascontiguousarray(xyxy[order, k]) for k in range(4))
    kept_index, kept_score = [], []
    while index.size:
        runs = _runs(groups)
        segment = np.cumsum(runs.is_head) - 1
        seg_max = np.maximum.reduceat(current, runs.head_pos)
        is_max = current == seg_max[segment]
        # The best of each group, first position on ties (positions keep index order).
        max_pos = np.flatnonzero(is_max)
        first = np.ones(max_pos.size, dtype=bool)
        first[1:] = groups[max_pos[1:]] != groups[max_pos[:-1]]
        head_pos = max_pos[first]
        kept_index.append(index[head_pos])
        kept_score.append(current[head_pos])
        head_of = head_pos[segment]
        iou = iou_of_coords(
            (x0[head_of], y0[head_of], x1[head_of], y1[head_of]), (x0, y0, x1, y1), "iou"
        )
        if method == "gaussian":
            current = current * np.exp(-(iou**2) / sigma)
        else:
            current = np.where(iou > iou_threshold, current * (1 - iou), current)
        survive = current >= score_threshold
        survive[head_pos] = False
        index, groups, current = index[survive], groups[survive], current[survive]
        x0, y0, x1, y1 = x0[survive], y0[survive], x1[survive], y1[survive]
    keep = np.concatenate(kept_index)
    decayed = np.concatenate(kept_score)
    rank = np.lexsort((keep, -decayed))
    return keep[rank], decayed[rank]


def nms_reference(
    xyxy: np.ndarray,
    scores: np.ndarray,
    iou_threshold: float,
    group_ids: np.ndarray | None = None,
    kind: str = "iou",
) -> np.ndarray:
    """The obviously correct O(N²) greedy loop: the oracle that tests and benchmarks check `nms`
    against. Kept indices, highest score first (ties: lower index first)."""
    order = np.argsort(-scores, kind="stable")
    suppressed = np.zeros(scores.shape[0], dtype=bool)
    keep = []
    for rank, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(i)
        for j in order[rank + 1 :]:
            same_group = group_ids is None or group_ids[i] == group_ids[j]
            if not suppressed[j] and same_group:
                overlap = iou_of_coords(tuple(xyxy[i]), tuple(xyxy[j]), kind)
                suppressed[j] = overlap > iou_threshold
    return np.asarray(keep, dtype=np.int64)
