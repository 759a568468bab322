"""Non-maximum suppression, vectorized numpy: class-aware (batched), class-agnostic, DIoU, soft.

Greedy NMS is sequential within a group (a class, or an image and class), but groups are
independent. `nms` runs every group's greedy loop in lockstep: each round keeps the best
surviving box of every group and suppresses what overlaps it in that group, in one pass over
the survivors. The number of rounds is the largest number of boxes any one group keeps (capped
by `max_detections`), not the number of candidates, and the result is exactly greedy NMS.
"""

from __future__ import annotations

import numpy as np

from edge.boxes import iou_of_coords

SOFT_METHODS = ("gaussian", "linear")


def _sorted_by_group_then_score(scores: np.ndarray, group_ids: np.ndarray | None) -> np.ndarray:
    """Order: group ascending, score descending, index ascending for ties (stable)."""
    if group_ids is None:
        return np.argsort(-scores, kind="stable")
    return np.lexsort((-scores, group_ids))


def _segment_heads(groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For `(M,)` group labels sorted into runs: `is_head (M,)` marks each run's first element and
    `head_of (M,)` gives each element the position of its run's head."""
    is_head = np.empty(groups.shape[0], dtype=bool)
    is_head[0] = True
    np.not_equal(groups[1:], groups[:-1], out=is_head[1:])
    head_pos = np.flatnonzero(is_head)
    run_lengths = np.diff(head_pos, append=groups.shape[0])
    return is_head, np.repeat(head_pos, run_lengths)


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
    index = order
    groups = np.zeros(n, dtype=np.int64) if group_ids is None else group_ids[order]
    x0, y0, x1, y1 = (np.ascontiguousarray(xyxy[order, k]) for k in range(4))
    kept = []
    # A group that already kept `limit` boxes cannot place another in the overall top `limit`.
    for _ in range(rounds):
        is_head, head_of = _segment_heads(groups)
        kept.append(index[is_head])
        overlap = iou_of_coords(
            (x0[head_of], y0[head_of], x1[head_of], y1[head_of]), (x0, y0, x1, y1), kind
        )
        survive = overlap <= iou_threshold
        survive &= ~is_head
        if not survive.any():
            break
        index, groups = index[survive], groups[survive]
        x0, y0, x1, y1 = x0[survive], y0[survive], x1[survive], y1[survive]
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
        is_start, _ = _segment_heads(groups)
        segment = np.cumsum(is_start) - 1
        seg_max = np.maximum.reduceat(current, np.flatnonzero(is_start))
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
                overlap = iou_of_coords(tuple(xyxy[i]), tuple(xyxy[j]), kind)  # type: ignore[arg-type]
                suppressed[j] = overlap > iou_threshold
    return np.asarray(keep, dtype=np.int64)
