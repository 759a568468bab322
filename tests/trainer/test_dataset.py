"""The training Dataset: exactly the runtime's input without augmentation, items that depend only
on (seed, epoch, index) with it, and loaders whose batches do not depend on the worker count."""

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DistributedSampler

from edge.datasets import Sample
from edge.errors import JetkitError
from edge.images import read_image
from edge.manifest import PreprocessSpec
from edge.preprocess import (
    Preprocessor,
    is_odd_integer_downscale,
    normalized_levels,
    plan_placement,
)
from trainer.augment import AugmentConfig
from trainer.dataset import (
    DetectionDataset,
    collate,
    make_loader,
    normalize_batch,
    set_loader_epoch,
)

INPUT_HW = (96, 128)
BACKGROUND = (60, 160, 60)
COLOURS = [(0, 0, 255), (255, 0, 0), (0, 255, 255), (255, 0, 255)]  # BGR, one per class id
SIZES_WH = [(160, 120), (120, 160), (200, 100), (96, 96), (150, 150), (130, 90)]
NO_COLOUR_JITTER = AugmentConfig(hsv_gains=(0.0, 0.0, 0.0), flip_ud=0.5, translate=0.2)


def write_sample(path, size_wh, xyxy, class_ids):
    """A PNG with each box filled with its class colour on green, and its Sample."""
    width, height = size_wh
    image = np.full((height, width, 3), BACKGROUND, np.uint8)
    for (x0, y0, x1, y1), class_id in zip(xyxy.astype(int), class_ids, strict=True):
        image[y0:y1, x0:x1] = COLOURS[class_id]
    cv2.imwrite(str(path), image)
    return Sample(path, size_wh, xyxy.astype(np.float32), np.asarray(class_ids, np.int64))


@pytest.fixture()
def samples(tmp_path):
    """Six images of different shapes; image i holds boxes of class i % 4 only."""
    out = []
    for i, (width, height) in enumerate(SIZES_WH):
        xyxy = np.array(
            [[0.1 * width, 0.15 * height, 0.45 * width, 0.5 * height], [0.6, 0.55, 0.9, 0.85]]
        )
        xyxy[1] *= (width, height, width, height)
        out.append(write_sample(tmp_path / f"{i}.png", (width, height), xyxy.round(), [i % 4] * 2))
    return out


def model_to_bgr(image_chw, spec):
    hwc = image_chw.numpy().transpose(1, 2, 0)
    return np.ascontiguousarray(hwc[:, :, ::-1] if spec.color == "RGB" else hwc)


def assert_targets_on_their_colour(image_bgr, targets, tolerance_px=1.5):
    """Each target's box is where the pixels of its class colour are, within the tolerance."""
    height, width = image_bgr.shape[:2]
    palette_rest = np.array([BACKGROUND, (114, 114, 114), *COLOURS])
    for class_id, *box in targets.tolist():
        x0, y0 = max(int(box[0]) - 3, 0), max(int(box[1]) - 3, 0)
        x1, y1 = min(int(np.ceil(box[2])) + 3, width), min(int(np.ceil(box[3])) + 3, height)
        window = image_bgr[y0:y1, x0:x1].astype(int)
        palette = np.concatenate([[COLOURS[int(class_id)]], palette_rest])
        ys, xs = np.nonzero(np.abs(window[:, :, None] - palette).sum(-1).argmin(-1) == 0)
        extent = [x0 + xs.min(), y0 + ys.min(), x0 + xs.max() + 1, y0 + ys.max() + 1]
        np.testing.assert_allclose(extent, box, atol=tolerance_px)


