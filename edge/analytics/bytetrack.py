"""ByteTrack (Zhang et al., ECCV 2022): multi-object tracking by associating every detection box,
the low-score ones included.

Per frame, after a constant-velocity Kalman prediction of every track:
1. tracked and lost tracks take the high-score detections (score >= `high`) by IoU fused with
   the score, Hungarian assignment, IoU at least `match_iou`;
2. the tracks still unmatched that were tracked take the low-score detections (`low` < score <
   `high`) at IoU >= 0.5: an occluded object's weak box keeps its track;
3. tentative tracks (seen once) take what high-score detections are left (IoU >= 0.3), or end;
4. the high-score detections left start tentative tracks; tracked ones left unmatched are lost,
   and lost ones end after `buffer_frames` frame periods.
The constants of steps 2 and 3 and the fused cost are ByteTrack's own (and Ultralytics' and
supervision's). Unlike the reference, a track gets its id when it is confirmed, not when it is
first seen, so that ids count objects (supervision does the same), and time is in frame periods
that may skip: `update(..., dt=3)` after two dropped frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.analytics import kalman
from edge.analytics.assignment import assign
from edge.boxes import centres_inside, pairwise_iou
from edge.errors import JetkitError

TRACKER_KINDS = ("bytetrack",)
TENTATIVE, TRACKED, LOST = 0, 1, 2
# ByteTrack's second association (low-score boxes) and unconfirmed-track thresholds, as 1 - IoU.
SECOND_MAX_COST = 0.5
TENTATIVE_MAX_COST = 0.7
# A lost track this close to a tracked one is the same object twice: the younger one goes.
DUPLICATE_IOU = 0.85


@dataclass(frozen=True)
class TrackerConfig:
    """`high`: detections that match first and start tracks; `low`: the floor of the second
    association; `match_iou`: the least IoU of a first-association match; `buffer_frames`: how
    long a lost track waits for its object, in frame periods."""

    kind: str = "bytetrack"
    high: float = 0.5
    low: float = 0.1
    match_iou: float = 0.2
    buffer_frames: int = 30

    def __post_init__(self) -> None:
        if self.kind not in TRACKER_KINDS:
            raise JetkitError(
                f"tracker.kind {self.kind!r} is not one of {', '.join(TRACKER_KINDS)}"
            )
        if not 0 < self.high <= 1:
            raise JetkitError(f"tracker.high must be in (0, 1], got {self.high}")
        if not 0 <= self.low < self.high:
            raise JetkitError(
                f"tracker.low must be in [0, tracker.high={self.high}), got {self.low}"
            )
        if not 0 < self.match_iou < 1:
            raise JetkitError(f"tracker.match_iou must be in (0, 1), got {self.match_iou}")
        if not isinstance(self.buffer_frames, int) or self.buffer_frames < 1:
            raise JetkitError(
                f"tracker.buffer_frames must be an integer >= 1, got {self.buffer_frames!r}"
            )


@dataclass(frozen=True)
class Tracks:
    """The confirmed tracks of one frame: `ids (T,)`, `xyxy (T,4)` (the Kalman estimate),
    `class_ids (T,)`, `scores (T,)` (their last detection's), `matched (T,)` whether a detection
    of this frame is theirs (False: coasting on the prediction)."""

    ids: np.ndarray
    xyxy: np.ndarray
    class_ids: np.ndarray
    scores: np.ndarray
    matched: np.ndarray


class ByteTracker:
    """One stream's tracker. `update(xyxy, scores, class_ids, dt)` per frame → each detection's
    track id (-1: not part of a confirmed track); `ended_ids` then holds the confirmed tracks
    that update ended."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self._next_id = 1
        self._frames = 0
        self.ids = np.zeros(0, np.int64)  # 0 until confirmed
        self.mean = np.zeros((0, 8))
        self.cov = np.zeros((0, 8, 8))
        self.state = np.zeros(0, np.int8)
        self.class_ids = np.zeros(0, np.int64)
        self.scores = np.zeros(0)
        self.lost_for = np.zeros(0)  # frame periods since the last match
        self.first_frame = np.zeros(0, np.int64)
        self._matched = np.zeros(0, bool)
        self._detection_of = np.zeros(0, np.int64)  # this frame's detection of each track
        # Where each track was last detected, and whether the detector found it the last time it
        # looked there (motion gating holds tracks where nothing moved: this is where they are).
        self.box_xyxy = np.zeros((0, 4))
        self.visible = np.zeros(0, bool)
        self.ended_ids = np.zeros(0, np.int64)  # confirmed tracks the last update ended

    def __len__(self) -> int:
        return len(self.ids)

    def update(
        self,
        xyxy: np.ndarray,
        scores: np.ndarray,
        class_ids: np.ndarray,
        dt: float = 1.0,
        region_xyxy: tuple[float, float, float, float] | None = None,
    ) -> np.ndarray:
        """One frame's detections `xyxy (D,4)`, `scores (D,)`, `class_ids (D,)`, `dt` frame
        periods after the previous one → `track_ids (D,)` int64, -1 where none. With
        `region_xyxy` (the detector looked only there), tracks whose centre is outside it are
        held: neither matched nor lost."""
        config = self.config
        self._frames += 1
        detection_ids = np.full(len(scores), -1, np.int64)
        self._predict(dt)
        self._matched = np.zeros(len(self), bool)
        self._detection_of = np.full(len(self), -1, np.int64)
        track_xyxy = kalman.xyah_to_xyxy(self.mean)
        looked = np.ones(len(self), bool)
        if region_xyxy is not None:
            looked = centres_inside(track_xyxy, region_xyxy)
            self.lost_for[~looked] -= dt  # not seen, but not looked for either
        self.visible[looked] = False  # until a detection of this frame matches it

        high = np.flatnonzero(scores >= config.high)
        second = np.flatnonzero((scores > config.low) & (scores < config.high))
        pool = np.flatnonzero((self.state != TENTATIVE) & looked)

        # 1. Confirmed and lost tracks with the high-score detections.
        cost = 1 - pairwise_iou(track_xyxy[pool], xyxy[high]) * scores[high][None, :]
        pairs, left_tracks, left_high = assign(cost, 1 - config.match_iou)
        self._apply(pool[pairs[:, 0]], high[pairs[:, 1]], xyxy, scores, class_ids)
        pool, high = pool[left_tracks], high[left_high]

        # 2. Tracks that were tracked until now with the low-score detections.
        tracked = pool[self.state[pool] == TRACKED]
        cost = 1 - pairwise_iou(track_xyxy[tracked], xyxy[second])
        pairs, left_tracked, _ = assign(cost, SECOND_MAX_COST)
        self._apply(tracked[pairs[:, 0]], second[pairs[:, 1]], xyxy, scores, class_ids)
        self.state[tracked[left_tracked]] = LOST

        # 3. Tentative tracks with the high-score detections left; unmatched, they end.
        tentative = np.flatnonzero((self.state == TENTATIVE) & looked)
        cost = 1 - pairwise_iou(track_xyxy[tentative], xyxy[high]) * scores[high][None, :]
        pairs, left_tentative, left_high = assign(cost, TENTATIVE_MAX_COST)
        self._apply(tentative[pairs[:, 0]], high[pairs[:, 1]], xyxy, scores, class_ids)
        ended = tentative[left_tentative]
        high = high[left_high]

        # 4. New tracks; lost tracks past the buffer and duplicates end.
        ended = np.concatenate([ended, np.flatnonzero(
            (self.state == LOST) & (self.lost_for > config.buffer_frames))])  # fmt: skip
        ended = np.unique(np.concatenate([ended, self._duplicates()]))
        self.ended_ids = self.ids[ended][self.ids[ended] > 0]
        self._remove(ended)
        self._start(high, xyxy, scores, class_ids)

        for track in np.flatnonzero(self._matched):
            detection_ids[self._detection_of[track]] = self.ids[track]
        return detection_ids

    def hold(self) -> None:
        """A frame the detector did not look at (nothing moved): the tracks stay as they are."""
        self._matched = np.zeros(len(self), bool)
        self.ended_ids = np.zeros(0, np.int64)

    def held(self) -> Tracks:
        """The confirmed tracks the detector found the last time it looked where they are but
        did not look at in this frame (held), each at the box it was last detected in: nothing
        moved there, so that box is still right, where the filter's estimate may lag."""
        keep = (self.ids > 0) & self.visible & ~self._matched
        return Tracks(self.ids[keep], self.box_xyxy[keep], self.class_ids[keep],
                      self.scores[keep], self._matched[keep])  # fmt: skip

    def tracks(self) -> Tracks:
        """The confirmed tracks now (tracked this frame, or coasting while lost)."""
        keep = self.ids > 0
        return Tracks(
            self.ids[keep],
            kalman.xyah_to_xyxy(self.mean[keep]),
            self.class_ids[keep],
            self.scores[keep],
            self._matched[keep],
        )

    def _predict(self, dt: float) -> None:
        if not len(self):
            return
        mean = self.mean.copy()
        # As ByteTrack: a track that is not being tracked stops growing or shrinking.
        mean[self.state != TRACKED, 7] = 0
        self.mean, self.cov = kalman.predict(mean, self.cov, np.full(len(self), float(dt)))
        self.lost_for += dt

    def _apply(
        self,
        tracks: np.ndarray,
        detections: np.ndarray,
        xyxy: np.ndarray,
        scores: np.ndarray,
        class_ids: np.ndarray,
    ) -> None:
        """Matched pairs: the filter corrects, the track is (or becomes) tracked and confirmed."""
        if not len(tracks):
            return
        self.mean[tracks], self.cov[tracks] = kalman.update(
            self.mean[tracks], self.cov[tracks], kalman.xyxy_to_xyah(xyxy[detections])
        )
        self.state[tracks] = TRACKED
        self.lost_for[tracks] = 0
        self.scores[tracks] = scores[detections]
        self.class_ids[tracks] = class_ids[detections]
        self._matched[tracks] = True
        self._detection_of[tracks] = detections
        self.box_xyxy[tracks] = xyxy[detections]
        self.visible[tracks] = True
        unnamed = tracks[self.ids[tracks] == 0]
        self.ids[unnamed] = np.arange(self._next_id, self._next_id + len(unnamed))
        self._next_id += len(unnamed)

    def _start(
        self, detections: np.ndarray, xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray
    ) -> None:
        if not len(detections):
            return
        mean, cov = kalman.initiate(kalman.xyxy_to_xyah(xyxy[detections]))
        count = len(detections)
        first = self._frames == 1  # as ByteTrack: the first frame's tracks are confirmed at once
        ids = np.arange(self._next_id, self._next_id + count) if first else np.zeros(count, int)
        self._next_id += count if first else 0
        self.ids = np.concatenate([self.ids, ids.astype(np.int64)])
        self.mean = np.concatenate([self.mean, mean])
        self.cov = np.concatenate([self.cov, cov])
        self.state = np.concatenate([self.state, np.full(count, TRACKED if first else TENTATIVE,
                                                         np.int8)])  # fmt: skip
        self.class_ids = np.concatenate([self.class_ids, class_ids[detections]])
        self.scores = np.concatenate([self.scores, scores[detections]])
        self.lost_for = np.concatenate([self.lost_for, np.zeros(count)])
        self.first_frame = np.concatenate([self.first_frame, np.full(count, self._frames)])
        self._matched = np.concatenate([self._matched, np.full(count, first)])
        self._detection_of = np.concatenate([self._detection_of, detections])
        self.box_xyxy = np.concatenate([self.box_xyxy, xyxy[detections]])
        self.visible = np.concatenate([self.visible, np.ones(count, bool)])

    def _duplicates(self) -> np.ndarray:
        """Of each tracked/lost pair overlapping at IoU > 0.85, the younger track."""
        tracked = np.flatnonzero(self.state == TRACKED)
        lost = np.flatnonzero(self.state == LOST)
        if not len(tracked) or not len(lost):
            return np.zeros(0, np.int64)
        boxes = kalman.xyah_to_xyxy(self.mean)
        t, lo = np.nonzero(pairwise_iou(boxes[tracked], boxes[lost]) > DUPLICATE_IOU)
        t, lo = tracked[t], lost[lo]
        return np.where(self.first_frame[t] > self.first_frame[lo], t, lo)

    def _remove(self, tracks: np.ndarray) -> None:
        if not len(tracks):
            return
        keep = np.ones(len(self), bool)
        keep[tracks] = False
        for name in ("ids", "mean", "cov", "state", "class_ids", "scores", "lost_for",
                     "first_frame", "_matched", "_detection_of", "box_xyxy", "visible"):  # fmt: skip
            setattr(self, name, getattr(self, name)[keep])
