"""Detection samples as torch tensors: the Dataset, its collate function, batch normalisation and
a DataLoader whose order and contents are a function of (seed, epoch) alone.

An item is a uint8 `(3,H,W)` image in the model's channel order and `(n,5)` float32 targets
`[class_id, x1, y1, x2, y2]` in input pixels. Normalisation to float happens per batch on the
training device (`normalize_batch`), which moves a quarter of the bytes a float image would.
Without augmentation the normalised image equals what `edge.preprocess.Preprocessor` feeds the
model at run time, bit for bit; with it, every random choice comes from
`np.random.default_rng((seed, epoch, index))`, so an item is the same whichever worker or rank
loads it, and a resumed run sees exactly the data the interrupted one would have.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from edge.errors import JetkitError
from edge.images import read_image
from edge.manifest import PreprocessSpec
from edge.preprocess import Transform, plan_placement, source_channels
from trainer.augment import (
    AugmentConfig,
    augment_hsv,
    flip,
    letterbox,
    mosaic4,
    random_affine,
    resize_to_fit,
)

if TYPE_CHECKING:
    from edge.datasets import Sample

Item = tuple[np.ndarray, np.ndarray, np.ndarray]  # BGR image, xyxy (N,4), class_ids (N,)


class DetectionDataset(Dataset):
    """`samples` fed at `input_hw` as `spec` says; augmented when `augment` is given (training),
    exactly as the runtime preprocesses them otherwise (validation)."""

    def __init__(
        self,
        samples: Sequence[Sample],
        input_hw: tuple[int, int],
        spec: PreprocessSpec,
        augment: AugmentConfig | None,
        seed: int = 0,
    ) -> None:
        if not isinstance(seed, int) or seed < 0:
            raise JetkitError(f"seed must be an integer >= 0, got {seed!r}")
        self.samples = list(samples)
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.spec = spec
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self.mosaic = True
        self._channels = list(source_channels(spec))

    def set_epoch(self, epoch: int, mosaic: bool = True) -> None:
        """Draw the next epoch's augmentations; `mosaic=False` for the last epochs (close-mosaic),
        which then see whole images as validation does."""
        self.epoch = epoch
        self.mosaic = mosaic

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """→ image uint8 `(3,H,W)` in model channel order, targets float32 `(n,5)`
        `[class_id, x1, y1, x2, y2]` in input pixels, and `index`."""
        if self.augment is None:
            image, xyxy, class_ids = self._letterboxed(index)
        else:
            image, xyxy, class_ids = self._augmented(index, self.augment)
        chw = np.ascontiguousarray(image[:, :, self._channels].transpose(2, 0, 1))
        targets = np.concatenate([class_ids[:, None].astype(np.float32), xyxy], axis=1)
        return (
            torch.from_numpy(chw),
            torch.from_numpy(targets.astype(np.float32, copy=False)),
            index,
        )

    def transform(self, index: int) -> Transform:
        """Input → frame mapping of item `index` without augmentation (validation)."""
        return plan_placement(tuple(self.samples[index].size_wh), self.input_hw, self.spec)[1]

    def _read(self, index: int) -> np.ndarray:
        sample = self.samples[index]
        path = sample.image_path
        try:
            image = read_image(path)
        except OSError as error:
            raise JetkitError(
                f"image {path} cannot be read ({error.strerror or error}); restore the file or "
                f"remove it from the dataset"
            ) from error
        height, width = image.shape[:2]
        listed_w, listed_h = sample.size_wh
        if (width, height) != (listed_w, listed_h):
            raise JetkitError(
                f"image {path} decodes to {width}x{height} but the dataset lists it as "
                f"{listed_w}x{listed_h}, the size its labels are relative to; was the file "
                f"replaced (or is it EXIF-rotated)? Re-save it upright or fix its labels"
            )
        return image

    def _letterboxed(self, index: int) -> Item:
        sample = self.samples[index]
        image, xyxy = letterbox(self._read(index), sample.xyxy, self.input_hw, self.spec)
        return image, xyxy, sample.class_ids

    def _fitted(self, index: int) -> Item:
        sample = self.samples[index]
        image, xyxy = resize_to_fit(self._read(index), sample.xyxy, self.input_hw, self.spec)
        return image, xyxy, sample.class_ids

    def _augmented(self, index: int, config: AugmentConfig) -> Item:
        """Letterbox (or a mosaic of this and three random samples) → random scale/translate →
        HSV → flips."""
        rng = np.random.default_rng((self.seed, self.epoch, index))
        pad = self.spec.pad_value
        if self.mosaic and rng.random() < config.mosaic:
            picks = [index, *rng.integers(0, len(self.samples), 3).tolist()]
            images, boxes, class_ids = zip(*(self._fitted(i) for i in picks), strict=True)
            image, xyxy, ids = mosaic4(images, boxes, class_ids, self.input_hw, rng, pad)
        else:
            image, xyxy, ids = self._letterboxed(index)
        image, xyxy, ids = random_affine(
            image,
            xyxy,
            ids,
            self.input_hw,
            config.scale,
            config.translate,
            rng,
            pad,
            config.min_box_px,
            config.min_area_ratio,
        )
        image = augment_hsv(image, config.hsv_gains, rng)
        if rng.random() < config.flip_lr:
            image, xyxy = flip(image, xyxy, horizontal=True)
        if rng.random() < config.flip_ud:
            image, xyxy = flip(image, xyxy, horizontal=False)
        return image, xyxy, ids


def collate(
    batch: Sequence[tuple[torch.Tensor, torch.Tensor, int]],
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Items → images uint8 `(B,3,H,W)`, targets float32 `(M,6)`
    `[batch_index, class_id, x1, y1, x2, y2]`, and the dataset indices."""
    images, targets, indices = zip(*batch, strict=True)
    rows = [
        torch.cat([torch.full((len(t), 1), float(slot)), t], dim=1)
        for slot, t in enumerate(targets)
    ]
    return torch.stack(images), torch.cat(rows).reshape(-1, 6), list(indices)


