"""Detection data sets read into plain records: YOLO `data.yaml` (+ label files) and COCO JSON.

from edge.datasets import load_dataset, summarize
ds = load_dataset("data/coco8/data.yaml")   # or the folder holding it, or `instances_val.json`
print(summarize(ds))
ds.val[0].image_path, ds.val[0].size_wh, ds.val[0].xyxy, ds.val[0].class_ids

Every image is decoded once while loading (in a thread pool), which proves it readable and gives
its true size as `edge.images.read_image` sees it (EXIF orientation applied), the frame a detector
is later run on. Nothing is dropped silently: exact duplicate boxes, boxes clipped to their image,
crowd annotations and missing label files are counted in `DetectionSet.report`; everything else
that is wrong raises `JetkitError` naming the file (and line) and the fix. PyYAML and OpenCV are
imported inside the functions that need them.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections import Counter
from collections.abc import Collection, Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.boxes import clip_xyxy, cxcywh_to_xyxy
from edge.errors import JetkitError
from edge.images import IMAGE_SUFFIXES, read_image

REPORT_KEYS = (
    "train_images",
    "val_images",
    "background_images",
    "missing_label_files",
    "boxes",
    "skipped_duplicate_boxes",
    "skipped_crowd_annotations",
    "skipped_empty_boxes",
    "clipped_boxes",
)
_SPLITS = ("train", "val")
_SPLIT_FIX = "an images folder, a .txt list of images or a COCO .json, or a list of those"


# eq=False: the arrays make field-wise equality (and hashing) meaningless.
@dataclass(frozen=True, eq=False)
class Sample:
    """One image and its boxes in that image's pixels: `xyxy (N,4)` float32, `class_ids (N,)`
    int64, `size_wh` of the image as decoded."""

    image_path: Path
    size_wh: tuple[int, int]
    xyxy: np.ndarray
    class_ids: np.ndarray

    def __post_init__(self) -> None:
        count = self.xyxy.shape[0] if self.xyxy.ndim == 2 else -1
        if self.xyxy.shape != (count, 4) or self.class_ids.shape != (count,):
            raise ValueError(
                f"sample {self.image_path}: xyxy must be (N,4) and class_ids (N,), "
                f"got {self.xyxy.shape} and {self.class_ids.shape}"
            )


@dataclass(frozen=True)
class DetectionSet:
    """A loaded data set: class `names` in index order, the `train` and `val` samples, the file
    it came from, and `report`: counts of what loading found (keys in `REPORT_KEYS`)."""

    names: tuple[str, ...]
    train: tuple[Sample, ...]
    val: tuple[Sample, ...]
    source: Path
    report: dict[str, int]


def load_dataset(path: str | os.PathLike[str], splits: Collection[str] = _SPLITS) -> DetectionSet:
    """Load a YOLO `data.yaml` (or a folder holding one) or a COCO instances `.json` (which
    becomes the `val` split, with an empty `train`). Only `splits` are read (the others are
    left empty, and may be missing or unlabelled): evaluating `val` does not need `train`."""
    unknown = set(splits) - set(_SPLITS)
    if unknown or not splits:
        raise ValueError(f"splits must be some of {_SPLITS}, got {tuple(splits)}")
    path = Path(path)
    if path.is_dir():
        if not (path / "data.yaml").is_file():
            raise JetkitError(f"folder {path} has no data.yaml; pass the data set's data.yaml")
        path = path / "data.yaml"
    if not path.is_file():
        raise JetkitError(
            f"data set {path} does not exist; pass a data.yaml, a folder holding one, "
            "or a COCO instances .json"
        )
    counts: Counter[str] = Counter()
    if path.suffix.lower() == ".json":
        names, val = _load_coco(path, (path.parent, path.parent / "images"), counts)
        return DetectionSet(names, (), tuple(val), path, _report(counts, 0, len(val)))
    config = _read_yaml(path)
    root = _dataset_root(config, path)
    wanted = [split for split in _SPLITS if split in splits]
    entries = {split: _split_entries(config, split, root, path) for split in wanted}
    names = _yaml_names(config, path)
    if not names and any(e.suffix.lower() != ".json" for es in entries.values() for e in es):
        raise JetkitError(
            f"{path} has no `names`: list the class names in class id order, "
            "e.g. `names: [person, car]`"
        )
    loaded: dict[str, list[Sample]] = {split: [] for split in _SPLITS}
    for split in wanted:
        names, loaded[split] = _load_split(split, entries[split], root, path, names, counts)
    report = _report(counts, len(loaded["train"]), len(loaded["val"]))
    return DetectionSet(names, tuple(loaded["train"]), tuple(loaded["val"]), path, report)


def summarize(ds: DetectionSet) -> str:
    """One or two log lines: images, boxes and background per data set, then what was skipped."""
    r = ds.report
    lines = [
        f"{ds.source}: {len(ds.names)} classes, {r['train_images']} train + {r['val_images']} "
        f"val images, {r['boxes']} boxes, {r['background_images']} background images"
    ]
    notes = [
        f"{r[key]} {text}"
        for key, text in (
            ("skipped_duplicate_boxes", "duplicate boxes skipped"),
            ("skipped_crowd_annotations", "crowd annotations skipped"),
            ("skipped_empty_boxes", "zero-size boxes skipped"),
            ("clipped_boxes", "boxes clipped to their image"),
            ("missing_label_files", "images without a label file (background)"),
        )
        if r[key]
    ]
    if notes:
        lines.append("  " + ", ".join(notes))
    return "\n".join(lines)


def label_path(image_path: Path) -> Path:
    """`…/images/<sub>/x.jpg` → `…/labels/<sub>/x.txt`: the last `images` folder becomes `labels`,
    as Ultralytics does; an image outside any `images` folder has its label file beside it."""
    parts = image_path.parts
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            return Path(*parts[:i], "labels", *parts[i + 1 :]).with_suffix(".txt")
    return image_path.with_suffix(".txt")


def parse_label_text(text: str, num_classes: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    """A YOLO label file's text (lines `class cx cy w h`, fractions of the image size) →
    `cxcywh (N,4)` float32 normalised and `class_ids (N,)` int64. Blank lines are skipped; a bad
    line raises `JetkitError` naming `source:line`."""
    boxes: list[tuple[float, float, float, float]] = []
    class_ids: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{source}:{number}"
        if len(fields) != 5:
            hint = " (segment polygons are not supported: convert them to boxes)"
            raise JetkitError(
                f"{where}: expected 5 values `class cx cy w h`, got {len(fields)}"
                + (hint if len(fields) > 5 else "")
            )
        try:
            values = [float(field) for field in fields]
        except ValueError:
            values = [math.nan]
        if not all(math.isfinite(v) for v in values):
            raise JetkitError(f"{where}: {line.strip()!r} is not 5 numbers `class cx cy w h`")
        k, cx, cy, w, h = values
        if k != int(k):
            raise JetkitError(f"{where}: class id {fields[0]} is not a whole number")
        if not 0 <= k < num_classes:
            raise JetkitError(
                f"{where}: class id {fields[0]} is out of range for {num_classes} classes "
                "(names in data.yaml)"
            )
        if w <= 0 or h <= 0:
            raise JetkitError(f"{where}: box width and height must be > 0, got w={w:g} h={h:g}")
        if not all(0 <= v <= 1 for v in (cx, cy, w, h)):
            raise JetkitError(
                f"{where}: box values must be normalised to 0..1 (fractions of the image size), "
                f"got cx={cx:g} cy={cy:g} w={w:g} h={h:g}; divide pixel values by the image "
                "width and height"
            )
        boxes.append((cx, cy, w, h))
        class_ids.append(int(k))
    return (
        np.array(boxes, dtype=np.float32).reshape(-1, 4),
        np.array(class_ids, dtype=np.int64),
    )


def clean_boxes(
    xyxy: np.ndarray, class_ids: np.ndarray, size_wh: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """One image's `xyxy (N,4)` pixel boxes without exact duplicates (first kept) and clipped to
    the image → `(xyxy (M,4) float32, class_ids (M,) int64, duplicates removed, boxes clipped)`."""
    rows = np.column_stack((class_ids.astype(np.float64), xyxy.astype(np.float64)))
    keep = np.sort(np.unique(rows, axis=0, return_index=True)[1])
    kept = rows[keep, 1:]
    clipped = clip_xyxy(kept.copy(), size_wh)
    changed = int(np.count_nonzero((clipped != kept).any(axis=1)))
    return (
        clipped.astype(np.float32),
        class_ids[keep].astype(np.int64),
        rows.shape[0] - keep.size,
        changed,
    )


def _report(counts: Counter[str], train_images: int, val_images: int) -> dict[str, int]:
    counts = counts + Counter(train_images=train_images, val_images=val_images)
    return {key: counts[key] for key in REPORT_KEYS}


def _sample(
    image: Path,
    size_wh: tuple[int, int],
    xyxy: np.ndarray,
    class_ids: np.ndarray,
    counts: Counter[str],
) -> Sample:
    """The sample of cleaned boxes (`clean_boxes`), counting what cleaning and loading found."""
    xyxy, class_ids, duplicates, clipped = clean_boxes(xyxy, class_ids, size_wh)
    counts["skipped_duplicate_boxes"] += duplicates
    counts["clipped_boxes"] += clipped
    counts["boxes"] += class_ids.size
    counts["background_images"] += int(class_ids.size == 0)
    return Sample(image, size_wh, xyxy, class_ids)


def _load_split(
    split: str,
    entries: list[Path],
    root: Path,
    yaml_path: Path,
    names: tuple[str, ...],
    counts: Counter[str],
) -> tuple[tuple[str, ...], list[Sample]]:
    """The samples of one split's entries, and the class names: data.yaml's, or where it has
    none, those of the split's COCO files (which must agree with each other)."""
    samples: list[Sample] = []
    label_files_before = counts["label_files"]
    for entry in entries:
        if entry.suffix.lower() == ".json":
            coco_names, found = _load_coco(
                entry, (entry.parent, entry.parent / "images", root), counts
            )
            if names and coco_names != names:
                raise JetkitError(
                    f"the categories of {entry} ({', '.join(coco_names)}) differ from "
                    f"the names of {yaml_path} ({', '.join(names)}); make them agree"
                )
            names = coco_names
        else:
            found = _load_yolo(_split_images(entry, split, root, yaml_path), names, counts)
        samples += found
    all_yolo = not any(entry.suffix.lower() == ".json" for entry in entries)
    if all_yolo and counts["label_files"] == label_files_before:
        example = samples[0].image_path
        raise JetkitError(
            f"none of the {len(samples)} `{split}` images of {yaml_path} has a label file "
            f"(for {example} it would be {label_path(example)}); YOLO labels go in a "
            "`labels` folder beside `images`, one .txt per image"
        )
    return names, samples


