"""The teacher's detections on un-augmented images, kept on disk by (teacher digest, image digest),
so that repeated runs and several students distilled from one teacher do not pay for the teacher
again. Detections are stored in the teacher's own class ids: one cache serves students of any
subset of its classes.

Entries are `.npz` files of plain arrays (read with `allow_pickle=False`), written atomically; an
unreadable entry is computed again.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from edge.atomic import write_bytes_atomic
from edge.datasets import Sample
from edge.evaluate import EVAL_THRESHOLDS, ImageDetections
from edge.models import file_sha256

CACHE_DIR_ENV = "JETKIT_CACHE_DIR"
# Part of every key: entries made at other detection settings are other entries.
SETTINGS_TAG = (
    f"conf{EVAL_THRESHOLDS.conf:g}-iou{EVAL_THRESHOLDS.iou:g}-max{EVAL_THRESHOLDS.max_detections}"
)


def default_cache_dir(environ: dict[str, str] | None = None) -> Path:
    """`$JETKIT_CACHE_DIR`, else `$XDG_CACHE_HOME/jetkit`, else `~/.cache/jetkit`."""
    env = os.environ if environ is None else environ
    if env.get(CACHE_DIR_ENV):
        return Path(env[CACHE_DIR_ENV])
    base = Path(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "jetkit"


class TeacherOutputCache:
    """Entries of one teacher under `root/teacher-outputs/<teacher digest>-<settings>/`."""

    def __init__(self, root: Path, teacher_sha256: str) -> None:
        self.directory = root / "teacher-outputs" / f"{teacher_sha256[:32]}-{SETTINGS_TAG}"

    def path(self, image_sha256: str) -> Path:
        return self.directory / image_sha256[:2] / f"{image_sha256}.npz"

    def load(self, image_sha256: str) -> ImageDetections | None:
        path = self.path(image_sha256)
        try:
            with np.load(path, allow_pickle=False) as data:
                found = ImageDetections(
                    data["xyxy"].astype(np.float32),
                    data["scores"].astype(np.float32),
                    data["class_ids"].astype(np.int64),
                )
        except (OSError, KeyError, ValueError, zipfile.BadZipFile):
            return None
        count = found.scores.shape[0]
        if found.xyxy.shape != (count, 4) or found.class_ids.shape != (count,):
            return None
        return found

    def save(self, image_sha256: str, found: ImageDetections) -> None:
        buffer = io.BytesIO()
        np.savez(
            buffer,
            xyxy=np.asarray(found.xyxy, np.float32),
            scores=np.asarray(found.scores, np.float32),
            class_ids=np.asarray(found.class_ids, np.int64),
        )
        path = self.path(image_sha256)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, buffer.getvalue())


def cached_predictions(
    predict: Callable[[Sequence[Sample]], list[ImageDetections]],
    samples: Sequence[Sample],
    cache: TeacherOutputCache,
    log: Callable[[str], None] | None = None,
    chunk: int = 64,
) -> list[ImageDetections]:
    """`predict(samples)`, taking what the cache holds and adding what it computes (in chunks,
    so an interrupted run keeps what it paid for)."""
    digests = [file_sha256(sample.image_path) for sample in samples]
    results: list[ImageDetections | None] = [cache.load(digest) for digest in digests]
    missing = [index for index, found in enumerate(results) if found is None]
    for start in range(0, len(missing), chunk):
        picked = missing[start : start + chunk]
        for index, found in zip(picked, predict([samples[i] for i in picked]), strict=True):
            cache.save(digests[index], found)
            results[index] = found
    if log:
        log(
            f"teacher outputs for {len(samples)} images: {len(samples) - len(missing)} from the "
            f"cache ({cache.directory}), {len(missing)} computed"
        )
    return [found for found in results if found is not None]
