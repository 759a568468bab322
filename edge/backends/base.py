"""The one small interface every inference backend implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

# A dimension is an int when fixed, and a symbolic name or None when dynamic.
Dim = int | str | None


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output as the backend reports it."""

    name: str
    shape: tuple[Dim, ...]
    dtype: str  # numpy dtype name: "float32", "float16", "int32", "uint8", …

    @property
    def is_dynamic(self) -> bool:
        return any(not isinstance(d, int) or d < 0 for d in self.shape)


class Backend(Protocol):
    """Runs a model on host arrays.

    `infer` takes one array per input in `inputs` order and returns one host array per output in
    `outputs` order. `last_stages_ms` holds the stage times of the last call that the backend can
    separate (`h2d`, `compute`, `d2h`; at least `compute`). `on_host_cpu`: whether the model runs
    on the host's CPU cores, the ones preprocessing and postprocessing use. `describe` reports the environment
    for benchmarks (backend, version, device/provider, precision). `metadata` holds the model
    file's key/value metadata (ONNX `metadata_props`, an Ultralytics engine header).
    """

    name: str
    metadata: dict[str, str]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    last_stages_ms: dict[str, float]
    on_host_cpu: bool

    def infer(self, arrays: list[np.ndarray]) -> list[np.ndarray]: ...

    def describe(self) -> dict[str, object]: ...

    def close(self) -> None: ...
