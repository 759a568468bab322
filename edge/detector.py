"""`Detector`: preprocess + backend + decode + NMS, the library API a user calls on frames.

from edge import Detector
detector = Detector.open("yolov8n.onnx")
detections = detector(frame_bgr)          # or detector.detect_batch([f0, f1, …])
detections.xyxy, detections.scores, detections.class_ids, detections.names
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.backends import Backend, open_backend
from edge.decode import decode
from edge.errors import JetkitError
from edge.manifest import NMS_KINDS, Manifest
from edge.models import Overrides, ResolvedManifest, resolve_manifest
from edge.postprocess import suppress
from edge.preprocess import Preprocessor, Transform


@dataclass(frozen=True)
class Detections:
    """One frame's detections in frame pixels: `xyxy (N,4)` float32, `scores (N,)` float32,
    `class_ids (N,)` int64, and the model's class names (index order)."""

    xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @property
    def names(self) -> list[str]:
        """The class name of each detection (`class<k>` for an id outside the names)."""
        return [
            self.class_names[k] if 0 <= k < len(self.class_names) else f"class{k}"
            for k in self.class_ids
        ]

    def to_list(self) -> list[dict[str, Any]]:
        """JSON-ready: `[{"xyxy": [x0, y0, x1, y1], "score": s, "class_id": k, "class_name": n}]`."""
        return [
            {
                "xyxy": [round(float(v), 2) for v in box],
                "score": round(float(score), 5),
                "class_id": int(class_id),
                "class_name": name,
            }
            for box, score, class_id, name in zip(
                self.xyxy, self.scores, self.class_ids, self.names, strict=True
            )
        ]


@dataclass
class Thresholds:
    """Per-call postprocess settings; the manifest's `postprocess` gives the defaults."""

    conf: float
    iou: float
    nms: str
    max_detections: int

    def __post_init__(self) -> None:
        for name in ("conf", "iou"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise JetkitError(f"--{name} must be between 0 and 1, got {value}")
        if self.max_detections < 1:
            raise JetkitError(f"max detections must be >= 1, got {self.max_detections}")
        if self.nms not in NMS_KINDS:
            raise JetkitError(f"NMS kind {self.nms!r} is not one of {', '.join(NMS_KINDS)}")


@dataclass
class StageTimes:
    """Milliseconds spent in each stage of the last call."""

    preprocess: float = 0.0
    infer: float = 0.0
    postprocess: float = 0.0
    backend: dict[str, float] = field(default_factory=dict)


class Detector:
    """Runs a model on BGR frames and returns `Detections` in frame pixels."""

    def __init__(
        self,
        backend: Backend,
        manifest: Manifest,
        conf: float | None = None,
        iou: float | None = None,
        nms: str | None = None,
        max_detections: int | None = None,
    ) -> None:
        post = manifest.postprocess
        self.backend = backend
        self.manifest = manifest
        self.thresholds = Thresholds(
            conf=post.conf_threshold if conf is None else conf,
            iou=post.iou_threshold if iou is None else iou,
            nms=post.nms if nms is None else nms,
            max_detections=post.max_detections if max_detections is None else max_detections,
        )
        self.preprocessor = Preprocessor(
            manifest.preprocess,
            manifest.input.size_hw,
            max_batch=manifest.input.max_batch,
            dtype=manifest.input.dtype,
        )
        self.last_times = StageTimes()
        self.resolved: ResolvedManifest | None = None

    @classmethod
    def open(
        cls,
        path: str | Path,
        backend: str | None = None,
        overrides: Overrides = Overrides(),
        backend_options: dict[str, Any] | None = None,
        **thresholds: Any,
    ) -> Detector:
        """Open a model file with its manifest (embedded, sidecar or inferred)."""
        runner = open_backend(str(path), backend, **(backend_options or {}))
        resolved = resolve_manifest(path, runner, overrides)
        detector = cls(runner, resolved.manifest, **thresholds)
        detector.resolved = resolved
        return detector

    @property
    def max_batch(self) -> int:
        return self.manifest.input.max_batch

    @property
    def overlaps_host(self) -> bool:
        """Whether inference leaves the host's CPU cores free for pre- and postprocessing."""
        return not self.backend.on_host_cpu

    def __call__(self, frame: np.ndarray) -> Detections:
        return self.detect_batch([frame])[0]

    def detect_batch(self, frames: list[np.ndarray]) -> list[Detections]:
        """BGR uint8 frames (gray/BGRA converted) → one Detections per frame."""
        start = time.perf_counter()
        tensor, transforms = self.preprocess(frames)
        after_pre = time.perf_counter()
        outputs = self.infer(tensor)
        after_infer = time.perf_counter()
        results = self.postprocess(outputs, transforms)
        end = time.perf_counter()
        self.last_times = StageTimes(
            preprocess=(after_pre - start) * 1e3,
            infer=(after_infer - after_pre) * 1e3,
            postprocess=(end - after_infer) * 1e3,
            backend=dict(self.backend.last_stages_ms),
        )
        return results

    # The three stages apart, for a pipeline that runs them in separate threads.

    def preprocess(self, frames: list[np.ndarray]) -> tuple[np.ndarray, list[Transform]]:
        """Frames → the `(B, 3, H, W)` input (a view of a reused buffer: copy it to keep it past
        the next call) and one Transform per frame. A static-batch model's batch is filled."""
        tensor, transforms = self.preprocessor(frames)
        if (
            not self.manifest.input.dynamic_batch
            and tensor.shape[0] != self.manifest.input.shape[0]
        ):
            tensor = self._fill_static_batch(tensor)
        return tensor, transforms

    def infer(self, tensor: np.ndarray) -> list[np.ndarray]:
        """The model's raw outputs, in the manifest's `output.names` order."""
        outputs = self.backend.infer([tensor])
        by_name = dict(zip((s.name for s in self.backend.outputs), outputs, strict=True))
        return [by_name[name] for name in self.manifest.output.names]

    def postprocess(
        self, outputs: list[np.ndarray], transforms: list[Transform]
    ) -> list[Detections]:
        """Decode + NMS, boxes back in frame pixels: one Detections per transform (a filled
        static batch's extra rows are ignored)."""
        manifest = self.manifest
        candidates = decode(
            outputs,
            manifest.output.format,
            self.thresholds.conf,
            manifest.input.size_hw,
            manifest.output.strides,
        )[: len(transforms)]
        kept = suppress(
            candidates,
            manifest.num_classes,
            self.thresholds.iou,
            "none" if manifest.output.format == "end2end" else self.thresholds.nms,
            self.thresholds.max_detections,
        )
        return [
            Detections(transform.to_frame(c.xyxy), c.scores, c.class_ids, manifest.classes)
            for c, transform in zip(kept, transforms, strict=True)
        ]

    def _fill_static_batch(self, tensor: np.ndarray) -> np.ndarray:
        """A static-batch model takes exactly its batch: repeat the last image to fill it."""
        want = self.manifest.input.shape[0]
        filler = np.repeat(tensor[-1:], want - tensor.shape[0], axis=0)
        return np.concatenate((tensor, filler))

    def close(self) -> None:
        self.backend.close()
