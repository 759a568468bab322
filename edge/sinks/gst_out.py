"""`gst://appsrc name=src ! …`: annotated frames pushed into a GStreamer pipeline, one pipeline per
stream (see `edge.sinks.gst_uri`). The pipeline starts on its stream's first frame, whose size
sets the appsrc caps; close() sends end-of-stream so that muxers finish their files.

A pipeline that falls APPSRC_QUEUE_FRAMES frames behind slows `write()` to its pace, as the
video sink does (a recording stays whole; a camera's extra frames are dropped at capture); one
stuck for PIPELINE_STALL_S loses frames, counted in `dropped`. A pipeline that posts an error
stays down, and every later frame of its stream raises that error (counted by the pipeline as
sink errors).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from edge.errors import JetkitError
from edge.redact import redact
from edge.sinks.base import Result, SinkError
from edge.sinks.frames import fit_to_size
from edge.sinks.gst_uri import APPSRC_NAME, GstOutConfig, appsrc_caps
from edge.sinks.video_uri import DEFAULT_FPS
from edge.sources.gst import bus_error_text, gst_modules

APPSRC_QUEUE_FRAMES = 4
PIPELINE_STALL_S = 2.0
EOS_TIMEOUT_S = 5.0
# How often a write waiting for room looks again: a frame's worth of encoding is milliseconds.
ROOM_POLL_S = 0.001


def load_gst() -> tuple[Any, Any, Any]:
    """`gst_modules()`, or JetkitError saying what to install."""
    try:
        return gst_modules()
    except (ImportError, ValueError):
        raise JetkitError(
            "GStreamer's Python bindings (PyGObject, `import gi`) are not importable here; "
            "scripts/setup.sh installs them"
        ) from None


def build_pipeline(text: str) -> tuple[Any, Any]:
    """`(pipeline, appsrc)` from parse_launch text; JetkitError when it does not parse or has no
    appsrc named APPSRC_NAME."""
    gst, _, glib = load_gst()
    try:
        pipeline = gst.parse_launch(text)
    except glib.Error as error:
        raise JetkitError(f"GStreamer cannot build {redact(text)!r}: {error.message}") from None
    appsrc = pipeline.get_by_name(APPSRC_NAME) if isinstance(pipeline, gst.Bin) else None
    if appsrc is None or appsrc.get_factory().get_name() != "appsrc":
        raise JetkitError(f"the pipeline {redact(text)!r} has no appsrc named {APPSRC_NAME!r}")
    return pipeline, appsrc


class _Feed:
    """One stream's running pipeline."""

    def __init__(self, text: str, size_wh: tuple[int, int], start_s: float) -> None:
        gst, _, _ = load_gst()
        self.error: SinkError | None = None
        self._pipeline, self._appsrc = build_pipeline(text)
        self._size_wh = size_wh
        self._start_s = start_s
        frame_bytes = size_wh[0] * size_wh[1] * 3
        self._max_level_bytes = APPSRC_QUEUE_FRAMES * frame_bytes
        self._appsrc.set_property("caps", gst.Caps.from_string(appsrc_caps(size_wh, DEFAULT_FPS)))
        self._appsrc.set_property("format", gst.Format.TIME)
        self._appsrc.set_property("is-live", True)
        if self._pipeline.set_state(gst.State.PLAYING) == gst.StateChangeReturn.FAILURE:
            self.error = SinkError(
                self._bus_error() or f"the pipeline {redact(text)!r} does not start"
            )

    def push(self, image_bgr: np.ndarray, capture_s: float) -> bool:
        """False when the pipeline took no frame for PIPELINE_STALL_S."""
        gst, _, _ = load_gst()
        if self.error is None and (text := self._bus_error()) is not None:
            self.error = SinkError(text)
        if self.error is not None:
            raise self.error
        if not self._wait_for_room():
            return False
        data = np.ascontiguousarray(fit_to_size(image_bgr, self._size_wh)).tobytes()
        buffer = gst.Buffer.new_wrapped(data)
        buffer.pts = int(max(0.0, capture_s - self._start_s) * gst.SECOND)
        self._appsrc.emit("push-buffer", buffer)
        return True

    def _wait_for_room(self) -> bool:
        deadline_s = time.monotonic() + PIPELINE_STALL_S
        while self._appsrc.get_property("current-level-bytes") >= self._max_level_bytes:
            if time.monotonic() > deadline_s:
                return False
            time.sleep(ROOM_POLL_S)
        return True

    def finish(self) -> None:
        """End of stream, then stop; waits up to EOS_TIMEOUT_S for the pipeline to drain."""
        gst, _, _ = load_gst()
        if self.error is None:
            self._appsrc.emit("end-of-stream")
            bus = self._pipeline.get_bus()
            bus.timed_pop_filtered(
                int(EOS_TIMEOUT_S * gst.SECOND), gst.MessageType.EOS | gst.MessageType.ERROR
            )
        self._pipeline.set_state(gst.State.NULL)

    def _bus_error(self) -> str | None:
        gst, _, _ = load_gst()
        message = self._pipeline.get_bus().pop_filtered(gst.MessageType.ERROR)
        if message is None:
            return None
        error, debug = message.parse_error()
        return bus_error_text(message.src.get_name(), error.message, debug)


class GstSink:
    def __init__(self, uri: str, config: GstOutConfig, log: Callable[[str], None]) -> None:
        self.uri = uri
        self.config = config
        self._log = log
        self._feeds: dict[str, _Feed] = {}
        # Frames a stuck pipeline did not take; frames of streams no pipeline shows.
        self.dropped = 0
        self.ignored = 0

    def open(self) -> None:
        """Checks that the pipeline builds (elements exist, syntax holds) without starting it."""
        gst, _, _ = load_gst()
        pipeline, _ = build_pipeline(self.config.pipeline_for("check"))
        pipeline.set_state(gst.State.NULL)

    def write(self, result: Result) -> None:
        frame = result.frame
        feed = self._feeds.get(frame.stream_id)
        if feed is None:
            if self._feeds and not self.config.per_stream:
                self._ignore(frame.stream_id)
                return
            size_wh = (frame.image_bgr.shape[1], frame.image_bgr.shape[0])
            text = self.config.pipeline_for(frame.stream_id)
            feed = self._feeds[frame.stream_id] = _Feed(text, size_wh, frame.capture_monotonic_s)
        if not feed.push(result.annotated_bgr(), frame.capture_monotonic_s):
            self.dropped += 1

    def close(self) -> None:
        feeds, self._feeds = list(self._feeds.values()), {}
        for feed in feeds:
            feed.finish()

    def _ignore(self, stream_id: str) -> None:
        if not self.ignored:
            shown = next(iter(self._feeds))
            self._log(
                f"sink {self.uri}: shows stream {shown} only, not {stream_id}; put {{stream}} in "
                "the pipeline (e.g. in a file name) for one pipeline per stream"
            )
        self.ignored += 1
