"""Tracking accuracy against ground truth: CLEAR MOT (MOTA, MOTP, ID switches; Bernardin and
Stiefelhagen 2008) and the identity measures (IDF1; Ristani et al. 2016), as py-motmetrics
computes them with IoU distances (a match needs IoU >= `min_iou`, 0.5 by MOTChallenge's rule).

Per frame, a ground-truth object keeps the hypothesis it was matched to last while they still
overlap enough; the rest are matched by the Hungarian method on 1 - IoU. An ID switch is a
ground-truth object matched to another hypothesis than last time. IDF1 matches whole tracks:
each ground-truth track to at most one hypothesis track so that the frames they share (overlap
enough) are most, and scores those shared frames against all the frames of both.

Rows are MOTChallenge rows (`edge.analytics.mot`); frames absent from the ground truth and the
hypotheses alike do not count.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edge.analytics.assignment import assign
from edge.analytics.mot import frame_indices, rows_xyxy
from edge.boxes import pairwise_iou

MIN_IOU = 0.5


@dataclass(frozen=True)
class TrackingScores:
    mota: float
    motp: float  # mean IoU of the matches (1 is perfect; motmetrics reports 1 - this)
    idf1: float
    id_switches: int
    false_positives: int
    misses: int
    matches: int
    gt_objects: int  # ground-truth boxes
    gt_tracks: int
    hypothesis_tracks: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _by_frame(rows: np.ndarray) -> dict[int, np.ndarray]:
    return {frame: rows[at] for frame, at in frame_indices(rows).items()}


def tracking_scores(
    gt: np.ndarray, hypotheses: np.ndarray, min_iou: float = MIN_IOU
) -> TrackingScores:
    """`gt (N,10)` and `hypotheses (M,10)` MOT rows → the scores."""
    gt_frames, hyp_frames = _by_frame(gt), _by_frame(hypotheses)
    last_match: dict[int, int] = {}  # gt id → hyp id it was matched to last
    switches = false_positives = misses = matches = 0
    iou_sum = 0.0
    shared: dict[tuple[int, int], int] = {}  # (gt id, hyp id) → frames overlapping enough
    empty = np.zeros((0, 10))
    for frame in sorted(set(gt_frames) | set(hyp_frames)):
        g, h = gt_frames.get(frame, empty), hyp_frames.get(frame, empty)
        g_ids, h_ids = g[:, 1].astype(np.int64), h[:, 1].astype(np.int64)
        iou = (
            pairwise_iou(rows_xyxy(g), rows_xyxy(h))
            if len(g) and len(h)
            else np.zeros((len(g), len(h)))
        )
        for gi, hi in zip(*np.nonzero(iou >= min_iou), strict=True):
            key = (int(g_ids[gi]), int(h_ids[hi]))
            shared[key] = shared.get(key, 0) + 1
        cost = np.where(iou >= min_iou, 1 - iou, np.inf)
        pairs: list[tuple[int, int]] = []
        taken_h: set[int] = set()
        # Matches that go on from the last frame come first.
        for gi, gid in enumerate(g_ids.tolist()):
            his = np.flatnonzero(h_ids == last_match.get(gid, -1))
            if len(his) and np.isfinite(cost[gi, his[0]]) and int(his[0]) not in taken_h:
                pairs.append((gi, int(his[0])))
                taken_h.add(int(his[0]))
        taken_g = {p[0] for p in pairs}
        free_g = [i for i in range(len(g)) if i not in taken_g]
        free_h = [j for j in range(len(h)) if j not in taken_h]
        sub = cost[np.ix_(free_g, free_h)]
        found, _, _ = assign(np.where(np.isfinite(sub), sub, 2.0), 1 - min_iou)
        pairs += [(free_g[a], free_h[b]) for a, b in found.tolist()]
        for gi, hi in pairs:
            gid, hid = int(g_ids[gi]), int(h_ids[hi])
            if gid in last_match and last_match[gid] != hid:
                switches += 1
            last_match[gid] = hid
            iou_sum += float(iou[gi, hi])
        matches += len(pairs)
        misses += len(g) - len(pairs)
        false_positives += len(h) - len(pairs)
    gt_count = len(gt)
    idf1 = _idf1(gt, hypotheses, shared)
    return TrackingScores(
        mota=1 - (misses + false_positives + switches) / gt_count if gt_count else float("nan"),
        motp=iou_sum / matches if matches else float("nan"),
        idf1=idf1,
        id_switches=switches,
        false_positives=false_positives,
        misses=misses,
        matches=matches,
        gt_objects=gt_count,
        gt_tracks=len(np.unique(gt[:, 1])),
        hypothesis_tracks=len(np.unique(hypotheses[:, 1])),
    )


def _idf1(gt: np.ndarray, hypotheses: np.ndarray, shared: dict[tuple[int, int], int]) -> float:
    """2·IDTP / (|gt| + |hyp|), IDTP the most frames a one-to-one track matching shares."""
    total = len(gt) + len(hypotheses)
    if not total:
        return float("nan")
    g_ids, h_ids = np.unique(gt[:, 1]), np.unique(hypotheses[:, 1])
    benefit = np.zeros((len(g_ids), len(h_ids)))
    g_index = {int(v): i for i, v in enumerate(g_ids)}
    h_index = {int(v): j for j, v in enumerate(h_ids)}
    for (gid, hid), frames in shared.items():
        benefit[g_index[gid], h_index[hid]] = frames
    if not benefit.size:
        return 0.0
    pairs, _, _ = assign(benefit.max() - benefit, float(benefit.max()))
    id_true_positives = float(benefit[pairs[:, 0], pairs[:, 1]].sum())
    return 2 * id_true_positives / total
