"""Video files through GStreamer, and through OpenCV where GStreamer cannot decode them.

A machine can have GStreamer's Python bindings without the decoder a file needs (MPEG-4 part 2,
as OpenCV's `mp4v` writes, needs gstreamer1.0-libav): OpenCV's own FFmpeg reads most such files.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from edge.errors import JetkitError
from edge.sources.checks import ensure_exists
from edge.sources.gst import GstSource
from edge.sources.opencv import OpenCVSource
from edge.sources.uri import SourceSpec

Log = Callable[[str], None]


class FileSource:
    """A `file` spec read by GstSource, or by OpenCVSource once GStreamer failed to open it and
    OpenCV decoded its first frame (said once through `log`). A file GStreamer and OpenCV both
    fail on raises GStreamer's error with OpenCV's beside it."""

    def __init__(self, spec: SourceSpec, log: Log) -> None:
        if spec.kind != "file":
            raise ValueError(f"FileSource reads files, not {spec.kind}")
        self.spec = spec
        self.uri = spec.uri
        self.live = spec.live
        self._log = log
        self._gst = GstSource(spec)
        self._opencv: OpenCVSource | None = None
        self._first: np.ndarray | None = None

    @property
    def reader(self) -> str:
        """`gstreamer` or `opencv`: what reads the file since open()."""
        return "gstreamer" if self._opencv is None else "opencv"

    def open(self) -> None:
        ensure_exists(self.spec)
        if self._opencv is not None:
            self._opencv.open()
            return
        try:
            self._gst.open()
        except JetkitError as gst_error:
            opencv = OpenCVSource(self.spec)
            self._first = _first_frame(opencv, gst_error)
            self._opencv = opencv
            self._log(f"{gst_error}; reading the file with OpenCV instead")

    def read(self) -> np.ndarray | None:
        if self._opencv is None:
            return self._gst.read()
        first, self._first = self._first, None
        return first if first is not None else self._opencv.read()

    def close(self) -> None:
        self._first = None
        (self._gst if self._opencv is None else self._opencv).close()


def _first_frame(opencv: OpenCVSource, gst_error: JetkitError) -> np.ndarray:
    """OpenCV's first frame of the file, opened; GStreamer's error, with OpenCV's failure beside
    it, where OpenCV cannot decode one either."""
    try:
        opencv.open()
    except JetkitError:
        raise JetkitError(f"{gst_error}; OpenCV cannot open it either") from None
    first = opencv.read()
    if first is None:
        opencv.close()
        raise JetkitError(f"{gst_error}; OpenCV cannot decode a frame of it either")
    return first
