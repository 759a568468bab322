"""From a sink URI to an opened sink: one opener per scheme."""

from __future__ import annotations

import os
from collections.abc import Callable

from edge.cli import stderr_log
from edge.errors import JetkitError
from edge.redact import redact
from edge.sinks.base import Sink
from edge.sinks.params import split_sink_uri

Log = Callable[[str], None]


def _jsonl(uri: str, log: Log) -> Sink:
    from edge.sinks.jsonl import JsonlSink

    target = uri.split("://", 1)[1]
    if not target:
        raise JetkitError("names no file; write jsonl://PATH or jsonl://-")
    sink = JsonlSink(redact(uri), target)
    sink.open()
    return sink


def _mqtt(uri: str, log: Log) -> Sink:
    from edge.sinks.mqtt import MqttSink
    from edge.sinks.mqtt_uri import parse_mqtt_uri

    sink = MqttSink(parse_mqtt_uri(uri, os.environ), log)
    sink.open()
    return sink


def _video(uri: str, log: Log) -> Sink:
    from edge.sinks.video import VideoSink
    from edge.sinks.video_uri import parse_video_uri

    sink = VideoSink(redact(uri), parse_video_uri(uri))
    sink.open()
    return sink


def _gst(uri: str, log: Log) -> Sink:
    from edge.sinks.gst_out import GstSink
    from edge.sinks.gst_uri import parse_gst_out_uri

    sink = GstSink(redact(uri), parse_gst_out_uri(uri), log)
    sink.open()
    return sink


def _rtsp(uri: str, log: Log) -> Sink:
    from edge.sinks.rtsp import RtspSink
    from edge.sinks.rtsp_uri import parse_rtsp_out_uri

    sink = RtspSink(redact(uri), parse_rtsp_out_uri(uri), log)
    sink.open()
    return sink


def _display(uri: str, log: Log) -> Sink:
    from edge.sinks.display import DisplaySink

    parts = split_sink_uri(uri, ())
    if parts.location:
        raise JetkitError(f"display:// takes nothing after it, got {parts.location!r}")
    sink = DisplaySink(redact(uri), os.environ)
    sink.open()
    return sink


_OPENERS: dict[str, Callable[[str, Log], Sink]] = {
    "jsonl": _jsonl,
    "mqtt": _mqtt,
    "mqtts": _mqtt,
    "video": _video,
    "gst": _gst,
    "rtsp": _rtsp,
    "display": _display,
}
SINK_SCHEMES = tuple(_OPENERS)


def open_sink(uri: str, log: Log = stderr_log) -> Sink:
    """A sink for `uri`, opened: `jsonl://PATH` (`-` or `jsonl://-`: stdout),
    `mqtt://HOST:PORT/TOPIC?…`, `video://PATH.mp4`, `gst://appsrc name=src ! …`,
    `rtsp://…` or `display://`. `log` gets the sink's run-time news (an MQTT broker lost and
    back). Raises JetkitError naming the URI (password masked) and what is wrong."""
    if uri == "-":
        uri = "jsonl://-"
    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    if scheme not in _OPENERS:
        raise JetkitError(
            f"sink {redact(uri)!r}: unknown scheme {scheme or '(none)'!r}; use one of "
            + ", ".join(f"{s}://" for s in SINK_SCHEMES)
        )
    try:
        return _OPENERS[scheme](uri, log)
    except JetkitError as error:
        raise JetkitError(f"sink {redact(uri)!r}: {error}") from None
