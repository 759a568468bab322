"""Inference backends behind one interface (`base.Backend`); each imports its runtime lazily."""

from __future__ import annotations

from edge.backends.base import Backend, TensorSpec
from edge.errors import JetkitError

BACKENDS = ("onnxruntime", "tensorrt")

__all__ = ["BACKENDS", "Backend", "TensorSpec", "backend_for", "open_backend"]


def backend_for(path: str, backend: str | None = None) -> str:
    """The backend named, or the one the file type implies (`.onnx` → ONNX Runtime,
    `.engine`/`.plan` → TensorRT)."""
    if backend is not None:
        return backend
    return "tensorrt" if str(path).endswith((".engine", ".plan", ".trt")) else "onnxruntime"


def open_backend(path: str, backend: str | None = None, **options: object) -> Backend:
    """Open `path` with the named backend, or the one its file type implies (`backend_for`)."""
    backend = backend_for(path, backend)
    if backend == "onnxruntime":
        from edge.backends.onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(path, **options)  # type: ignore[arg-type]
    if backend == "tensorrt":
        from edge.backends.tensorrt import TensorRTBackend

        ort_only = sorted(set(options) & {"threads", "providers", "spinning"})
        if ort_only:
            raise JetkitError(
                f"--{ort_only[0]} applies to the onnxruntime backend only, not to TensorRT engines"
            )

        return TensorRTBackend(path, **options)  # type: ignore[arg-type]
    raise JetkitError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
