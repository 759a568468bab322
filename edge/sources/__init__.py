"""Where frames come from: cameras, network streams, files, stills and synthetic frames.

```
specs = parse_source_uris(["csi://0", "rtsp://cam/stream?id=door", "test://?fps=15"])
source = open_source(specs[0])          # opened; live ones reconnect by themselves
image = source.read()                   # BGR (H, W, 3) uint8, or None at the end
source.close()
```

Importing this package loads neither GStreamer (gi) nor OpenCV: they load when a source opens.
"""

from edge.sources.base import Frame, FrameError, Source, SourceError
from edge.sources.factory import make_source, open_source, open_streams
from edge.sources.fallback import FileSource
from edge.sources.gst import GstSource, gstreamer_available
from edge.sources.images import ImagesSource
from edge.sources.launch import pipeline_for
from edge.sources.opencv import OpenCVSource
from edge.sources.reconnect import Backoff, ReconnectingSource
from edge.sources.synthetic import SyntheticSource
from edge.sources.uri import SourceSpec, parse_source_uri, parse_source_uris

__all__ = [
    "Backoff",
    "FileSource",
    "Frame",
    "FrameError",
    "GstSource",
    "ImagesSource",
    "OpenCVSource",
    "ReconnectingSource",
    "Source",
    "SourceError",
    "SourceSpec",
    "SyntheticSource",
    "gstreamer_available",
    "make_source",
    "open_source",
    "open_streams",
    "parse_source_uri",
    "parse_source_uris",
    "pipeline_for",
]
