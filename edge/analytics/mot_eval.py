"""Scoring tracker output against MOTChallenge ground truth, per sequence and over several, as
the MOTChallenge benchmark does: only considered pedestrians count, boxes on distractors are
dropped, then CLEAR MOT, IDF1 and HOTA; and ByteTrack on a sequence's public detections.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.analytics.bytetrack import ByteTracker, TrackerConfig
from edge.analytics.hota import hota_scores
from edge.analytics.mot import (
    drop_distractor_matches,
    frame_indices,
    rows_xyxy,
    scored_gt,
    tracks_to_rows,
)
from edge.analytics.mot_metrics import tracking_scores


@dataclass(frozen=True)
class SequenceScores:
    name: str
    mota: float
    idf1: float
    hota: float
    det_a: float
    ass_a: float
    id_switches: int
    false_positives: int
    misses: int
    gt_objects: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def prepared(gt: np.ndarray, hypotheses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ground truth that counts and the hypotheses that are not on distractors."""
    return scored_gt(gt), drop_distractor_matches(gt, hypotheses)


def score(name: str, gt: np.ndarray, hypotheses: np.ndarray) -> SequenceScores:
    """`gt (N,10)` as prepared, `hypotheses (M,10)` as prepared → the sequence's scores."""
    clear, hota = tracking_scores(gt, hypotheses), hota_scores(gt, hypotheses)
    return SequenceScores(name, clear.mota, clear.idf1, hota.hota, hota.det_a, hota.ass_a,
                          clear.id_switches, clear.false_positives, clear.misses,
                          clear.gt_objects)  # fmt: skip


def concatenated(pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Several sequences' `(gt, hypotheses)` as one: frames and ids of each shifted past the
    previous ones', so that nothing matches across sequences. Scored whole, this gives the
    benchmark's combined figures (counts summed, IDF1 and HOTA over all tracks)."""
    frame_offset = id_offset = 0.0
    gts, hyps = [], []
    for gt, hyp in pairs:
        for rows, out in ((gt, gts), (hyp, hyps)):
            shifted = rows.copy()
            shifted[:, 0] += frame_offset
            shifted[:, 1] += id_offset
            out.append(shifted)
        both = np.concatenate([gt, hyp])
        if len(both):
            frame_offset += both[:, 0].max()
            id_offset += both[:, 1].max() + 1
    return np.concatenate(gts).reshape(-1, 10), np.concatenate(hyps).reshape(-1, 10)


def track_detections(det: np.ndarray, frames: int, config: TrackerConfig) -> np.ndarray:
    """ByteTrack over public detections `det (N,10)` (MOT rows, conf in column 6) of a sequence
    of `frames` frames → tracker-output rows."""
    tracker = ByteTracker(config)
    out = []
    det_frames, none = frame_indices(det), np.zeros(0, np.int64)
    for frame in range(1, frames + 1):
        rows = det[det_frames.get(frame, none)]
        xyxy, scores = rows_xyxy(rows), rows[:, 6]
        ids = tracker.update(xyxy, scores, np.zeros(len(rows), np.int64))
        tracked = ids > 0
        out.append(tracks_to_rows(frame, ids[tracked], xyxy[tracked], scores[tracked]))
    return np.concatenate(out) if out else np.zeros((0, 10))


def format_scores(results: list[SequenceScores]) -> str:
    """MOTChallenge's result table: percentages, then counts; a row per sequence."""
    width = max(len("sequence"), *(len(r.name) for r in results))
    percent = ("HOTA", "DetA", "AssA", "MOTA", "IDF1")
    counts = ("IDsw", "FP", "FN", "GT")
    lines = [f"{'sequence':<{width}}" + "".join(f"{h:>8}" for h in percent + counts)]
    for r in results:
        values = (r.hota, r.det_a, r.ass_a, r.mota, r.idf1)
        lines.append(f"{r.name:<{width}}" + "".join(f"{v * 100:>8.1f}" for v in values)
                     + "".join(f"{n:>8}" for n in (r.id_switches, r.false_positives, r.misses,
                                                   r.gt_objects)))  # fmt: skip
    return "\n".join(lines)