# --- YOLO ----------------------------------------------------------------------------------------


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise JetkitError(f"{path} cannot be read: {exc}") from None
    except yaml.YAMLError as exc:
        raise JetkitError(f"{path} is not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(config, dict):
        raise JetkitError(
            f"{path} must be a YAML mapping with `path`, `train`, `val` and `names`, "
            f"not a {type(config).__name__}"
        )
    return config


def _dataset_root(config: dict[str, Any], yaml_path: Path) -> Path:
    value = config.get("path")
    if value is None:
        return yaml_path.parent
    if not isinstance(value, str):
        raise JetkitError(f"{yaml_path}: `path` must be a folder path, got {value!r}")
    root = yaml_path.parent / Path(value).expanduser()
    if not root.is_dir():
        raise JetkitError(
            f"{yaml_path}: `path` {root} is not a folder; fix `path` (a relative path resolves "
            "against the folder of data.yaml)"
        )
    return root


def _split_entries(config: dict[str, Any], split: str, root: Path, yaml_path: Path) -> list[Path]:
    value = config.get(split)
    if value is None:
        raise JetkitError(f"{yaml_path} has no `{split}` split: set `{split}:` to {_SPLIT_FIX}")
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(item, str) for item in items):
        raise JetkitError(f"{yaml_path}: `{split}` must be {_SPLIT_FIX}, got {value!r}")
    return [root / Path(item).expanduser() for item in items]


