"""Where results go: one small interface (`write(result)`, `close()`) and one class per URI
scheme.

```
sink = open_sink("mqtt://broker:1883/jetkit?qos=1")   # opened; JetkitError at start-up
sink.write(Result(frame, detections, time.time()))   # returns at once, whatever the network does
sink.close()                                          # flushes, within a bounded time
```

Importing this package loads neither paho, OpenCV nor GStreamer: they load when a sink opens.
"""

from edge.sinks.base import Result, Sink, SinkError
from edge.sinks.factory import SINK_SCHEMES, open_sink
from edge.sinks.jsonl import JsonlSink

__all__ = ["SINK_SCHEMES", "JsonlSink", "Result", "Sink", "SinkError", "open_sink"]
