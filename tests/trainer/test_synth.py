"""The built-in synthetic data set: hard (scales, clutter, occlusion, mixed sizes) but fair (every
labelled box is what can be seen; nothing clearly visible goes unlabelled), deterministic, written
all or nothing, and `jetkit data synth` as a user runs it."""

import hashlib
import re

import numpy as np
import pytest
from cli_helpers import assert_user_error, jetkit

from edge.datasets import load_dataset
from edge.errors import JetkitError
from trainer.synth import (
    BACKGROUND,
    HIDDEN_VISIBLE_FRACTION,
    LABEL_VISIBLE_FRACTION,
    SYNTH_CLASSES,
    SYNTH_VERSION,
    SynthConfig,
    SynthConfigError,
    image_size,
    render_image,
    render_scene,
    visible_boxes,
    visible_fractions,
    write_synth_dataset,
)

SMALL = SynthConfig(train_images=16, val_images=6, imgsz=128, seed=3)
LABEL_LINE = re.compile(r"^[0-5]( [01]\.\d{6}){4}$")


def file_bytes(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def scenes():
    """200 scenes at the default size as the writer draws them, with their labels."""
    rendered = []
    for index in range(200):
        rng = np.random.default_rng((0, 0, index))
        scene = render_scene(rng, image_size(rng, 320))
        rendered.append((scene, *visible_boxes(scene.owner, scene.areas)))
    return rendered


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_synth_dataset(tmp_path_factory.mktemp("synth") / "small", SMALL)


# --- what an image holds -----------------------------------------------------------------------


def test_render_image_is_the_scene_with_its_visible_labels():
    rng = np.random.default_rng((0, 0, 7))
    image, xyxy, class_ids = render_image(rng, (300, 200))
    scene = render_scene(np.random.default_rng((0, 0, 7)), (300, 200))
    expected_xyxy, keep = visible_boxes(scene.owner, scene.areas)
    assert image.shape == (200, 300, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, scene.image)
    np.testing.assert_array_equal(xyxy, expected_xyxy)
    np.testing.assert_array_equal(class_ids, scene.class_ids[keep])
    assert xyxy.dtype == np.float32 and class_ids.dtype == np.int64


def test_an_object_is_labelled_by_its_visible_pixels_only_when_enough_of_it_shows():
    owner = np.full((40, 60), BACKGROUND, np.int16)
    owner[5:25, 5:20] = 0  # a 20x20 square whose right quarter object 1 covers: 75% visible
    owner[5:25, 20:30] = 1  # a 10x20 bar on top of it, all visible
    owner[30:40, 40:50] = 2  # a 20x20 square of which only a 10x10 corner shows
    areas = np.array([400, 200, 400])
    np.testing.assert_allclose(visible_fractions(owner, areas), [0.75, 1.0, 0.25])
    xyxy, keep = visible_boxes(owner, areas)
    assert keep.tolist() == [0, 1]
    np.testing.assert_array_equal(xyxy, [[5, 5, 20, 25], [20, 5, 30, 25]])


def test_no_object_is_left_clearly_visible_but_unlabelled(scenes):
    fractions = np.concatenate([visible_fractions(s.owner, s.areas) for s, _, _ in scenes])
    ambiguous = (fractions >= HIDDEN_VISIBLE_FRACTION) & (fractions < LABEL_VISIBLE_FRACTION)
    assert not ambiguous.any()
    # Occlusion does happen: labelled objects partly covered, and objects hidden for good.
    assert np.sum((fractions >= LABEL_VISIBLE_FRACTION) & (fractions < 0.95)) > 50
    assert np.sum(fractions < HIDDEN_VISIBLE_FRACTION) > 5


def test_each_box_is_tight_around_the_visible_pixels_of_its_object(scenes):
    for scene, xyxy, keep in scenes[:40]:
        for (x0, y0, x1, y1), index in zip(xyxy.astype(int), keep, strict=True):
            ys, xs = np.nonzero(scene.owner == index)
            assert (x0, y0, x1, y1) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


def test_boxes_lie_inside_their_image(scenes):
    for scene, xyxy, _ in scenes:
        height, width = scene.owner.shape
        assert np.all(xyxy[:, :2] >= 0) and np.all(xyxy[:, 2] <= width)
        assert np.all(xyxy[:, 3] <= height) and np.all(xyxy[:, 2:] > xyxy[:, :2])


def test_classes_are_about_equally_common(scenes):
    class_ids = np.concatenate([s.class_ids[keep] for s, _, keep in scenes])
    counts = np.bincount(class_ids, minlength=len(SYNTH_CLASSES))
    assert len(class_ids) > 800
    assert counts.min() > 0.75 * counts.mean() and counts.max() < 1.25 * counts.mean()


def test_objects_range_from_tiny_to_most_of_the_image(scenes):
    longest = np.concatenate([np.max(xyxy[:, 2:] - xyxy[:, :2], axis=1) for _, xyxy, _ in scenes])
    shortest_side = min(min(s.owner.shape) for s, _, _ in scenes)
    assert longest.min() <= 12
    assert np.mean(longest < 16) > 0.05 and np.mean(longest > 100) > 0.05
    assert longest.max() > 0.5 * shortest_side


def test_image_sizes_and_aspect_ratios_vary(scenes):
    sizes_hw = np.array([s.owner.shape for s, _, _ in scenes])
    assert len({tuple(hw) for hw in sizes_hw}) > 150
    assert np.all(sizes_hw % 2 == 0)
    assert sizes_hw.min() >= 0.6 * 320 and sizes_hw.max() <= 1.4 * 320
    assert np.any(sizes_hw[:, 0] > 1.2 * sizes_hw[:, 1]) and np.any(
        sizes_hw[:, 1] > 1.2 * sizes_hw[:, 0]
    )


def test_a_few_images_are_background_only(scenes):
    empty = sum(len(keep) == 0 for _, _, keep in scenes)
    assert 1 <= empty <= 0.15 * len(scenes)


# --- the data set on disk ----------------------------------------------------------------------


def test_the_same_seed_writes_the_same_bytes_and_another_seed_other_images(tmp_path):
    config = SynthConfig(train_images=3, val_images=2, imgsz=96, seed=5)
    first = file_bytes(write_synth_dataset(tmp_path / "a", config).parent)
    second = file_bytes(write_synth_dataset(tmp_path / "b", config).parent)
    assert first == second
    other = file_bytes(write_synth_dataset(tmp_path / "c", SynthConfig(3, 2, 96, seed=6)).parent)
    images = [path for path in first if path.suffix == ".jpg"]
    assert len(images) == 5 and all(first[path] != other[path] for path in images)


def test_train_and_val_share_no_image(dataset):
    digests = {
        split: {
            hashlib.sha256(p.read_bytes()).hexdigest()
            for p in (dataset.parent / "images" / split).iterdir()
        }
        for split in ("train", "val")
    }
    assert len(digests["train"]) == 16 and len(digests["val"]) == 6
    assert not digests["train"] & digests["val"]


def test_label_files_hold_normalised_yolo_lines(dataset):
    label_files = sorted((dataset.parent / "labels").glob("*/*.txt"))
    assert len(label_files) == 22
    for label_file in label_files:
        for line in label_file.read_text().splitlines():
            assert LABEL_LINE.match(line), f"{label_file}: {line!r}"
            cx, cy, w, h = map(float, line.split()[1:])
            assert 0 <= cx - w / 2 and cx + w / 2 <= 1 and 0 <= cy - h / 2 and cy + h / 2 <= 1


def test_the_written_set_loads_as_a_yolo_data_set_with_the_rendered_boxes(dataset):
    loaded = load_dataset(dataset)
    assert loaded.names == SYNTH_CLASSES
    assert len(loaded.train) == 16 and len(loaded.val) == 6
    assert loaded.report["clipped_boxes"] == 0 and loaded.report["skipped_empty_boxes"] == 0
    rng = np.random.default_rng((SMALL.seed, 1, 2))
    size_wh = image_size(rng, SMALL.imgsz)
    _, xyxy, class_ids = render_image(rng, size_wh)
    sample = loaded.val[2]
    assert sample.image_path.name == "000002.jpg" and sample.size_wh == size_wh
    np.testing.assert_allclose(sample.xyxy, xyxy, atol=1e-3)
    np.testing.assert_array_equal(sample.class_ids, class_ids)


def test_data_yaml_records_the_settings_it_was_written_with(dataset):
    import yaml

    document = yaml.safe_load(dataset.read_text())
    assert document["path"] == "." and document["names"] == list(SYNTH_CLASSES)
    assert (document["train"], document["val"]) == ("images/train", "images/val")
    assert document["synth"] == {
        "version": SYNTH_VERSION,
        "train_images": 16,
        "val_images": 6,
        "imgsz": 128,
        "seed": 3,
    }


def test_writing_again_with_the_same_settings_reuses_the_folder(dataset):
    before = {p: p.stat().st_mtime_ns for p in dataset.parent.rglob("*")}
    calls = []
    assert write_synth_dataset(dataset.parent, SMALL, lambda *a: calls.append(a)) == dataset
    assert calls == []
    assert {p: p.stat().st_mtime_ns for p in dataset.parent.rglob("*")} == before


def test_a_folder_with_other_content_or_settings_is_refused(dataset, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "holiday.jpg").write_bytes(b"not ours")
    with pytest.raises(JetkitError, match=r"photos already exists .* pick another --out"):
        write_synth_dataset(photos, SMALL)
    assert [p.name for p in photos.iterdir()] == ["holiday.jpg"]
    with pytest.raises(JetkitError, match="small already exists"):
        write_synth_dataset(dataset.parent, SynthConfig(16, 6, 128, seed=4))


def test_an_empty_folder_is_filled(tmp_path):
    (tmp_path / "empty").mkdir()
    data_yaml = write_synth_dataset(tmp_path / "empty", SynthConfig(1, 1, 64))
    assert sorted(p.name for p in data_yaml.parent.iterdir()) == ["data.yaml", "images", "labels"]


def test_an_interrupted_run_leaves_nothing_behind(tmp_path):
    def interrupt_after_three(done, total):
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_synth_dataset(tmp_path / "out", SynthConfig(5, 2, 64), interrupt_after_three)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("train_images", 0, "at least 1"),
        ("val_images", -2, "at least 1"),
        ("imgsz", 32, "between 64 and 2048"),
        ("imgsz", 4096, "between 64 and 2048"),
        ("seed", -1, "0 or more"),
        ("seed", 1.5, "integer"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(field, value, problem):
    with pytest.raises(SynthConfigError, match=problem) as caught:
        SynthConfig(**{field: value})
    assert caught.value.field == field and field in str(caught.value)


# --- jetkit data synth -------------------------------------------------------------------------


def test_cli_writes_the_data_set_then_reuses_it(tmp_path):
    out = tmp_path / "shapes"
    args = ("data", "synth", out, "--images", 4, "--val", 2, "--imgsz", 96, "--seed", 1)
    result = jetkit(*args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out / "data.yaml")
    assert "synth 6/6 [" in result.stderr
    assert "6 images (4 train, 2 val, " in result.stderr and " boxes: circle " in result.stderr
    assert len(list((out / "images" / "train").glob("*.jpg"))) == 4
    assert len(list((out / "labels" / "val").glob("*.txt"))) == 2
    again = jetkit(*args)
    assert again.returncode == 0 and "reusing it" in again.stderr
    assert again.stdout == result.stdout


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (("--images", "0"), "--images"),
        (("--val", "0"), "--val"),
        (("--imgsz", "5000"), "--imgsz"),
        (("--seed", "-3"), "--seed"),
    ],
)
def test_cli_names_the_bad_option(tmp_path, options, named):
    assert_user_error(jetkit("data", "synth", tmp_path / "out", *options), named)
    assert not (tmp_path / "out").exists()


def test_cli_refuses_a_folder_it_did_not_write(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    assert_user_error(jetkit("data", "synth", tmp_path), str(tmp_path), "--out")