@pytest.mark.parametrize(
    ("size_wh", "input_hw", "spec"),
    [
        ((960, 960), (320, 320), PreprocessSpec()),
        (
            (500, 375),
            (256, 320),
            PreprocessSpec(color="BGR", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
        ),
        ((333, 517), (320, 320), PreprocessSpec(pad_position="top_left", scale=1.0)),
    ],
    ids=["odd-integer-downscale", "non-square-imagenet", "yolox-top-left"],
)
def test_validation_item_is_bit_exact_with_the_runtime(tmp_path, size_wh, input_hw, spec):
    width, height = size_wh
    path = tmp_path / "noise.png"
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 256, (height, width, 3), np.uint8))
    xyxy = np.array([[10, 20, 300, 200]], np.float32)
    dataset = DetectionDataset([Sample(path, size_wh, xyxy, np.array([1]))], input_hw, spec, None)

    images, targets, indices = collate([dataset[0]])
    expected, transforms = Preprocessor(spec, input_hw)([read_image(path)])

    np.testing.assert_array_equal(normalize_batch(images, spec).numpy(), expected)
    assert dataset.transform(0) == transforms[0]
    np.testing.assert_array_equal(targets[:, 2:].numpy(), transforms[0].to_input(xyxy))
    assert targets[:, :2].tolist() == [[0, 1]] and indices == [0]


def test_the_first_runtime_case_takes_the_odd_integer_downscale_path():
    placement, _ = plan_placement((960, 960), (320, 320), PreprocessSpec())
    assert is_odd_integer_downscale((960, 960), placement.size_wh)


def test_items_depend_only_on_seed_epoch_and_index(samples):
    first = DetectionDataset(samples, INPUT_HW, PreprocessSpec(), AugmentConfig(), seed=3)
    second = DetectionDataset(samples, INPUT_HW, PreprocessSpec(), AugmentConfig(), seed=3)
    first.set_epoch(2)
    second.set_epoch(2)
    items = [first[i] for i in range(len(first))]
    for i in reversed(range(len(second))):  # another access order, as another worker would
        image, targets, index = second[i]
        assert index == i
        assert torch.equal(image, items[i][0]) and torch.equal(targets, items[i][1])

    second.set_epoch(3)
    assert not any(torch.equal(second[i][0], items[i][0]) for i in range(len(second)))


def test_augmented_targets_sit_on_their_objects(samples):
    spec = PreprocessSpec()
    dataset = DetectionDataset(samples, INPUT_HW, spec, NO_COLOUR_JITTER, seed=1)
    for epoch in range(3):
        dataset.set_epoch(epoch)
        for index in range(len(dataset)):
            image, targets, _ = dataset[index]
            assert image.shape == (3, *INPUT_HW) and image.dtype == torch.uint8
            assert targets.dtype == torch.float32 and targets.shape[1] == 5
            assert_targets_on_their_colour(model_to_bgr(image, spec), targets)


def test_close_mosaic_feeds_each_image_alone(samples):
    """Image i holds only class i % 4: a mosaic mixes classes, a single image does not."""
    dataset = DetectionDataset(samples, INPUT_HW, PreprocessSpec(), NO_COLOUR_JITTER, seed=0)

    def classes(index):
        return set(dataset[index][1][:, 0].tolist())

    dataset.set_epoch(5, mosaic=True)
    assert any(len(classes(i)) > 1 for i in range(len(dataset)))
    dataset.set_epoch(5, mosaic=False)
    assert all(classes(i) <= {i % 4} for i in range(len(dataset)))


def test_validation_transform_maps_input_boxes_back_to_the_frame(samples):
    dataset = DetectionDataset(samples, INPUT_HW, PreprocessSpec(), None)
    for index, sample in enumerate(samples):
        _, targets, _ = dataset[index]
        frame_xyxy = dataset.transform(index).to_frame(targets[:, 1:].numpy())
        np.testing.assert_allclose(frame_xyxy, sample.xyxy, atol=1e-3)


def test_unreadable_or_missing_image_names_the_file(samples, tmp_path):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"not an image")
    missing = tmp_path / "missing.png"
    for path in (corrupt, missing):
        broken = Sample(path, (64, 64), np.zeros((0, 4), np.float32), np.zeros(0, np.int64))
        dataset = DetectionDataset([broken], INPUT_HW, PreprocessSpec(), AugmentConfig())
        with pytest.raises(JetkitError, match=path.name):
            dataset[0]


def test_image_of_another_size_than_listed_is_refused(samples):
    wrong = Sample(samples[0].image_path, (320, 240), samples[0].xyxy, samples[0].class_ids)
    dataset = DetectionDataset([wrong], INPUT_HW, PreprocessSpec(), None)
    with pytest.raises(JetkitError, match="160x120 but the dataset lists it as 320x240"):
        dataset[0]


