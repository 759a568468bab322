"""ONNX Runtime backend: TensorRT EP, then CUDA EP, then CPU, unless the caller names providers."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge.backends.base import TensorSpec
from edge.errors import JetkitError

PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
# Intra-op threads: past the cores of any Jetson or host; ONNX Runtime starts every one at load
# (100000 of them hang the process).
MAX_THREADS = 256

_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}


def choose_providers(available: list[str], requested: list[str] | None = None) -> list[str]:
    """The providers to use, in order: `requested` (each must be available) or the preferred
    order TensorRT EP → CUDA EP → CPU filtered to what this onnxruntime build has."""
    if requested:
        missing = [p for p in requested if p not in available]
        if missing:
            raise JetkitError(
                f"execution provider {missing[0]} is not in this onnxruntime build "
                f"(available: {', '.join(available)})"
            )
        return list(requested)
    return [p for p in PREFERRED_PROVIDERS if p in available] or ["CPUExecutionProvider"]


def tensor_spec(node: Any) -> TensorSpec:
    """An onnxruntime NodeArg → TensorSpec (unknown dims become their symbolic name or None)."""
    shape = tuple(d if isinstance(d, int) else (d or None) for d in node.shape)
    return TensorSpec(node.name, shape, _ORT_TYPES.get(node.type, node.type))


def load_session(
    path: str | os.PathLike[str],
    providers: list[str] | None = None,
    threads: int | None = None,
    spinning: bool | None = None,
) -> Any:
    """An InferenceSession, with a JetkitError naming the file when it is missing or not ONNX.
    `spinning` False stops idle intra-op threads from busy-waiting for the next run: faster for
    a pipeline whose other stages need the cores, slower for a bare inference loop."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise JetkitError(f"model file {path} does not exist")
    if threads is not None and not 1 <= threads <= MAX_THREADS:
        raise JetkitError(f"--threads must be in [1, {MAX_THREADS}], got {threads}")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    if spinning is not None:
        options.add_session_config_entry("session.intra_op.allow_spinning", str(int(spinning)))
    options.log_severity_level = 3
    chosen = choose_providers(ort.get_available_providers(), providers)
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=chosen)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/… types
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise JetkitError(
            f"{path} is not a valid ONNX model ({first_line[:200]}); re-export it or check the file"
        ) from None


class OnnxRuntimeBackend:
    """Runs an ONNX model with ONNX Runtime on host arrays."""

    name = "onnxruntime"

    def __init__(
        self,
        path: str | os.PathLike[str],
        providers: list[str] | None = None,
        threads: int | None = None,
        spinning: bool | None = None,
    ) -> None:
        self.path = Path(path)
        self.spinning = spinning
        self.session = load_session(path, providers, threads, spinning)
        self.inputs = tuple(tensor_spec(n) for n in self.session.get_inputs())
        self.outputs = tuple(tensor_spec(n) for n in self.session.get_outputs())
        self._input_names = [s.name for s in self.inputs]
        self._output_names = [s.name for s in self.outputs]
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        self.last_stages_ms: dict[str, float] = {}
        self.on_host_cpu = self.session.get_providers()[0] == "CPUExecutionProvider"

    def infer(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        feeds = dict(zip(self._input_names, arrays, strict=True))
        start = time.perf_counter()
        outputs = self.session.run(self._output_names, feeds)
        self.last_stages_ms = {"compute": (time.perf_counter() - start) * 1e3}
        return list(outputs)

    def describe(self) -> dict[str, object]:
        import onnxruntime as ort

        options = self.session.get_session_options()
        return {
            "backend": "onnxruntime",
            "version": ort.__version__,
            "execution_provider": self.session.get_providers()[0],
            "providers": self.session.get_providers(),
            "intra_op_threads": options.intra_op_num_threads or "default",
            "intra_op_spinning": "default" if self.spinning is None else self.spinning,
        }

    def close(self) -> None:
        self.session = None