def _yaml_names(config: dict[str, Any], yaml_path: Path) -> tuple[str, ...]:
    """The class names of data.yaml; empty where it has none."""
    value = config.get("names")
    if value is None:
        return ()
    if isinstance(value, dict):
        if set(value) != set(range(len(value))):
            raise JetkitError(
                f"{yaml_path}: `names` ids must be 0..{len(value) - 1} without gaps, "
                f"got {', '.join(map(str, value))}"
            )
        value = [value[k] for k in range(len(value))]
    if not isinstance(value, list) or not value:
        raise JetkitError(
            f"{yaml_path}: `names` must be a non-empty list or a mapping {{0: name, ...}}, "
            f"got {value!r}"
        )
    if any(name is None or isinstance(name, (list, dict)) for name in value):
        raise JetkitError(f"{yaml_path}: every entry of `names` must be a name, got {value!r}")
    names = tuple(str(name) for name in value)
    _check_unique(names, f"{yaml_path}: `names`")
    declared = config.get("nc")
    if declared is not None and declared != len(names):
        raise JetkitError(f"{yaml_path}: `nc` is {declared} but `names` has {len(names)} entries")
    return names


def _check_unique(names: tuple[str, ...], where: str) -> None:
    repeated = sorted(name for name, n in Counter(names).items() if n > 1)
    if repeated:
        raise JetkitError(f"{where} lists {', '.join(map(repr, repeated))} more than once")


