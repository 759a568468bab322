"""jetkit's edge runtime: manifest, preprocess, decode, NMS, backends and the Detector.

`import edge` stays cheap: the public names below load their modules on first use, and
onnxruntime, TensorRT, pycuda and OpenCV are imported only inside the functions that need them.
Also the streaming runtime (sources, pipeline, sinks, metrics, the daemon) and `jetkit inspect`,
`detect`, `bench`, `run`, `serve`.

May import: numpy, OpenCV, ONNX Runtime, TensorRT, GStreamer (each lazily where optional).
Must not import: torch, `trainer`, `calibration`, `deploy`, `demo`.
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    "Detector": "edge.detector",
    "Detections": "edge.detector",
    "Manifest": "edge.manifest",
    "JetkitError": "edge.errors",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'edge' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
