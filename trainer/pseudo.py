"""Unlabelled footage as training data: the frames (image folders, videos sampled every N frames,
`jetkit run` recordings) and the teacher's hard pseudo-labels on them.

The hard labels are the teacher's detections at or above one confidence: the one where its
detections agree best with the labelled val set (best F1), when there is one. The soft targets
(the teacher's scores on every augmented batch) come from `trainer.distill` in every case.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from edge.boxes import clip_xyxy
from edge.datasets import Sample
from edge.errors import JetkitError
from edge.evaluate import ImageDetections
from edge.footage import VIDEO_SUFFIXES, FramesConfig, extract_frames
from edge.images import IMAGE_SUFFIXES
from edge.models import file_sha256

# Without labels the run validates on the teacher's pseudo-labels of every 10th frame.
HOLDOUT_EVERY = 10
# Without a labelled val set to choose on: Ultralytics' and jetkit's default detection threshold.
DEFAULT_PSEUDO_THRESHOLD = 0.25
# Below this a detection is more often clutter than object for any detector worth distilling.
MIN_PSEUDO_THRESHOLD = 0.05
# Teachers under this F1 on val made students worse than their labels alone (BENCHMARKS.md).
WEAK_TEACHER_F1 = 0.5
MIN_BOX_PX = 1.0

Log = Callable[[str], None]


def footage_images(
    source: str, every: int, frames_root: Path, log: Log | None = None
) -> list[Path]:
    """The frames of `source`: a folder's images (and, searched recursively, every `every`-th
    frame of its videos, near-duplicates dropped), or a video file's. Video frames are extracted
    once into `frames_root/<video digest>-every<N>/` and found there again by later runs."""
    path = Path(source)
    if not path.exists():
        raise JetkitError(
            f"footage {source} does not exist; give a folder of images or videos, or a video file"
        )
    if path.is_file():
        if path.suffix.lower() not in VIDEO_SUFFIXES:
            raise JetkitError(
                f"footage {source} is neither a folder nor a video ({', '.join(VIDEO_SUFFIXES)})"
            )
        return _video_frames(path, every, frames_root, log)
    images, videos = [], []
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        if file.suffix.lower() in IMAGE_SUFFIXES:
            images.append(file)
        elif file.suffix.lower() in VIDEO_SUFFIXES:
            videos.append(file)
    for video in videos:
        images.extend(_video_frames(video, every, frames_root, log))
    if not images:
        raise JetkitError(
            f"footage folder {source} holds no images ({', '.join(IMAGE_SUFFIXES)}) and no "
            f"videos ({', '.join(VIDEO_SUFFIXES)}); point --unlabeled at the frames, or extract "
            "them with `jetkit data frames`"
        )
    return images


def _video_frames(video: Path, every: int, frames_root: Path, log: Log | None) -> list[Path]:
    folder = frames_root / "frames" / f"{file_sha256(video)[:24]}-every{every}"
    frames = sorted(folder.glob("*.jpg")) if folder.is_dir() else []
    if not frames:
        report = extract_frames([str(video)], folder, FramesConfig(every=every, dedupe=True), log)
        frames = sorted(report.written)
    elif log:
        log(f"frames: {video}: {len(frames)} frames from an earlier extraction ({folder})")
    return frames


def holdout_split(samples: Sequence[Sample]) -> tuple[list[Sample], list[Sample]]:
    """Footage without labels → (train, held out): every `HOLDOUT_EVERY`-th frame held out, so
    both halves span the whole footage."""
    train = [s for i, s in enumerate(samples) if i % HOLDOUT_EVERY != HOLDOUT_EVERY - 1]
    held = [s for i, s in enumerate(samples) if i % HOLDOUT_EVERY == HOLDOUT_EVERY - 1]
    return train, held


def to_student_classes(found: ImageDetections, index: np.ndarray) -> ImageDetections:
    """Detections in teacher class ids → the student's (`index[c]` is the teacher class of
    student class `c`); detections of classes the student lacks are dropped."""
    lookup = np.full(max(int(index.max(initial=0)), int(found.class_ids.max(initial=0))) + 1, -1)
    lookup[index] = np.arange(index.shape[0])
    student_ids = lookup[found.class_ids] if found.class_ids.size else found.class_ids
    keep = student_ids >= 0
    return ImageDetections(found.xyxy[keep], found.scores[keep], student_ids[keep].astype(np.int64))


def pseudo_labelled(
    samples: Sequence[Sample], detections: Sequence[ImageDetections], threshold: float
) -> list[Sample]:
    """Each sample with the detections scoring at least `threshold` as its boxes (clipped to the
    image; boxes under a pixel dropped)."""
    labelled = []
    for sample, found in zip(samples, detections, strict=True):
        keep = found.scores >= threshold
        xyxy = clip_xyxy(np.asarray(found.xyxy[keep], np.float32), sample.size_wh)
        sizes = xyxy[:, 2:] - xyxy[:, :2]
        big = (sizes >= MIN_BOX_PX).all(axis=1)
        labelled.append(
            Sample(sample.image_path, sample.size_wh, xyxy[big], found.class_ids[keep][big])
        )
    return labelled


def box_count(samples: Sequence[Sample]) -> int:
    return sum(s.class_ids.shape[0] for s in samples)
