"""`gst://appsrc name=src ! …` out: the pipeline text checked and specialised per stream, and the
caps its appsrc announces. Pure: no GStreamer needed.

A pipeline carries one stream. With `{stream}` in its text (e.g. in a file name), each stream
gets its own copy of the pipeline with its stream id there; without it, the first stream is the
one it shows.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.errors import JetkitError
from edge.sources.launch import caps_framerate

APPSRC_NAME = "src"
STREAM_PLACEHOLDER = "{stream}"
_EXAMPLE = "gst://appsrc name=src ! videoconvert ! jpegenc ! multifilesink location=out/%05d.jpg"


@dataclass(frozen=True)
class GstOutConfig:
    pipeline: str

    def __post_init__(self) -> None:
        first = self.pipeline.split("!", 1)[0].split()
        if not first or first[0] != "appsrc" or f"name={APPSRC_NAME}" not in first[1:]:
            raise JetkitError(
                f"a gst:// sink pipeline starts with `appsrc name={APPSRC_NAME}`, like {_EXAMPLE}"
            )

    @property
    def per_stream(self) -> bool:
        return STREAM_PLACEHOLDER in self.pipeline

    def pipeline_for(self, stream_id: str) -> str:
        return self.pipeline.replace(STREAM_PLACEHOLDER, stream_id)


def parse_gst_out_uri(uri: str) -> GstOutConfig:
    """`gst://PIPELINE`, the text as written: a `?` belongs to the pipeline, not to params."""
    return GstOutConfig(uri.partition("://")[2].strip())


def appsrc_caps(size_wh: tuple[int, int], fps: float) -> str:
    """What the appsrc announces: the frames as they are (BGR, packed rows). The buffers carry
    the capture times; `fps` is the nominal rate encoders size their rate control by."""
    return (
        f"video/x-raw,format=BGR,width={size_wh[0]},height={size_wh[1]},"
        f"framerate={caps_framerate(fps)}"
    )
