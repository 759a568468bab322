"""Video files and USB cameras through OpenCV, for machines without GStreamer's Python bindings."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from edge.errors import JetkitError
from edge.sources.base import SourceError
from edge.sources.checks import ensure_exists
from edge.sources.uri import SourceSpec, V4l2Params


class OpenCVSource:
    """`cv2.VideoCapture` over a `file` or `v4l2` spec. A file ends (None) after its last frame; a
    camera that gives no frame raises SourceError. close() from another thread waits for the
    read in progress: VideoCapture is not safe to release while it reads."""

    def __init__(self, spec: SourceSpec) -> None:
        if spec.kind not in ("file", "v4l2"):
            raise ValueError(f"OpenCVSource reads files and v4l2 cameras, not {spec.kind}")
        self.spec = spec
        self.uri = spec.uri
        self.live = spec.live
        self._capture: Any = None
        self._lock = threading.Lock()

    def open(self) -> None:
        import cv2

        ensure_exists(self.spec)
        params = self.spec.params
        if isinstance(params, V4l2Params):
            capture = cv2.VideoCapture(self.spec.location, cv2.CAP_V4L2)
            # One buffered frame: a slow reader gets a recent image, not a queue of old ones.
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
            if params.format == "mjpg":
                capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*"MJPG"))
            if params.size_wh is not None:
                capture.set(cv2.CAP_PROP_FRAME_WIDTH, params.size_wh[0])
                capture.set(cv2.CAP_PROP_FRAME_HEIGHT, params.size_wh[1])
            if params.fps is not None:
                capture.set(cv2.CAP_PROP_FPS, params.fps)
        else:
            capture = cv2.VideoCapture(self.spec.location)
        if not capture.isOpened():
            capture.release()
            message = f"source {self.spec.safe_uri!r}: OpenCV cannot open {self.spec.location}"
            raise SourceError(message) if self.live else JetkitError(message)
        with self._lock:
            self._capture = capture

    def read(self) -> np.ndarray | None:
        with self._lock:
            if self._capture is None:
                return None
            ok, image = self._capture.read()
        if ok:
            return image
        if self.live:
            raise SourceError(f"source {self.spec.safe_uri!r}: no frame from {self.spec.location}")
        return None

    def close(self) -> None:
        with self._lock:
            if self._capture is not None:
                self._capture.release()
                self._capture = None