def test_collate_stacks_images_and_tags_targets_with_their_batch_slot(samples):
    dataset = DetectionDataset(samples, INPUT_HW, PreprocessSpec(), None)
    items = [dataset[i] for i in (4, 0, 2)]
    images, targets, indices = collate(items)
    assert images.shape == (3, 3, *INPUT_HW) and images.dtype == torch.uint8
    assert targets.shape == (6, 6) and targets.dtype == torch.float32
    assert targets[:, 0].tolist() == [0, 0, 1, 1, 2, 2]
    assert torch.equal(targets[2:4, 1:], items[1][1])
    assert indices == [4, 0, 2]

    empty = (items[0][0], torch.zeros((0, 5)), 9)
    assert collate([empty])[1].shape == (0, 6)


def all_batches(loader):
    return [(images, targets, indices) for images, targets, indices in loader]


def test_two_workers_load_the_same_batches_as_the_main_process(samples):
    batches = []
    for workers in (0, 2):
        dataset = DetectionDataset(samples, INPUT_HW, PreprocessSpec(), AugmentConfig(), seed=4)
        loader = make_loader(dataset, batch_size=4, shuffle=True, seed=4, workers=workers)
        set_loader_epoch(loader, 1)
        batches.append(all_batches(loader))
    in_process, with_workers = batches
    assert len(in_process) == len(with_workers) == 2
    for (images_a, targets_a, indices_a), (images_b, targets_b, indices_b) in zip(
        in_process, with_workers, strict=True
    ):
        assert indices_a == indices_b
        assert torch.equal(images_a, images_b) and torch.equal(targets_a, targets_b)


def test_shuffled_order_is_a_function_of_seed_and_epoch(samples):
    dataset = DetectionDataset(samples, INPUT_HW, PreprocessSpec(), None)

    def order(seed, epoch):
        loader = make_loader(dataset, batch_size=1, shuffle=True, seed=seed)
        set_loader_epoch(loader, epoch)
        return [indices[0] for _, _, indices in loader]

    first = order(0, 2)
    torch.manual_seed(123)  # the global RNG plays no part in the order…
    assert order(0, 2) == first
    assert sorted(first) == list(range(len(samples)))
    assert len({tuple(order(0, epoch)) for epoch in range(4)}) > 1
    assert order(1, 2) != first

    before = torch.get_rng_state()
    order(0, 3)
    assert torch.equal(torch.get_rng_state(), before)  # … nor does loading consume it


def test_distributed_loader_epoch_reaches_sampler_and_dataset(samples, tmp_path):
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        dataset = DetectionDataset(samples, INPUT_HW, PreprocessSpec(), AugmentConfig(), seed=2)
        loader = make_loader(dataset, batch_size=2, shuffle=True, seed=2, distributed=True)
        assert isinstance(loader.sampler, DistributedSampler) and loader.sampler.seed == 2
        set_loader_epoch(loader, 7, mosaic=False)
        assert loader.sampler.epoch == 7
        assert (dataset.epoch, dataset.mosaic) == (7, False)
    finally:
        torch.distributed.destroy_process_group()


def test_normalize_batch_matches_the_runtime_formula():
    spec = PreprocessSpec(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    images = torch.randint(0, 256, (2, 3, 5, 7), dtype=torch.uint8)
    expected = normalized_levels(images.permute(0, 2, 3, 1).numpy(), spec).transpose(0, 3, 1, 2)

    np.testing.assert_array_equal(normalize_batch(images, spec).numpy(), expected)
    half = normalize_batch(images, spec, device="cpu", dtype=torch.float16)
    assert half.dtype == torch.float16
    np.testing.assert_array_equal(half.numpy(), expected.astype(np.float16))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA device here")
def test_normalize_batch_on_cuda_is_bit_exact_too():
    spec = PreprocessSpec(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    images = torch.arange(256, dtype=torch.uint8).repeat(3, 1).reshape(1, 3, 16, 16)
    expected = normalized_levels(images.permute(0, 2, 3, 1).numpy(), spec).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(
        normalize_batch(images, spec, device="cuda").cpu().numpy(), expected
    )
