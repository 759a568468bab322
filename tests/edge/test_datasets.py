"""Data sets on disk (YOLO data.yaml with label files, COCO JSON) → samples in image pixels."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.datasets import (
    REPORT_KEYS,
    clean_boxes,
    label_path,
    load_dataset,
    parse_label_text,
    summarize,
)
from edge.errors import JetkitError


def write_image(path: Path, size_wh: tuple[int, int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size_wh
    image = np.random.default_rng(width * height).integers(0, 256, (height, width, 3), np.uint8)
    assert cv2.imwrite(str(path), image)
    return path


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def yolo_set(root: Path, yaml_text: str | None = None) -> Path:
    """A 3-class YOLO set: train has a landscape and a portrait image with boxes, a background
    image with an empty label file and one without a label file; val has one labelled image."""
    write_image(root / "images/train/wide.jpg", (640, 480))
    write_text(root / "labels/train/wide.txt", "0 0.25 0.5 0.125 0.25\n2 0.5 0.5 1 1\n")
    write_image(root / "images/train/tall.png", (300, 600))
    write_text(root / "labels/train/tall.txt", "\n1 0.5 0.25 0.5 0.5\n\n")
    write_image(root / "images/train/empty.jpg", (200, 100))
    write_text(root / "labels/train/empty.txt", "")
    write_image(root / "images/train/unlabelled.jpg", (120, 80))
    write_image(root / "images/val/one.jpg", (400, 400))
    write_text(root / "labels/val/one.txt", "2 0.5 0.5 0.5 0.25\n")
    default = "path: .\ntrain: images/train\nval: images/val\nnames: [person, car, dog]\n"
    return write_text(root / "data.yaml", default if yaml_text is None else yaml_text)


def by_name(samples):
    return {s.image_path.name: s for s in samples}


def test_yolo_boxes_come_out_in_image_pixels(tmp_path):
    ds = load_dataset(yolo_set(tmp_path))
    assert ds.names == ("person", "car", "dog") and ds.source == tmp_path / "data.yaml"
    train = by_name(ds.train)
    assert sorted(train) == ["empty.jpg", "tall.png", "unlabelled.jpg", "wide.jpg"]
    wide, tall = train["wide.jpg"], train["tall.png"]
    assert wide.size_wh == (640, 480) and tall.size_wh == (300, 600)
    np.testing.assert_array_equal(wide.xyxy, [[120, 180, 200, 300], [0, 0, 640, 480]])
    np.testing.assert_array_equal(wide.class_ids, [0, 2])
    np.testing.assert_array_equal(tall.xyxy, [[75, 0, 225, 300]])
    assert wide.xyxy.dtype == np.float32 and wide.class_ids.dtype == np.int64
    assert train["empty.jpg"].xyxy.shape == (0, 4) and train["unlabelled.jpg"].class_ids.size == 0
    np.testing.assert_array_equal(ds.val[0].xyxy, [[100, 150, 300, 250]])
    assert ds.report == {
        **dict.fromkeys(REPORT_KEYS, 0),
        "train_images": 4,
        "val_images": 1,
        "background_images": 2,
        "missing_label_files": 1,
        "boxes": 4,
    }


def test_names_may_be_a_mapping_and_path_defaults_to_the_yaml_folder(tmp_path):
    yaml_text = "train: images/train\nval: images/val\nnames:\n  0: person\n  1: car\n  2: dog\n"
    ds = load_dataset(yolo_set(tmp_path, yaml_text))
    assert ds.names == ("person", "car", "dog") and len(ds.train) == 4


def test_a_folder_holding_data_yaml_loads_and_relative_path_resolves_against_it(tmp_path):
    yolo_set(tmp_path / "set", "")
    yaml_text = "path: set\ntrain: images/train\nval: images/val\nnames: [person, car, dog]\n"
    write_text(tmp_path / "data.yaml", yaml_text)
    ds = load_dataset(tmp_path)
    assert ds.train[0].image_path.is_relative_to(tmp_path / "set")


def test_splits_may_be_image_lists_and_lists_of_folders(tmp_path):
    yolo_set(tmp_path)
    write_text(tmp_path / "train.txt", "./images/train/wide.jpg\n\nimages/train/tall.png\n")
    write_image(tmp_path / "images/extra/more.jpg", (64, 48))
    write_text(tmp_path / "labels/extra/more.txt", "1 0.5 0.5 0.5 0.5\n")
    yaml_text = "train: train.txt\nval: [images/val, images/extra]\nnames: [person, car, dog]\n"
    ds = load_dataset(write_text(tmp_path / "data.yaml", yaml_text))
    assert [s.image_path.name for s in ds.train] == ["wide.jpg", "tall.png"]
    assert [s.image_path.name for s in ds.val] == ["one.jpg", "more.jpg"]
    np.testing.assert_array_equal(ds.val[1].xyxy, [[16, 12, 48, 36]])


def test_duplicates_are_skipped_and_boxes_partly_outside_are_clipped_and_counted(tmp_path):
    yolo_set(tmp_path)
    write_text(
        tmp_path / "labels/val/one.txt",
        "2 0.5 0.5 0.5 0.25\n2 0.5 0.5 0.5 0.25\n0 0.5 0.5 0.5 0.25\n1 0.9375 0.5 0.25 0.5\n",
    )
    ds = load_dataset(tmp_path / "data.yaml")
    np.testing.assert_array_equal(ds.val[0].class_ids, [2, 0, 1])
    np.testing.assert_array_equal(ds.val[0].xyxy[2], [325, 100, 400, 300])
    assert ds.report["skipped_duplicate_boxes"] == 1 and ds.report["clipped_boxes"] == 1
    assert summarize(ds).splitlines() == [
        f"{tmp_path / 'data.yaml'}: 3 classes, 4 train + 1 val images, 6 boxes, "
        "2 background images",
        "  1 duplicate boxes skipped, 1 boxes clipped to their image, "
        "1 images without a label file (background)",
    ]


def test_label_path_swaps_the_last_images_folder_for_labels():
    assert label_path(Path("/d/images/train/a.b.jpg")) == Path("/d/labels/train/a.b.txt")
    assert label_path(Path("images/x/images/y.png")) == Path("images/x/labels/y.txt")
    assert label_path(Path("/d/frames/y.png")) == Path("/d/frames/y.txt")


def test_parse_label_text_gives_normalised_boxes():
    cxcywh, class_ids = parse_label_text("1 0.5 0.5 0.2 0.4\n\n0 0.1 0.2 0.1 0.1\n", 2, "x.txt")
    np.testing.assert_allclose(cxcywh, [[0.5, 0.5, 0.2, 0.4], [0.1, 0.2, 0.1, 0.1]])
    assert cxcywh.dtype == np.float32 and class_ids.tolist() == [1, 0]
    assert parse_label_text("", 2, "x.txt")[0].shape == (0, 4)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("7 0.5 0.5 0.1 0.1", "x.txt:3: class id 7 is out of range for 3 classes"),
        ("-1 0.5 0.5 0.1 0.1", "x.txt:3: class id -1 is out of range"),
        ("1.5 0.5 0.5 0.1 0.1", "x.txt:3: class id 1.5 is not a whole number"),
        ("0 0.5 0.5 0.1", "x.txt:3: expected 5 values `class cx cy w h`, got 4"),
        ("0 0.1 0.1 0.2 0.1 0.2 0.2 0.1 0.2", "x.txt:3: .* polygons are not supported"),
        ("0 0.5 0.5 wide 0.1", r"x.txt:3: .* is not 5 numbers"),
        ("0 0.5 0.5 nan 0.1", r"x.txt:3: .* is not 5 numbers"),
        ("0 0.5 0.5 0 0.1", "x.txt:3: box width and height must be > 0"),
        ("0 320 240 50 60", "x.txt:3: box values must be normalised to 0..1"),
        ("0 1.2 0.5 0.1 0.1", "x.txt:3: box values must be normalised to 0..1"),
    ],
)
def test_a_bad_label_line_names_the_file_and_line(tmp_path, line, message):
    yolo_set(tmp_path)
    write_text(tmp_path / "labels/train/x.txt", f"0 0.5 0.5 0.1 0.1\n\n{line}\n")
    write_image(tmp_path / "images/train/x.jpg", (32, 32))
    with pytest.raises(JetkitError, match=message):
        load_dataset(tmp_path / "data.yaml")


def coco_set(root: Path) -> Path:
    """COCO instances with sparse category ids (7, 1, 3), a crowd annotation, a zero-size box,
    a box partly outside its image and an image without annotations; images in images/."""
    write_image(root / "images/a.jpg", (320, 240))
    write_image(root / "images/b.png", (100, 200))
    data = {
        "images": [
            {"id": 10, "file_name": "a.jpg", "width": 320, "height": 240},
            {"id": 20, "file_name": "b.png", "width": 100, "height": 200},
        ],
        "categories": [
            {"id": 7, "name": "dog"},
            {"id": 1, "name": "person"},
            {"id": 3, "name": "car"},
        ],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 7, "bbox": [10, 20, 30, 40], "iscrowd": 0},
            {"id": 2, "image_id": 10, "category_id": 1, "bbox": [300, 200, 40, 10]},
            {"id": 3, "image_id": 10, "category_id": 3, "bbox": [0, 0, 320, 240], "iscrowd": 1},
            {"id": 4, "image_id": 10, "category_id": 3, "bbox": [5, 5, 0, 10], "iscrowd": 0},
        ],
    }
    return write_text(root / "instances.json", json.dumps(data))


def test_coco_json_maps_sparse_categories_in_id_order_and_skips_crowds(tmp_path):
    ds = load_dataset(coco_set(tmp_path))
    assert ds.names == ("person", "car", "dog") and ds.train == ()
    a, b = ds.val
    assert a.image_path == tmp_path / "images/a.jpg" and a.size_wh == (320, 240)
    np.testing.assert_array_equal(a.xyxy, [[10, 20, 40, 60], [300, 200, 320, 210]])
    np.testing.assert_array_equal(a.class_ids, [2, 0])
    assert b.size_wh == (100, 200) and b.class_ids.size == 0
    assert ds.report == {
        **dict.fromkeys(REPORT_KEYS, 0),
        "val_images": 2,
        "background_images": 1,
        "boxes": 2,
        "skipped_crowd_annotations": 1,
        "skipped_empty_boxes": 1,
        "clipped_boxes": 1,
    }
    assert "1 crowd annotations skipped" in summarize(ds)


def test_data_yaml_may_point_its_splits_at_coco_json(tmp_path):
    coco_set(tmp_path / "coco")
    write_text(tmp_path / "data.yaml", "path: coco\ntrain: instances.json\nval: instances.json\n")
    ds = load_dataset(tmp_path / "data.yaml")
    assert ds.names == ("person", "car", "dog") and len(ds.train) == len(ds.val) == 2
    write_text(
        tmp_path / "data.yaml",
        "path: coco\ntrain: instances.json\nval: instances.json\nnames: [person, dog, car]\n",
    )
    with pytest.raises(JetkitError, match="categories of .*instances.json .* differ from"):
        load_dataset(tmp_path / "data.yaml")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["images"][0].update(file_name="gone.jpg"), "image gone.jpg is in none of"),
        (lambda d: d["images"][0].update(width=321), r"is 320x240 but its entry says 321x240"),
        (lambda d: d["annotations"][0].update(category_id=2), "annotation 1 has category_id 2"),
        (lambda d: d["annotations"][0].update(bbox=[400, 0, 5, 5]), "lies outside its 320x240"),
        (lambda d: d.pop("categories"), "is not a COCO instances file"),
        (lambda d: d["images"][0].pop("height"), r"malformed COCO entry \(KeyError\('height'\)"),
    ],
)
def test_a_bad_coco_file_is_named(tmp_path, change, message):
    path = coco_set(tmp_path)
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    with pytest.raises(JetkitError, match=message):
        load_dataset(path)


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("- a\n- b\n", "data.yaml must be a YAML mapping"),
        ("train: [unclosed\n", "data.yaml is not valid YAML"),
        ("train: images/train\nval: images/val\n", "data.yaml has no `names`"),
        ("train: images/train\nnames: [a, b, c]\n", "data.yaml has no `val` split"),
        ("path: nowhere\ntrain: images/train\nval: images/val\nnames: [a]\n", "`path` .*nowhere"),
        ("train: images/test\nval: images/val\nnames: [a, b, c]\n", "`train` .*test does not"),
        ("train: data.yaml\nval: images/val\nnames: [a, b, c]\n", "`train` .*data.yaml is not"),
        ("train: images/train\nval: images/val\nnames: {0: a, 2: b}\n", "ids must be 0..1"),
        ("train: images/train\nval: images/val\nnames: [a, b, a]\n", "lists 'a' more than once"),
        ("train: images/train\nval: images/val\nnames: [a, b, c]\nnc: 4\n", "`nc` is 4"),
    ],
)
def test_a_bad_data_yaml_is_named_with_the_fix(tmp_path, yaml_text, message):
    with pytest.raises(JetkitError, match=message):
        load_dataset(yolo_set(tmp_path, yaml_text))


def test_missing_data_set_and_folder_without_data_yaml(tmp_path):
    with pytest.raises(JetkitError, match="nothing.yaml does not exist"):
        load_dataset(tmp_path / "nothing.yaml")
    with pytest.raises(JetkitError, match="has no data.yaml"):
        load_dataset(tmp_path)


def test_a_split_without_images_is_refused(tmp_path):
    yolo_set(tmp_path)
    (tmp_path / "images/empty").mkdir()
    write_text(tmp_path / "data.yaml", "train: images/empty\nval: images/val\nnames: [a, b, c]\n")
    with pytest.raises(JetkitError, match="`train` .*empty holds no images"):
        load_dataset(tmp_path / "data.yaml")


def test_an_image_list_naming_a_missing_image_names_the_line(tmp_path):
    yolo_set(tmp_path)
    write_text(tmp_path / "train.txt", "images/train/wide.jpg\nimages/train/gone.jpg\n")
    write_text(tmp_path / "data.yaml", "train: train.txt\nval: images/val\nnames: [a, b, c]\n")
    with pytest.raises(JetkitError, match=r"train.txt:2: image .*gone.jpg does not exist"):
        load_dataset(tmp_path / "data.yaml")


def test_an_unreadable_image_is_named(tmp_path):
    yolo_set(tmp_path)
    write_text(tmp_path / "images/val/broken.jpg", "not a jpeg")
    with pytest.raises(JetkitError, match="broken.jpg cannot be read .* remove it"):
        load_dataset(tmp_path / "data.yaml")


def test_a_split_without_any_label_file_is_refused(tmp_path):
    yolo_set(tmp_path)
    (tmp_path / "labels/val/one.txt").unlink()
    with pytest.raises(JetkitError, match="none of the 1 `val` images .* has a label file"):
        load_dataset(tmp_path / "data.yaml")


def test_clean_boxes_keeps_first_of_duplicates_and_clips_to_the_image():
    xyxy = np.array([[-5, 0, 10, 10], [1, 1, 2, 2], [-5, 0, 10, 10], [1, 1, 2, 2]], np.float64)
    kept, class_ids, duplicates, clipped = clean_boxes(xyxy, np.array([0, 0, 0, 1]), (8, 8))
    np.testing.assert_array_equal(kept, [[0, 0, 8, 8], [1, 1, 2, 2], [1, 1, 2, 2]])
    assert class_ids.tolist() == [0, 0, 1] and (duplicates, clipped) == (1, 1)


def test_only_the_splits_asked_for_are_read(tmp_path):
    """Evaluating `val` does not need the training labels: a set whose `train` images are not
    labelled yet (or that names no `train` at all) still evaluates."""
    yolo_set(tmp_path)
    for label in (tmp_path / "labels/train").iterdir():
        label.unlink()
    with pytest.raises(JetkitError, match="`train` images .* has a label file"):
        load_dataset(tmp_path / "data.yaml")
    ds = load_dataset(tmp_path / "data.yaml", splits=("val",))
    assert ds.train == () and list(by_name(ds.val)) == ["one.jpg"]
    assert ds.report["train_images"] == 0 and ds.report["val_images"] == 1
    write_text(tmp_path / "data.yaml", "path: .\nval: images/val\nnames: [person, car, dog]\n")
    assert len(load_dataset(tmp_path / "data.yaml", splits=("val",)).val) == 1
    with pytest.raises(JetkitError, match="has no `train` split"):
        load_dataset(tmp_path / "data.yaml", splits=("train",))
    with pytest.raises(ValueError, match="splits must be some of"):
        load_dataset(tmp_path / "data.yaml", splits=("test",))
