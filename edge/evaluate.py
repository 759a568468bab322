"""COCO mAP through pycocotools, plus precision/recall and PR curves: one evaluator for training
checkpoints and for any model artifact a `Detector` opens.

from edge import Detector
from edge.datasets import load_dataset
from edge.evaluate import EVAL_THRESHOLDS as t, evaluate_detector, format_table
ds = load_dataset("data.yaml")
detector = Detector.open("model.onnx", conf=t.conf, iou=t.iou, max_detections=t.max_detections)
print(format_table(evaluate_detector(detector, ds.val, names=ds.names)))

mAP50-95 and mAP50 are COCOeval's (area "all", 100 detections per image and class). Precision
and recall are taken, as Ultralytics reports them, at the one confidence (of a 1000-step grid)
that maximises the F1 score averaged over the classes that have ground truth, with detections
matched to ground truth at IoU 0.5; unlike Ultralytics, without interpolating between
detections' scores, so that they are the precision and recall of a real confidence threshold.
pycocotools is imported inside the functions that use it.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import numpy as np

from edge.boxes import pairwise_iou
from edge.datasets import Sample
from edge.errors import JetkitError
from edge.images import read_image

if TYPE_CHECKING:
    from edge.detector import Detector

PR_IOU_THRESHOLD = 0.5
CONFIDENCE_GRID = np.linspace(0.0, 1.0, 1000)


@dataclass(frozen=True)
class EvalThresholds:
    """Postprocess settings for measuring mAP (Ultralytics' validation defaults): a confidence
    low enough to trace the whole precision/recall curve, NMS IoU, detections kept per image."""

    conf: float = 0.001
    iou: float = 0.7
    max_detections: int = 300

    def detector_options(self) -> dict[str, Any]:
        """Keyword arguments for `Detector.open` that make it detect for evaluation."""
        return {"conf": self.conf, "iou": self.iou, "max_detections": self.max_detections}


EVAL_THRESHOLDS = EvalThresholds()


class DetectionsLike(Protocol):
    """One image's detections in its pixels: `xyxy (N,4)`, `scores (N,)`, `class_ids (N,)`
    (`edge.detector.Detections` and `ImageDetections` both fit)."""

    @property
    def xyxy(self) -> np.ndarray: ...

    @property
    def scores(self) -> np.ndarray: ...

    @property
    def class_ids(self) -> np.ndarray: ...


class ImageDetections(NamedTuple):
    """Detections of one image from any source: `xyxy (N,4)` frame pixels, `scores (N,)`,
    `class_ids (N,)`."""

    xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray


@dataclass(frozen=True)
class ClassMetrics:
    """One class: AP is nan and P/R are nan where the class has no ground truth (`num_gt` 0);
    `num_images` counts the images that hold at least one of its boxes."""

    name: str
    num_gt: int
    ap50_95: float
    ap50: float
    precision: float
    recall: float
    num_images: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "num_images": self.num_images,
            "num_gt": self.num_gt,
            "ap50_95": _json_float(self.ap50_95),
            "ap50": _json_float(self.ap50),
            "precision": _json_float(self.precision),
            "recall": _json_float(self.recall),
        }


@dataclass(frozen=True)
class EvalResult:
    """Means over the classes that have ground truth; `pr_curves` maps each class name to its
    `(101,)` precision at recall 0, 0.01, …, 1 at IoU 0.5 (COCOeval's interpolated curve)."""

    map50_95: float
    map50: float
    precision: float
    recall: float
    per_class: tuple[ClassMetrics, ...]
    num_images: int
    pr_curves: dict[str, np.ndarray]
    # COCO's AP-small: mAP50-95 over boxes under 32×32 pixels (in the image's own pixels), as
    # COCOeval's stats[3] averages it; nan where no box is that small.
    map_small: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (nan becomes null); the PR curves are left out."""
        return {
            "map50_95": self.map50_95,
            "map50": self.map50,
            "precision": self.precision,
            "recall": self.recall,
            "map_small": _json_float(self.map_small),
            "num_images": self.num_images,
            "per_class": {c.name: c.to_dict() for c in self.per_class},
        }


def evaluate(
    samples: Sequence[Sample], detections: Sequence[DetectionsLike], names: Sequence[str]
) -> EvalResult:
    """Score `detections[i]` against `samples[i]`; class ids index `names`."""
    if not samples:
        raise JetkitError("no images to evaluate: the data set split is empty")
    if len(detections) != len(samples):
        raise ValueError(f"{len(detections)} detection sets for {len(samples)} images")
    num_classes = len(names)
    gt_ids = [s.class_ids for s in samples]
    _check_class_ids(gt_ids, num_classes, "the ground truth")
    _check_class_ids([d.class_ids for d in detections], num_classes, "the detections")
    num_gt = np.bincount(np.concatenate(gt_ids), minlength=num_classes)
    if not num_gt.any():
        raise JetkitError(
            f"none of the {len(samples)} images has a ground-truth box: there is nothing to "
            "measure mAP against; evaluate on a labelled split"
        )
    num_images = np.bincount(
        np.concatenate([np.unique(ids) for ids in gt_ids]), minlength=num_classes
    )
    by_area = _coco_precision(*to_coco(samples, detections, names))
    coco_precision = by_area[..., AREA_ALL]
    ap50_95, ap50 = _mean_valid(coco_precision, (0, 1)), _mean_valid(coco_precision[0], (0,))
    precision, recall = _precision_recall_at_best_f1(samples, detections, num_gt)
    has_gt = num_gt > 0
    per_class = tuple(
        ClassMetrics(
            name=name,
            num_gt=int(num_gt[k]),
            ap50_95=float(ap50_95[k]),
            ap50=float(ap50[k]),
            precision=float(precision[k]) if has_gt[k] else math.nan,
            recall=float(recall[k]) if has_gt[k] else math.nan,
            num_images=int(num_images[k]),
        )
        for k, name in enumerate(names)
    )
    return EvalResult(
        map50_95=float(ap50_95[has_gt].mean()),
        map50=float(ap50[has_gt].mean()),
        precision=float(precision[has_gt].mean()),
        recall=float(recall[has_gt].mean()),
        per_class=per_class,
        num_images=len(samples),
        pr_curves={name: np.maximum(coco_precision[0, :, k], 0.0) for k, name in enumerate(names)},
        map_small=float(_mean_valid(by_area[..., AREA_SMALL], (0, 1, 2))),
    )


def evaluate_detector(
    detector: Detector,
    samples: Sequence[Sample],
    batch: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    names: Sequence[str] | None = None,
) -> EvalResult:
    """Run `detector` on every sample's image (`edge.images.read_image`), `batch` images at a
    time (default: the model's max batch), and evaluate against the samples' boxes.

    Open the detector with `EVAL_THRESHOLDS` (`Detector.open(path, conf=0.001, iou=0.7,
    max_detections=300)`): mAP integrates precision over all confidences, and a deployment
    threshold cuts the curve short and understates it. `names`, the data set's class names,
    when given must equal the model's classes, so that a class id means the same in both.
    `progress(done, total)` is called after each batch.
    """
    size = detector.max_batch if batch is None else batch
    if not 1 <= size <= detector.max_batch:
        raise JetkitError(
            f"batch {size} must be between 1 and the model's max batch {detector.max_batch}"
        )
    model_names = detector.manifest.classes
    if names is not None and tuple(names) != tuple(model_names):
        raise JetkitError(
            f"the model's classes ({', '.join(model_names)}) differ from the data set's names "
            f"({', '.join(names)}); evaluate a model trained on this data set's classes"
        )
    found: list[DetectionsLike] = []
    for start in range(0, len(samples), size):
        chunk = samples[start : start + size]
        found += detector.detect_batch([_read_frame(sample) for sample in chunk])
        if progress is not None:
            progress(len(found), len(samples))
    return evaluate(samples, found, model_names)


def format_table(result: EvalResult) -> str:
    """Ultralytics-like validation table: an `all` row, then one row per class."""
    width = max(len("class"), *(len(c.name) for c in result.per_class))
    total_gt = sum(c.num_gt for c in result.per_class)

    def row(name: str, images: int, gt: int, values: tuple[float, ...]) -> str:
        cells = "".join(f"{'-' if math.isnan(v) else f'{v:.3f}':>10}" for v in values)
        return f"{name:>{width}}{images:>8}{gt:>8}{cells}"

    header = f"{'class':>{width}}{'images':>8}{'gt':>8}" + "".join(
        f"{title:>10}" for title in ("P", "R", "mAP50", "mAP50-95")
    )
    overall = (result.precision, result.recall, result.map50, result.map50_95)
    lines = [header, row("all", result.num_images, total_gt, overall)]
    lines += [
        row(c.name, c.num_images, c.num_gt, (c.precision, c.recall, c.ap50, c.ap50_95))
        for c in result.per_class
    ]
    return "\n".join(lines)


def to_coco(
    samples: Sequence[Sample], detections: Sequence[DetectionsLike], names: Sequence[str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The ground truth as a COCO instances dict (image ids 1..N, category id = class id + 1)
    and the detections as a COCO results list (what `COCO.loadRes` takes)."""
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for image_id, (sample, found) in enumerate(zip(samples, detections, strict=True), start=1):
        width, height = sample.size_wh
        images.append({"id": image_id, "width": width, "height": height})
        for (x0, y0, x1, y1), class_id in zip(
            sample.xyxy.tolist(), sample.class_ids.tolist(), strict=True
        ):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": class_id + 1,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": 0,
                }
            )
        for (x0, y0, x1, y1), score, class_id in zip(
            np.asarray(found.xyxy, np.float64).tolist(),
            np.asarray(found.scores, np.float64).tolist(),
            np.asarray(found.class_ids).tolist(),
            strict=True,
        ):
            results.append(
                {
                    "image_id": image_id,
                    "category_id": int(class_id) + 1,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "score": score,
                }
            )
    categories = [{"id": k + 1, "name": name} for k, name in enumerate(names)]
    return {"images": images, "annotations": annotations, "categories": categories}, results


def match_detections(
    det_xyxy: np.ndarray,
    det_scores: np.ndarray,
    det_class_ids: np.ndarray,
    gt_xyxy: np.ndarray,
    gt_class_ids: np.ndarray,
    iou_threshold: float = PR_IOU_THRESHOLD,
) -> np.ndarray:
    """Match one image's detections to its ground truth as COCOeval does: in descending score
    order, each detection takes the still unmatched box of its class with the highest IoU, if
    that IoU is >= `iou_threshold`. Returns `true_positive (N,)` bool in the detections' order."""
    true_positive = np.zeros(det_scores.shape[0], dtype=bool)
    if not true_positive.size or not gt_class_ids.size:
        return true_positive
    iou = pairwise_iou(det_xyxy.astype(np.float64), gt_xyxy.astype(np.float64))
    iou[det_class_ids[:, None] != gt_class_ids[None, :]] = -1.0
    # Only detections that overlap some box enough can match: skipping the rest keeps the
    # sequential loop short at conf 0.001.
    candidates = np.flatnonzero(iou.max(axis=1) >= iou_threshold)
    taken = np.zeros(gt_class_ids.shape[0], dtype=bool)
    for d in candidates[np.argsort(-det_scores[candidates], kind="stable")]:
        row = np.where(taken, -1.0, iou[d])
        best = int(row.argmax())
        if row[best] >= iou_threshold:
            true_positive[d] = taken[best] = True
    return true_positive


def precision_recall_curves(
    true_positive: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, num_gt: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class precision and recall `(K, len(CONFIDENCE_GRID))` of the detections scoring at
    least each confidence of the grid. Keeping none counts as precision 1 (where a PR curve
    starts, as Ultralytics has it) and recall 0; a class without detections or ground truth has
    zero precision and recall throughout."""
    precision = np.zeros((num_gt.shape[0], CONFIDENCE_GRID.size))
    recall = np.zeros_like(precision)
    order = np.argsort(-scores, kind="stable")
    true_positive, scores, class_ids = true_positive[order], scores[order], class_ids[order]
    for k in np.flatnonzero(num_gt):
        mine = class_ids == k
        if not mine.any():
            continue
        # -scores ascends: the count of entries <= -confidence is the count kept.
        kept = np.searchsorted(-scores[mine], -CONFIDENCE_GRID, side="right")
        tp = np.concatenate(([0], np.cumsum(true_positive[mine])))[kept]
        recall[k] = tp / num_gt[k]
        precision[k] = np.where(kept > 0, tp / np.maximum(kept, 1), 1.0)
    return precision, recall


def _f1_curves(
    samples: Sequence[Sample], detections: Sequence[DetectionsLike], num_gt: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision and recall `(K, len(CONFIDENCE_GRID))`, and the mean F1 over the
    classes with ground truth at each confidence of the grid."""
    true_positive = [
        match_detections(
            np.asarray(d.xyxy),
            np.asarray(d.scores),
            np.asarray(d.class_ids),
            s.xyxy,
            s.class_ids,
        )
        for s, d in zip(samples, detections, strict=True)
    ]
    precision, recall = precision_recall_curves(
        np.concatenate(true_positive),
        np.concatenate([np.asarray(d.scores, np.float64) for d in detections]),
        np.concatenate([np.asarray(d.class_ids, np.int64) for d in detections]),
        num_gt,
    )
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-16)
    return precision, recall, f1[num_gt > 0].mean(axis=0)


def _precision_recall_at_best_f1(
    samples: Sequence[Sample], detections: Sequence[DetectionsLike], num_gt: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class `(K,)` precision and recall at the confidence that maximises the mean F1 over
    the classes with ground truth."""
    precision, recall, mean_f1 = _f1_curves(samples, detections, num_gt)
    best = int(mean_f1.argmax())
    return precision[:, best], recall[:, best]


def best_f1_confidence(
    samples: Sequence[Sample],
    detections: Sequence[DetectionsLike],
    num_classes: int,
    min_confidence: float = 0.0,
) -> tuple[float, float]:
    """The confidence (at least `min_confidence`) at which `detections` agree best with the
    samples' boxes (mean F1 over the classes with ground truth, IoU >= 0.5) and that F1: where a
    detector's output is most trustworthy as labels. Raises when no sample has a box."""
    num_gt = np.bincount(
        np.concatenate([s.class_ids for s in samples] or [np.zeros(0, np.int64)]),
        minlength=num_classes,
    )
    if not num_gt.any():
        raise JetkitError(
            f"none of the {len(samples)} labelled images has a box to choose a confidence on; "
            "label some, or give the threshold yourself"
        )
    _, _, mean_f1 = _f1_curves(samples, detections, num_gt)
    first = int(np.searchsorted(CONFIDENCE_GRID, min_confidence))
    best = first + int(mean_f1[first:].argmax())
    return float(CONFIDENCE_GRID[best]), float(mean_f1[best])


# COCOeval's area ranges, in its order: all, small (< 32²), medium, large.
AREA_ALL, AREA_SMALL = 0, 1


def _coco_precision(gt_dict: dict[str, Any], results: list[dict[str, Any]]) -> np.ndarray:
    """COCOeval's precision `(T,R,K,A)`: IoU thresholds 0.5:0.95 × 101 recall points ×
    classes × areas (`AREA_ALL`, `AREA_SMALL`, …), 100 detections; -1 where a class has no
    ground truth in that area."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    # The detections are indexed directly rather than through `COCO.loadRes`, which fails on an
    # empty list; the fields are the ones loadRes adds for boxes.
    dt_annotations = [
        {**r, "id": i, "area": r["bbox"][2] * r["bbox"][3], "iscrowd": 0}
        for i, r in enumerate(results, start=1)
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        gt, dt = COCO(), COCO()
        gt.dataset = gt_dict
        dt.dataset = {**gt_dict, "annotations": dt_annotations}
        gt.createIndex()
        dt.createIndex()
        evaluator = COCOeval(gt, dt, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
    return evaluator.eval["precision"][:, :, :, :, -1]


def _mean_valid(precision: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Mean over `axes` of the entries > -1 (COCOeval's marker for "no ground truth"); nan
    where there are none."""
    valid = precision > -1
    total = np.where(valid, precision, 0.0).sum(axis=axes)
    count = valid.sum(axis=axes)
    return np.where(count > 0, total / np.maximum(count, 1), math.nan)


def _check_class_ids(class_ids: list[np.ndarray], num_classes: int, what: str) -> None:
    for image_ids in class_ids:
        ids = np.asarray(image_ids)
        bad = ids[(ids < 0) | (ids >= num_classes)]
        if bad.size:
            raise JetkitError(
                f"{what} use class id {int(bad[0])}, but there are {num_classes} class names"
            )


def _read_frame(sample: Sample) -> np.ndarray:
    frame = read_image(sample.image_path)
    size_wh = (frame.shape[1], frame.shape[0])
    if size_wh != tuple(sample.size_wh):
        raise JetkitError(
            f"image {sample.image_path} is {size_wh[0]}x{size_wh[1]} but was "
            f"{sample.size_wh[0]}x{sample.size_wh[1]} when the data set was loaded; reload it"
        )
    return frame


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else value
