"""`video://PATH.mp4`: the annotated frames as a video file through OpenCV, one file per stream.

Each stream is written to a hidden temporary file beside PATH and renamed into place at close,
so that PATH is never a half-written video. The file names are decided then: PATH for a single
stream, `PATH-<stream id>` before the suffix for each of several.

Encoding runs on a thread of its own, beside the inference of the next frames. An encoder that
falls VIDEO_QUEUE_FRAMES behind slows `write()` to its pace rather than leaving holes in the
video (a file is recorded whole; a camera's extra frames are dropped at capture, as for a slow
model); one stuck for ENCODER_STALL_S loses frames, counted in `dropped`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edge.atomic import public_mode
from edge.errors import JetkitError
from edge.sinks.base import Result, SinkError
from edge.sinks.frames import fit_to_size
from edge.sinks.video_uri import VideoConfig, playback_fps
from edge.sinks.worker import BackgroundWorker

# Frames waiting for the encoder (about 6 MB each at 1080p): slack for jitter, not a backlog.
VIDEO_QUEUE_FRAMES = 8
ENCODER_STALL_S = 2.0
# Frames held back to measure the playback rate when the URI gives no fps.
FPS_PROBE_FRAMES = 8
_PROBE_SIZE_WH = (64, 64)


def _temp_path(final: Path, tag: str) -> Path:
    """A new empty file beside `final` that ends in its suffix (OpenCV picks the container by
    the suffix)."""
    fd, name = tempfile.mkstemp(
        prefix=f".{final.stem}.{tag}.", suffix=final.suffix, dir=final.parent
    )
    os.fchmod(fd, public_mode())  # a recording is for whoever reads the folder, as `open` makes it
    os.close(fd)
    return Path(name)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Recording:
    """One stream's video: frames held back until the playback rate is known, then a writer
    sized by the first frame (later frames of another size are scaled to it)."""

    def __init__(self, config: VideoConfig, stream_id: str) -> None:
        self.stream_id = stream_id
        self.temp_path = _temp_path(config.path, stream_id)
        self._config = config
        self._held: list[tuple[np.ndarray, float]] = []
        self._writer: Any = None
        self._size_wh = (0, 0)

    def add(self, image_bgr: np.ndarray, capture_s: float) -> None:
        if self._writer is not None:
            self._write(image_bgr)
            return
        self._held.append((image_bgr, capture_s))
        if self._config.fps is not None or len(self._held) >= FPS_PROBE_FRAMES:
            self._start()

    def finish(self) -> None:
        if self._writer is None:
            self._start()
        self._writer.release()

    def discard(self) -> None:
        if self._writer is not None:
            self._writer.release()
        self.temp_path.unlink(missing_ok=True)

    def _start(self) -> None:
        import cv2

        # Taken first: frames that fail to start a writer are lost rather than piling up.
        held, self._held = self._held, []
        if not held:
            raise SinkError(f"no frame of stream {self.stream_id} could be encoded")
        fps = self._config.fps or playback_fps([capture_s for _, capture_s in held])
        height, width = held[0][0].shape[:2]
        self._size_wh = (width, height)
        fourcc = cv2.VideoWriter.fourcc(*self._config.fourcc)
        self._writer = cv2.VideoWriter(str(self.temp_path), fourcc, fps, self._size_wh)
        if not self._writer.isOpened():
            self._writer = None
            raise SinkError(f"OpenCV cannot open {self.temp_path} for writing")
        for image_bgr, _ in held:
            self._write(image_bgr)

    def _write(self, image_bgr: np.ndarray) -> None:
        self._writer.write(fit_to_size(image_bgr, self._size_wh))


class VideoSink:
    def __init__(self, uri: str, config: VideoConfig) -> None:
        self.uri = uri
        self.config = config
        self._recordings: dict[str, _Recording] = {}
        self._worker: BackgroundWorker[Result] | None = None

    @property
    def dropped(self) -> int:
        """Frames lost to an encoder stuck for ENCODER_STALL_S."""
        return 0 if self._worker is None else self._worker.dropped

    def open(self) -> None:
        """Checks that the directory takes files and that OpenCV writes this container here."""
        import cv2

        directory = self.config.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
            probe = _temp_path(self.config.path, "probe")
        except OSError as error:
            raise JetkitError(
                f"cannot write in {directory} ({error.strerror}); choose a writable path"
            ) from None
        try:
            fourcc = cv2.VideoWriter.fourcc(*self.config.fourcc)
            writer = cv2.VideoWriter(str(probe), fourcc, 30.0, _PROBE_SIZE_WH)
            writable = writer.isOpened()
            writer.release()
        finally:
            probe.unlink(missing_ok=True)
        if not writable:
            raise JetkitError(
                f"this OpenCV cannot write {self.config.path.suffix} ({self.config.fourcc}) "
                "videos; try another suffix (.avi writes Motion JPEG)"
            )
        self._worker = BackgroundWorker(
            self._record, VIDEO_QUEUE_FRAMES, ENCODER_STALL_S, "video-sink"
        )

    def write(self, result: Result) -> None:
        assert self._worker is not None, "open() the sink first"
        self._worker.put(result)

    def close(self) -> None:
        """Finishes every stream's file and renames it into place."""
        if self._worker is None:
            return
        try:
            self._worker.close()
        finally:
            self._finish_all()

    def _record(self, result: Result) -> None:
        stream_id = result.frame.stream_id
        recording = self._recordings.get(stream_id)
        if recording is None:
            recording = self._recordings[stream_id] = _Recording(self.config, stream_id)
        image_bgr = result.annotated_bgr() if self.config.overlay else result.frame.image_bgr
        recording.add(image_bgr, result.frame.capture_monotonic_s)

    def _finish_all(self) -> None:
        recordings, self._recordings = list(self._recordings.values()), {}
        several = len(recordings) > 1
        failures: list[Exception] = []
        for recording in recordings:
            try:
                recording.finish()
                _fsync(recording.temp_path)
                os.replace(recording.temp_path, self.config.path_for(recording.stream_id, several))
            except Exception as error:
                recording.discard()
                failures.append(error)
        if failures:
            raise failures[0]
