"""`rtsp://HOST:PORT/PATH` out (we serve; players connect) parsed into `RtspOutConfig`, and the
pipeline each stream is served through. Pure: the caller says which elements exist.

Each stream is served at `rtsp://HOST:PORT/PATH/<stream id>`. HOST is the address to listen on
(0.0.0.0, or empty: every interface).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edge.errors import JetkitError
from edge.sinks.params import split_sink_uri
from edge.sources.launch import quote

DEFAULT_PORT = 8554
# Hardware H.264 on a Jetson, x264 elsewhere (gstreamer1.0-plugins-ugly), Motion JPEG as the
# encoder every GStreamer has (more bandwidth, but players show it). Each takes what videoconvert
# gives: 4:2:0, the one chroma layout every player decodes (and the only one RTP/JPEG carries).
_ENCODERS = (
    (("nvvidconv", "nvv4l2h264enc"), "video/x-raw,format=BGRx ! nvvidconv ! "
     "video/x-raw(memory:NVMM),format=NV12 ! nvv4l2h264enc insert-sps-pps=true ! h264parse ! "
     "rtph264pay name=pay0 pt=96"),
    (("x264enc",), "video/x-raw,format=I420 ! x264enc tune=zerolatency speed-preset=ultrafast ! "
     "rtph264pay name=pay0 pt=96"),
    (("jpegenc",), "video/x-raw,format=I420 ! jpegenc ! rtpjpegpay name=pay0 pt=26"),
)  # fmt: skip


@dataclass(frozen=True)
class RtspOutConfig:
    host: str
    port: int
    path: str

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise JetkitError(f"port must be 1..65535, got {self.port}")
        if not self.path or "/" in self.path.strip("/"):
            raise JetkitError(
                f"give one path name to serve under, like rtsp://0.0.0.0:{DEFAULT_PORT}/live, "
                f"got {self.path!r}"
            )

    def mount_for(self, stream_id: str) -> str:
        return f"/{self.path.strip('/')}/{stream_id}"


def parse_rtsp_out_uri(uri: str) -> RtspOutConfig:
    parts = split_sink_uri(uri, ())
    address, _, path = parts.location.partition("/")
    host, _, port = address.rpartition(":") if ":" in address else (address, "", "")
    if port and not (port.isascii() and port.isdigit() and len(port) <= 5):  # not "²"
        raise JetkitError(f"port must be a number, got {port!r}")
    return RtspOutConfig(host or "0.0.0.0", int(port) if port else DEFAULT_PORT, path)


def rtsp_launch(caps: str, has_element: Callable[[str], bool]) -> str:
    """The media pipeline for one stream (`gst-rtsp-server` launch syntax, in parentheses), with
    the best encoder there is."""
    for needs, encoder in _ENCODERS:
        if all(has_element(name) for name in needs):
            return (
                f"( appsrc name=src is-live=true format=time do-timestamp=true caps={quote(caps)} ! "
                f"videoconvert ! {encoder} )"
            )
    raise JetkitError("no video encoder here (jpegenc is in gstreamer1.0-plugins-good)")
