"""`video://PATH.mp4?fps=30&overlay=0` (or `.avi`, `.mkv`) parsed into a validated `VideoConfig`, and the
pure decisions of the video sink: codec, per-stream file names, playback rate. No I/O."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from edge.errors import JetkitError
from edge.sinks.params import flag_param, number_param, split_sink_uri

# The codec per container that OpenCV's FFmpeg backend writes everywhere: MPEG-4 part 2 in
# MP4/MKV, Motion JPEG (larger, but every frame a key frame) in AVI.
FOURCC_BY_SUFFIX = {".mp4": "mp4v", ".mkv": "mp4v", ".avi": "MJPG"}
DEFAULT_FPS = 30.0
# Playback rates outside this come from bursts or stalls in the first frames, not the source.
FPS_RANGE = (1.0, 120.0)


@dataclass(frozen=True)
class VideoConfig:
    """Where to write; `fps` None: from the first frames' capture times; `overlay` False writes
    the frames as captured (footage to train on), without the boxes drawn."""

    path: Path
    fps: float | None = None
    overlay: bool = True

    def __post_init__(self) -> None:
        if self.path.suffix.lower() not in FOURCC_BY_SUFFIX:
            raise JetkitError(
                f"{self.path.name!r} is no video file name; end it in "
                + ", ".join(FOURCC_BY_SUFFIX)
            )
        if self.fps is not None and not 0 < self.fps < math.inf:
            raise JetkitError(f"param 'fps' must be > 0, got {self.fps:g}")

    @property
    def fourcc(self) -> str:
        return FOURCC_BY_SUFFIX[self.path.suffix.lower()]

    def path_for(self, stream_id: str, several: bool) -> Path:
        """`PATH` for the only stream; `PATH` with `-<stream id>` before the suffix for each of
        several."""
        if not several:
            return self.path
        return self.path.with_name(f"{self.path.stem}-{stream_id}{self.path.suffix}")


def parse_video_uri(uri: str) -> VideoConfig:
    parts = split_sink_uri(uri, ("fps", "overlay"))
    if not parts.location:
        raise JetkitError("names no file; write video://PATH.mp4")
    return VideoConfig(
        Path(unquote(parts.location)),
        number_param(parts.params, "fps", float),
        flag_param(parts.params, "overlay", default=True),
    )


def playback_fps(capture_times_s: Sequence[float]) -> float:
    """The rate the frames came at (so that the video plays in real time), DEFAULT_FPS where
    fewer than two frames or no time passed between them."""
    if len(capture_times_s) < 2:
        return DEFAULT_FPS
    span_s = capture_times_s[-1] - capture_times_s[0]
    if span_s <= 0:
        return DEFAULT_FPS
    return min(max((len(capture_times_s) - 1) / span_s, FPS_RANGE[0]), FPS_RANGE[1])
