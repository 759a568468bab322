"""Calibration images → model input batches through `edge.preprocess`, driven by the model's
manifest: the same code as inference, so calibration and the runtime cannot disagree about
letterbox, colour order or scaling (the most common cause of INT8 accuracy loss).

`select_images` picks a deterministic, evenly spread subset; `calibration_digest` identifies the
set (file names and contents) for the artifact's provenance.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import JetkitError
from edge.images import IMAGE_SUFFIXES, list_images, read_image
from edge.manifest import Manifest
from edge.preprocess import Preprocessor


def calibration_images(source: str | Path) -> list[Path]:
    """A folder (or file) of images, or a data.yaml / COCO json whose training images serve."""
    path = Path(source)
    if path.suffix in (".yaml", ".yml", ".json") or (
        path.is_dir() and (path / "data.yaml").is_file()
    ):
        from edge.datasets import load_dataset

        dataset = load_dataset(path)
        return [sample.image_path for sample in (dataset.train or dataset.val)]
    return list_images([str(path)])


def select_images(paths: Sequence[Path], count: int) -> list[Path]:
    """`count` images spread evenly over the sorted list (all of them when there are fewer): the
    same choice every run, and not just the first folder of a sorted data set."""
    if count < 1:
        raise JetkitError(f"--images must be >= 1, got {count}")
    ordered = sorted(paths)
    if len(ordered) <= count:
        return ordered
    picks = np.linspace(0, len(ordered) - 1, count).round().astype(int)
    return [ordered[i] for i in picks]


# Fewer images than this give ranges of a handful of frames, not of a camera's scenes.
MIN_CALIBRATION_IMAGES = 8


def is_grayscale(image_bgr: np.ndarray) -> bool:
    """Whether a BGR `(H,W,3)` image has equal channels everywhere (a grayscale file decoded to
    BGR), judged on every fourth pixel."""
    sample = image_bgr[::4, ::4]
    return bool(
        np.array_equal(sample[..., 0], sample[..., 1])
        and np.array_equal(sample[..., 1], sample[..., 2])
    )


def check_calibration_images(
    paths: Sequence[Path], source: str | Path, allow_grayscale: bool = False
) -> None:
    """Refuse calibration sets that would give ranges unlike the deployment's: too few images,
    or only grayscale ones for a colour model. Reads every image (also proving each decodes)
    before any calibration starts."""
    if len(paths) < MIN_CALIBRATION_IMAGES:
        raise JetkitError(
            f"{source}: {len(paths)} calibration image(s); INT8 ranges need at least "
            f"{MIN_CALIBRATION_IMAGES} (64-256 frames like the deployment's are best)"
        )
    if allow_grayscale:
        return
    if all(is_grayscale(read_image(path)) for path in paths):
        raise JetkitError(
            f"{source}: all {len(paths)} calibration images are grayscale, but the model takes "
            "3-channel colour; calibrate on colour frames like the deployment's (or, for "
            "cameras that really are monochrome, pass --allow-grayscale)"
        )


def calibration_digest(paths: Sequence[Path]) -> str:
    """sha256 over the names and contents of the chosen images, in order."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


@dataclass
class CalibrationBatches:
    """Iterates `(B, 3, H, W)` float32 batches of the images, preprocessed as the manifest says;
    `B` is at most `batch` (and the model's max batch)."""

    paths: Sequence[Path]
    manifest: Manifest
    batch: int = 1

    def __post_init__(self) -> None:
        if not self.paths:
            raise JetkitError(f"no calibration images (expected {', '.join(IMAGE_SUFFIXES)} files)")
        self.batch = max(1, min(self.batch, self.manifest.input.max_batch))

    def __len__(self) -> int:
        return -(-len(self.paths) // self.batch)

    def __iter__(self) -> Iterator[np.ndarray]:
        preprocess = Preprocessor(
            self.manifest.preprocess,
            self.manifest.input.size_hw,
            max_batch=self.batch,
            dtype=self.manifest.input.dtype,
        )
        for start in range(0, len(self.paths), self.batch):
            frames = [read_image(path) for path in self.paths[start : start + self.batch]]
            tensor, _ = preprocess(frames)
            yield np.array(tensor)
