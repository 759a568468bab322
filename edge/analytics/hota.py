"""HOTA (Luiten et al. 2021, "HOTA: A Higher Order Metric for Evaluating Multi-Object
Tracking"), as TrackEval computes it: detection (DetA), association (AssA) and localisation
(LocA) accuracy at each IoU threshold alpha = 0.05, 0.10, … 0.95; HOTA(alpha) =
sqrt(DetA(alpha)·AssA(alpha)); the scores are the means over alpha.

Per frame, detections are matched one-to-one by the Hungarian method on IoU weighted by how well
the two tracks align over the whole sequence (their soft track-level Jaccard score), so that a
match that keeps identities is preferred to an equally good one that breaks them. Rows are
MOTChallenge rows (`edge.analytics.mot`), filtered as the caller scores them (`scored_gt`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edge.analytics.mot import frame_indices, rows_xyxy
from edge.boxes import pairwise_iou

ALPHAS = np.arange(0.05, 0.99, 0.05)
_EPS = np.finfo(float).eps


@dataclass(frozen=True)
class HotaScores:
    hota: float
    det_a: float
    ass_a: float
    loc_a: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _frames(gt: np.ndarray, hypotheses: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per frame (ascending, either side present): gt id indices `(G,)`, hypothesis id indices
    `(H,)` and their IoU `(G,H)`; ids numbered from 0 in sorted order."""
    _, g_index = np.unique(gt[:, 1], return_inverse=True)
    _, h_index = np.unique(hypotheses[:, 1], return_inverse=True)
    g_frames, h_frames = frame_indices(gt), frame_indices(hypotheses)
    none = np.zeros(0, np.int64)
    frames = []
    for frame in sorted(g_frames.keys() | h_frames.keys()):
        g_at, h_at = g_frames.get(frame, none), h_frames.get(frame, none)
        g, h = gt[g_at], hypotheses[h_at]
        iou = (pairwise_iou(rows_xyxy(g), rows_xyxy(h)) if len(g) and len(h)
               else np.zeros((len(g), len(h))))  # fmt: skip
        frames.append((g_index[g_at], h_index[h_at], iou))
    return frames


def hota_scores(gt: np.ndarray, hypotheses: np.ndarray) -> HotaScores:
    """`gt (N,10)` and `hypotheses (M,10)` MOT rows → HOTA, DetA, AssA, LocA (means over alpha)."""
    from scipy.optimize import linear_sum_assignment

    if not len(hypotheses) or not len(gt):
        return HotaScores(0.0, 0.0, 0.0, 1.0)  # TrackEval's convention for an empty side
    frames = _frames(gt, hypotheses)
    g_count = np.zeros((len(np.unique(gt[:, 1])), 1))
    h_count = np.zeros((1, len(np.unique(hypotheses[:, 1]))))
    potential = np.zeros((g_count.shape[0], h_count.shape[1]))
    for g_idx, h_idx, iou in frames:
        # Each pair's share of the similarity its two boxes have with anything in the frame.
        denominator = iou.sum(0)[np.newaxis, :] + iou.sum(1)[:, np.newaxis] - iou
        share = np.divide(iou, denominator, out=np.zeros_like(iou), where=denominator > _EPS)
        potential[g_idx[:, np.newaxis], h_idx[np.newaxis, :]] += share
        g_count[g_idx] += 1
        h_count[0, h_idx] += 1
    alignment = potential / (g_count + h_count - potential)
    true_pos, false_neg, false_pos = (np.zeros(len(ALPHAS)) for _ in range(3))
    loc_sum = np.zeros(len(ALPHAS))
    matched = np.zeros((len(ALPHAS), *potential.shape))
    for g_idx, h_idx, iou in frames:
        if not len(g_idx) or not len(h_idx):
            false_neg += len(g_idx)
            false_pos += len(h_idx)
            continue
        rows, cols = linear_sum_assignment(-alignment[np.ix_(g_idx, h_idx)] * iou)
        pair_iou = iou[rows, cols]
        for a, alpha in enumerate(ALPHAS):
            keep = pair_iou >= alpha - _EPS
            count = int(keep.sum())
            true_pos[a] += count
            false_neg[a] += len(g_idx) - count
            false_pos[a] += len(h_idx) - count
            loc_sum[a] += pair_iou[keep].sum()
            matched[a, g_idx[rows[keep]], h_idx[cols[keep]]] += 1
    ass_a = np.array([
        np.sum(m * m / np.maximum(1, g_count + h_count - m)) / max(1.0, tp)
        for m, tp in zip(matched, true_pos, strict=True)
    ])  # fmt: skip
    det_a = true_pos / np.maximum(1, true_pos + false_neg + false_pos)
    loc_a = np.maximum(1e-10, loc_sum) / np.maximum(1e-10, true_pos)
    return HotaScores(
        hota=float(np.mean(np.sqrt(det_a * ass_a))),
        det_a=float(det_a.mean()),
        ass_a=float(ass_a.mean()),
        loc_a=float(loc_a.mean()),
    )