def normalize_batch(
    images_u8: torch.Tensor,
    spec: PreprocessSpec,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """uint8 `(B,3,H,W)` → `(x * scale - mean) / std` per channel on `device`, computed in float32
    exactly as `edge.preprocess.normalized_levels` does, then cast to `dtype`."""
    x = images_u8.to(device=device, non_blocking=True).to(torch.float32)
    # Constants as float32 tensors on the device, never Python scalars: a scalar divisor becomes a
    # multiplication by its reciprocal on CUDA, which differs from the runtime's division.
    scale = torch.tensor(spec.scale, dtype=torch.float32, device=x.device)
    mean = torch.tensor(spec.mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return ((x * scale - mean) / std).to(dtype)


class SeededShuffleSampler(Sampler[int]):
    """A random order that is a function of (`seed`, epoch) alone; `set_epoch` as on
    `DistributedSampler`."""

    def __init__(self, length: int, seed: int) -> None:
        self.length = length
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.length, generator=generator).tolist())

    def __len__(self) -> int:
        return self.length


def make_loader(
    dataset: DetectionDataset,
    batch_size: int,
    shuffle: bool,
    seed: int,
    workers: int = 0,
    distributed: bool = False,
    drop_last: bool = False,
) -> DataLoader:
    """A DataLoader over `dataset` with `collate`. Call `set_loader_epoch` before each epoch:
    the order (this rank's share of it under `distributed`) is a function of (seed, epoch)."""
    sampler: Sampler[int] | None = None
    if distributed:
        sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last)
    elif shuffle:
        sampler = SeededShuffleSampler(len(dataset), seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=torch.cuda.is_available(),
        drop_last=drop_last,
        # Each new iterator draws a worker base seed; from a private generator, not the global
        # torch RNG, whose state (dropout, init) a resumed run must find untouched by loading.
        generator=torch.Generator().manual_seed(seed),
    )


def set_loader_epoch(loader: DataLoader, epoch: int, mosaic: bool = True) -> None:
    """Set the epoch on the loader's sampler (the order) and dataset (the augmentations). Workers
    copy the dataset when an epoch's iteration starts, so call this before iterating."""
    if isinstance(loader.sampler, (DistributedSampler, SeededShuffleSampler)):
        loader.sampler.set_epoch(epoch)
    loader.dataset.set_epoch(epoch, mosaic)
