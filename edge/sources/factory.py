"""From a URI to a running source: the right reader for the kind and the machine."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

from edge.cli import stderr_log
from edge.errors import JetkitError
from edge.sources.base import Source, SourceError
from edge.sources.fallback import FileSource, Log
from edge.sources.gst import GstSource, gstreamer_available
from edge.sources.images import ImagesSource
from edge.sources.opencv import OpenCVSource
from edge.sources.reconnect import Backoff, ErrorCallback, ReconnectingSource
from edge.sources.synthetic import SyntheticSource
from edge.sources.uri import SourceRef, SourceSpec, parse_source_uri, parse_source_uris

# The live kinds whose failures pass (a cable, a network, a camera daemon); test:// never fails.
RECONNECTING_KINDS = ("csi", "v4l2", "rtsp", "gst")


def make_source(spec: SourceSpec, gstreamer: bool | None = None, log: Log = stderr_log) -> Source:
    """The unopened source for `spec`: GStreamer where its Python bindings import (or as
    `gstreamer` says), OpenCV for files and USB cameras otherwise. A file GStreamer cannot
    decode falls back to OpenCV, which `log` hears once."""
    if spec.kind == "test":
        return SyntheticSource(spec)
    if spec.kind == "images":
        return ImagesSource(spec)
    if gstreamer_available() if gstreamer is None else gstreamer:
        return FileSource(spec, log) if spec.kind == "file" else GstSource(spec)
    if spec.kind in ("file", "v4l2"):
        return OpenCVSource(spec)
    raise JetkitError(
        f"source {spec.safe_uri!r}: {spec.kind} sources need GStreamer's Python bindings (PyGObject, "
        "`import gi`), which are not importable here"
    )


def open_source(
    uri_or_spec: str | SourceSpec,
    index: int = 0,
    backoff: Backoff | None = None,
    on_error: ErrorCallback | None = None,
    log: Log = stderr_log,
) -> Source:
    """The source for a URI (`index` gives its default stream id) or spec, opened. Cameras,
    network streams and live `gst://` pipelines come wrapped in a ReconnectingSource (with
    `backoff`, default `Backoff()`, and `on_error`); `log` hears what a source says once (a
    file read with OpenCV where GStreamer lacks its decoder). Raises what `open()` raises: JetkitError
    for a source that cannot exist, SourceError for one that fails now."""
    spec = (
        uri_or_spec if isinstance(uri_or_spec, SourceSpec) else parse_source_uri(uri_or_spec, index)
    )
    source = make_source(spec, log=log)
    if spec.live and spec.kind in RECONNECTING_KINDS:
        source = ReconnectingSource(source, backoff, on_error)
    source.open()
    return source


def open_streams(
    uris: Sequence[SourceRef],
    on_error: Callable[[str, Exception, float], None] | None = None,
    log: Log = stderr_log,
) -> list[tuple[str, Source]]:
    """`(stream id, opened source)` per URI (or `(uri, stream id)`), for a pipeline. All or
    nothing: a source that cannot open closes those already open and raises JetkitError naming
    it (a start-up error).
    `on_error(stream_id, error, delay_s)` hears each failure a reconnecting source backs off
    from; `log` what a source says once."""
    opened: list[tuple[str, Source]] = []
    try:
        for spec in parse_source_uris(uris):
            callback = None
            if on_error is not None:
                callback = functools.partial(on_error, spec.stream_id)
            try:
                opened.append((spec.stream_id, open_source(spec, on_error=callback, log=log)))
            except SourceError as exc:
                # Most source errors already name the source; do not say it twice.
                text = str(exc).rstrip(".")
                what = text if spec.safe_uri in text else f"source {spec.safe_uri!r}: {text}"
                raise JetkitError(f"{what}; check that it is running and reachable") from None
    except BaseException:
        for _, source in opened:
            source.close()
        raise
    return opened