def _split_images(entry: Path, split: str, root: Path, yaml_path: Path) -> list[Path]:
    """The images of one `train`/`val` entry: a folder (searched recursively) or a .txt list."""
    if entry.is_dir():
        images = sorted(
            p for p in entry.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
    elif entry.is_file() and entry.suffix.lower() == ".txt":
        images = _read_image_list(entry)
    elif not entry.exists():
        raise JetkitError(
            f"{yaml_path}: `{split}` {entry} does not exist; fix `{split}` (relative paths "
            f"resolve against `path`, here {root})"
        )
    else:
        raise JetkitError(f"{yaml_path}: `{split}` {entry} is not {_SPLIT_FIX}")
    if not images:
        raise JetkitError(
            f"{yaml_path}: `{split}` {entry} holds no images ({', '.join(IMAGE_SUFFIXES)})"
        )
    return images


def _read_image_list(list_path: Path) -> list[Path]:
    """Image paths, one a line; relative ones resolve against the list's folder."""
    images = []
    for number, line in enumerate(list_path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        image = list_path.parent / Path(line.strip()).expanduser()
        if not image.is_file():
            raise JetkitError(f"{list_path}:{number}: image {image} does not exist")
        images.append(image)
    return images


def _load_yolo(images: list[Path], names: tuple[str, ...], counts: Counter[str]) -> list[Sample]:
    with contextlib.closing(_image_sizes(images)) as sizes:
        return [
            _yolo_sample(image, size_wh, names, counts)
            for image, size_wh in zip(images, sizes, strict=True)
        ]


def _yolo_sample(
    image: Path, size_wh: tuple[int, int], names: tuple[str, ...], counts: Counter[str]
) -> Sample:
    labels = label_path(image)
    try:
        text = labels.read_text(encoding="utf-8")
        counts["label_files"] += 1
    except FileNotFoundError:
        text = ""
        counts["missing_label_files"] += 1
    except (OSError, UnicodeDecodeError) as exc:
        raise JetkitError(f"label file {labels} cannot be read: {exc}") from None
    cxcywh, class_ids = parse_label_text(text, len(names), str(labels))
    width, height = size_wh
    xyxy = cxcywh_to_xyxy(cxcywh.astype(np.float64)) * (width, height, width, height)
    return _sample(image, size_wh, xyxy, class_ids, counts)


def unlabelled_samples(images: list[Path]) -> list[Sample]:
    """Samples without boxes for `images` (footage to pseudo-label), each decoded once for its
    size."""
    empty_xyxy, empty_ids = np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
    with contextlib.closing(_image_sizes(images)) as sizes:
        return [
            Sample(image, size_wh, empty_xyxy, empty_ids)
            for image, size_wh in zip(images, sizes, strict=True)
        ]


def _image_sizes(images: list[Path]) -> Generator[tuple[int, int], None, None]:
    """`size_wh` of each image in order, decoded by a thread pool ahead of the caller, so that
    the caller's label parsing overlaps the decoding (OpenCV releases the GIL). Close the
    generator when done (`contextlib.closing`): that cancels the decoding of images not reached
    when the caller stops at a bad file."""
    pool = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1))
    try:
        yield from pool.map(_image_size_wh, images)
    finally:
        pool.shutdown(cancel_futures=True)


