"""Frames from footage for training: every N-th frame of files, cameras, `rtsp://` streams or
`images://` folders, with near-duplicates dropped so that a static camera does not fill a data
set with copies of one picture.

A frame is a near-duplicate of the last frame kept when no cell of a small grayscale thumbnail
changed by more than a few levels: averaging over each cell takes out sensor noise and
compression artifacts, while one object moving changes some cell by far more. Comparing with
the last frame *kept* (not the previous one) lets slow changes, such as daylight, add a frame
once they have added up.

All frames are written to a temporary folder beside `out` and moved in only when every source
has been read, so a source that fails leaves `out` as it was (or absent).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge.errors import JetkitError

if TYPE_CHECKING:
    from edge.sources.base import Source
    from edge.sources.uri import SourceSpec

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".ts", ".m4v", ".mjpeg")
THUMBNAIL_WH = (64, 36)
# A cell averages ~30x30 px of a 1080p frame: noise of σ 8 levels leaves it within ±1.
DUPLICATE_LEVELS = 12.0
JPEG_QUALITY = 95

Log = Callable[[str], None]


@dataclass(frozen=True)
class FramesConfig:
    """What to keep: every `every`-th frame, minus near-duplicates when `dedupe`; at most
    `max_frames` per source and `duration_s` of a live source (None: to its end)."""

    every: int = 1
    dedupe: bool = False
    max_frames: int | None = None
    duration_s: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.every, int) or self.every < 1:
            raise JetkitError(f"--every must be an integer >= 1, got {self.every!r}")
        if self.max_frames is not None and self.max_frames < 1:
            raise JetkitError(f"--max-frames must be >= 1, got {self.max_frames}")
        if self.duration_s is not None and not self.duration_s > 0:
            raise JetkitError(f"--duration must be > 0 seconds, got {self.duration_s}")


@dataclass
class FramesReport:
    """Frames read, written and dropped as duplicates, per source URI."""

    written: list[Path] = field(default_factory=list)
    read: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)


def thumbnail(image_bgr: np.ndarray) -> np.ndarray:
    """`(H,W,3)` uint8 → `(36,64)` float32 grayscale cell means."""
    import cv2

    gray = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
    return cv2.resize(gray, THUMBNAIL_WH, interpolation=cv2.INTER_AREA).astype(np.float32)


def is_near_duplicate(
    thumb_a: np.ndarray, thumb_b: np.ndarray, levels: float = DUPLICATE_LEVELS
) -> bool:
    """Whether no cell of two thumbnails differs by more than `levels`."""
    return bool(np.abs(thumb_a - thumb_b).max() <= levels)


def frame_name(uri: str, index: int) -> str:
    """A file name for frame `index` of `uri`: the source's last path part, made safe."""
    stem = Path(uri.rstrip("/").split("?")[0]).stem or "frames"
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "frames"
    return f"{stem}_{index:07d}.jpg"


def extract_frames(
    sources: list[str], out_dir: str | Path, config: FramesConfig, log: Log | None = None
) -> FramesReport:
    """Read every source, keep the frames `config` says, and move them into `out_dir`."""
    from edge.sources.uri import parse_source_uri

    if not sources:
        raise JetkitError("give at least one source: a video file, rtsp://…, images://DIR …")
    specs = [parse_source_uri(uri, index) for index, uri in enumerate(sources)]
    for spec in specs:
        if spec.live and config.duration_s is None and config.max_frames is None:
            raise JetkitError(
                f"source {spec.safe_uri!r} is live and never ends; give --duration S or "
                "--max-frames N"
            )
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.frames-", dir=out.parent))
    report = FramesReport()
    try:
        for spec, uri in zip(specs, sources, strict=True):
            source = _open(spec)
            try:
                _extract_one(source, uri, spec.safe_uri, staging, config, report)
            finally:
                source.close()
            if log:
                log(
                    f"frames: {spec.safe_uri}: {report.read[spec.safe_uri]} read, "
                    f"{report.duplicates[spec.safe_uri]} near-duplicates dropped"
                )
        out.mkdir(exist_ok=True)
        for staged in sorted(staging.iterdir()):
            final = out / staged.name
            os.replace(staged, final)
            report.written.append(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


def _open(spec: SourceSpec) -> Source:
    from edge.sources.base import SourceError
    from edge.sources.factory import open_source

    try:
        return open_source(spec)
    except SourceError as error:
        raise JetkitError(
            f"source {spec.safe_uri!r} cannot be opened ({error}); check the path, camera or stream"
        ) from None


def _extract_one(
    source: Source,
    uri: str,
    safe_uri: str,
    staging: Path,
    config: FramesConfig,
    report: FramesReport,
) -> None:
    import cv2

    from edge.sources.base import FrameError, SourceError

    started = time.monotonic()
    kept_thumb: np.ndarray | None = None
    read = duplicates = kept = 0
    while True:
        if config.duration_s is not None and time.monotonic() - started >= config.duration_s:
            break
        if config.max_frames is not None and kept >= config.max_frames:
            break
        try:
            image_bgr = source.read()
        except FrameError:
            continue
        except SourceError as error:
            raise JetkitError(
                f"source {safe_uri!r} failed after {read} frames ({error}); is the file a video "
                "this machine decodes (try `ffprobe`), or the stream up?"
            ) from None
        if image_bgr is None:
            break
        read += 1
        if (read - 1) % config.every:
            continue
        if config.dedupe:
            thumb = thumbnail(image_bgr)
            if kept_thumb is not None and is_near_duplicate(kept_thumb, thumb):
                duplicates += 1
                continue
            kept_thumb = thumb
        path = staging / frame_name(uri, read - 1)
        ok, encoded = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise JetkitError(f"frame {read - 1} of {safe_uri!r} cannot be encoded as JPEG")
        path.write_bytes(encoded.tobytes())
        kept += 1
    if read == 0:
        raise JetkitError(
            f"source {safe_uri!r} gave no frame: is it a video this machine decodes (try "
            "`ffprobe`), or an empty folder?"
        )
    report.read[safe_uri] = read
    report.duplicates[safe_uri] = duplicates
