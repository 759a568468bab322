"""Cameras, network streams, video files and raw pipelines through GStreamer's appsink.

PyGObject (`gi`) is imported on first use only, so that `import edge.sources` stays cheap and works
where GStreamer is missing.
"""

from __future__ import annotations

import functools
import threading
import time
from typing import Any

import numpy as np

from edge.errors import JetkitError
from edge.redact import redact
from edge.sources.base import SourceError
from edge.sources.checks import ensure_exists
from edge.sources.launch import pipeline_for
from edge.sources.uri import SourceSpec

# How often a waiting read looks at the bus and at close(): the longest close() waits on a read.
POLL_S = 0.05


@functools.cache
def gst_modules() -> tuple[Any, Any, Any]:
    """`(Gst, GstVideo, GLib)`, initialised; ImportError or ValueError where they are missing."""
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstVideo", "1.0")
    from gi.repository import GLib, Gst, GstVideo

    Gst.init(None)
    return Gst, GstVideo, GLib


def gstreamer_available() -> bool:
    try:
        gst_modules()
    except (ImportError, ValueError):
        return False
    return True


def element_exists(name: str) -> bool:
    gst, _, _ = gst_modules()
    return gst.ElementFactory.find(name) is not None


def bgr_from_bytes(data: bytes, width: int, height: int, stride: int) -> np.ndarray:
    """A contiguous `(height, width, 3)` copy of BGR rows `stride` bytes apart (GStreamer pads
    each row to a multiple of 4 bytes)."""
    rows = np.ndarray((height, width, 3), np.uint8, buffer=data, strides=(stride, 3, 1))
    return rows.copy()


# Fixes for failures whose own message does not say what to do (matched in message or debug).
_FIXES = {
    "Failed to create CaptureSession": "restart the camera daemon: "
    "sudo systemctl restart nvargus-daemon",
    # decodebin found no decoder (or demuxer) for the stream: the libav and "bad" sets hold
    # those of MPEG-4 part 2, H.264 and H.265 on Debian and Ubuntu (L4T).
    "missing a plug-in": "install GStreamer's decoders: "
    "sudo apt-get install gstreamer1.0-libav gstreamer1.0-plugins-bad",
}


def bus_error_text(element: str, message: str, debug: str | None) -> str:
    """`element: message`, and the fix where the failure is a known one; credentials masked, as
    an element's message may quote its location (a camera URL with its password)."""
    fixes = [fix for known, fix in _FIXES.items() if known in f"{message} {debug or ''}"]
    text = redact(f"{element}: {message}")
    return text.rstrip(".") + "".join(f"; {fix}" for fix in fixes) if fixes else text


def _appsinks(pipeline: Any) -> list[Any]:
    sinks: list[Any] = []
    pipeline.iterate_sinks().foreach(sinks.append)
    return [sink for sink in sinks if sink.get_factory().get_name() == "appsink"]


class GstSource:
    """One GStreamer pipeline ending in an appsink that gives BGR frames.

    `open()` checks that the file or device is there, builds and starts the pipeline, and waits
    up to `open_timeout_s` for its first frame, so that a missing camera or a refused RTSP host
    fails there: JetkitError for what cannot work (bad pipeline, undecodable file), SourceError
    for a live source that may come back. `read()` raises SourceError with the failing element's
    message, when no frame comes for `stall_timeout_s` (a stream that hangs without an error) or
    when a camera or RTSP stream ends; it returns None at the end of a file or gst:// pipeline
    and once closed.
    """

    def __init__(
        self, spec: SourceSpec, open_timeout_s: float = 10.0, stall_timeout_s: float = 10.0
    ) -> None:
        self.spec = spec
        self.uri = spec.uri
        self.live = spec.live
        self.open_timeout_s = open_timeout_s
        self.stall_timeout_s = stall_timeout_s
        self._closed = threading.Event()
        self._pipeline: Any = None
        self._sink: Any = None
        self._first: np.ndarray | None = None

    def open(self) -> None:
        gst, _, glib = gst_modules()
        ensure_exists(self.spec)
        text = pipeline_for(self.spec, element_exists)
        try:
            pipeline = gst.parse_launch(text)
        except glib.Error as error:
            raise JetkitError(
                f"source {self.spec.safe_uri!r}: GStreamer cannot build {redact(text)!r}: "
                f"{error.message}"
            ) from None
        appsinks = _appsinks(pipeline)
        if not appsinks:
            raise JetkitError(
                f"source {self.spec.safe_uri!r}: the pipeline {redact(text)!r} has no appsink"
            )
        self._closed.clear()
        self._pipeline, self._sink = pipeline, appsinks[0]
        pipeline.set_state(gst.State.PLAYING)
        try:
            self._first = self._pull(self.open_timeout_s)
        except (SourceError, JetkitError) as error:
            self.close()
            if self.live or isinstance(error, JetkitError):
                raise
            raise JetkitError(str(error)) from None

    def read(self) -> np.ndarray | None:
        first, self._first = self._first, None
        return first if first is not None else self._pull(self.stall_timeout_s)

    def close(self) -> None:
        self._closed.set()
        self._first = None
        pipeline, self._pipeline, self._sink = self._pipeline, None, None
        if pipeline is not None:
            gst, _, _ = gst_modules()
            # NULL flushes the appsink, which wakes a read waiting in try-pull-sample.
            pipeline.set_state(gst.State.NULL)

    def _pull(self, timeout_s: float) -> np.ndarray | None:
        gst, _, _ = gst_modules()
        # Our own references: close() from another thread drops the attributes meanwhile.
        pipeline, sink = self._pipeline, self._sink
        if pipeline is None or sink is None:
            return None
        bus = pipeline.get_bus()
        deadline_s = time.monotonic() + timeout_s
        while not self._closed.is_set():
            # pop_filtered also discards the other messages, so the bus never piles up.
            message = bus.pop_filtered(gst.MessageType.ERROR)
            if message is not None:
                error, debug = message.parse_error()
                text = bus_error_text(message.src.get_name(), error.message, debug)
                raise SourceError(f"source {self.spec.safe_uri!r}: {text}")
            sample = sink.emit("try-pull-sample", int(POLL_S * gst.SECOND))
            if sample is not None:
                return self._to_bgr(sample)
            if sink.get_property("eos"):
                if self.live and self.spec.kind != "gst":
                    # A camera or an RTSP stream has no end: EOS is its server or device going
                    # away (rtspsrc sends it when the server closes the session), to be
                    # reconnected. A gst:// pipeline may end by design (num-buffers).
                    raise SourceError(f"source {self.spec.safe_uri!r}: the stream ended (EOS)")
                return None
            if time.monotonic() > deadline_s:
                raise SourceError(f"source {self.spec.safe_uri!r}: no frame for {timeout_s:g} s")
        return None

    def _to_bgr(self, sample: Any) -> np.ndarray:
        gst, gst_video, _ = gst_modules()
        info = gst_video.VideoInfo.new_from_caps(sample.get_caps())
        if info.finfo.format != gst_video.VideoFormat.BGR:
            raise JetkitError(
                f"source {self.spec.safe_uri!r}: the appsink gets {info.finfo.name}, not BGR; end the "
                "pipeline with `videoconvert ! video/x-raw,format=BGR ! appsink`"
            )
        buffer = sample.get_buffer()
        ok, mapped = buffer.map(gst.MapFlags.READ)
        if not ok:
            raise SourceError(f"source {self.spec.safe_uri!r}: cannot map a frame buffer")
        try:
            return bgr_from_bytes(mapped.data, info.width, info.height, info.stride[0])
        finally:
            buffer.unmap(mapped)