def _image_size_wh(path: Path) -> tuple[int, int]:
    try:
        height, width = read_image(path).shape[:2]
    except OSError as exc:
        raise JetkitError(f"image {path} cannot be read: {exc.strerror or exc}") from None
    except JetkitError as exc:
        raise JetkitError(f"{exc}; replace it or remove it from the data set") from None
    return width, height


# --- COCO ----------------------------------------------------------------------------------------


def _load_coco(
    json_path: Path, image_roots: tuple[Path, ...], counts: Counter[str]
) -> tuple[tuple[str, ...], list[Sample]]:
    """A COCO instances file → (class names, samples). Sparse category ids map to contiguous
    class ids in sorted id order; crowd annotations and zero-size boxes are skipped and counted."""
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise JetkitError(f"COCO file {json_path} cannot be read: {exc}") from None
    if not isinstance(data, dict) or not {"images", "annotations", "categories"} <= set(data):
        raise JetkitError(
            f"{json_path} is not a COCO instances file: it needs `images`, `annotations` "
            "and `categories`"
        )
    try:
        categories = sorted(data["categories"], key=lambda c: c["id"])
        class_of = {c["id"]: k for k, c in enumerate(categories)}
        names = tuple(str(c["name"]) for c in categories)
        images = {
            im["id"]: (im["file_name"], (int(im["width"]), int(im["height"])))
            for im in data["images"]
        }
        boxes: dict[Any, list[tuple[list[float], int]]] = {image_id: [] for image_id in images}
        for ann in data["annotations"]:
            if ann.get("iscrowd", 0):
                counts["skipped_crowd_annotations"] += 1
                continue
            for key, known in (("category_id", class_of), ("image_id", images)):
                if ann[key] not in known:
                    raise JetkitError(
                        f"{json_path}: annotation {ann['id']} has {key} {ann[key]}, which is not "
                        f"in `{'categories' if key == 'category_id' else 'images'}`; fix it"
                    )
            x, y, w, h = (float(v) for v in ann["bbox"])
            # The official COCO files hold a few zero-size boxes: refusing them would make the
            # standard data set unloadable.
            if w <= 0 or h <= 0:
                counts["skipped_empty_boxes"] += 1
                continue
            width, height = images[ann["image_id"]][1]
            if x >= width or y >= height or x + w <= 0 or y + h <= 0:
                raise JetkitError(
                    f"{json_path}: annotation {ann['id']} bbox {ann['bbox']} lies outside its "
                    f"{width}x{height} image; COCO bbox is [x, y, width, height] in pixels"
                )
            boxes[ann["image_id"]].append(([x, y, x + w, y + h], class_of[ann["category_id"]]))
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise JetkitError(f"{json_path}: malformed COCO entry ({exc!r}); fix the file") from None
    if not names:
        raise JetkitError(f"{json_path} has no `categories`")
    _check_unique(names, f"{json_path}: `categories`")
    if not images:
        raise JetkitError(f"{json_path} lists no images")
    paths = [_find_image(file_name, image_roots, json_path) for file_name, _ in images.values()]
    samples: list[Sample] = []
    with contextlib.closing(_image_sizes(paths)) as sizes:
        for path, (image_id, (_, size_wh)), actual_wh in zip(
            paths, images.items(), sizes, strict=True
        ):
            if actual_wh != size_wh:
                raise JetkitError(
                    f"{json_path}: image {path} is {actual_wh[0]}x{actual_wh[1]} but its entry "
                    f"says {size_wh[0]}x{size_wh[1]}; fix `width`/`height` of image {image_id}"
                )
            xyxy = np.array([box for box, _ in boxes[image_id]], np.float64).reshape(-1, 4)
            class_ids = np.array([k for _, k in boxes[image_id]], np.int64)
            samples.append(_sample(path, size_wh, xyxy, class_ids, counts))
    return names, samples


def _find_image(file_name: str, roots: tuple[Path, ...], json_path: Path) -> Path:
    for root in roots:
        candidate = root / file_name
        if candidate.is_file():
            return candidate
    raise JetkitError(
        f"{json_path}: image {file_name} is in none of {', '.join(map(str, roots))}; put the "
        "images beside the json or in its images/ folder, or set `path` in data.yaml"
    )
