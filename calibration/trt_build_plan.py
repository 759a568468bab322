"""The pure parts of a TensorRT build that run around TensorRT's calls: feeding the calibrator
and keeping its errors, where layers land on a DLA build, what TensorRT's engine inspector
says, and what to do with a timing cache TensorRT refuses. `calibration.trt_builder` calls
these; nothing here imports TensorRT.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from edge.errors import JetkitError

Log = Callable[[str], None]
Cache = TypeVar("Cache")


class CalibrationFeed:
    """Batches for TensorRT's calibrator, one fixed batch size, with the first error kept.

    TensorRT's Python calibrator wrapper catches whatever `get_batch` raises, prints it and
    treats it as the end of the data (NVIDIA/TensorRT python/src/infer/pyInt8.cpp, `catch
    (std::exception const& e) { std::cerr << "[ERROR] Exception caught in get_batch(): " … }`,
    return false): a corrupt image would end calibration early and the build would go on with
    scales from part of the data. `next_batch` keeps the error instead; the builder raises it
    (`raise_if_failed`) once TensorRT returns.
    """

    def __init__(self, batches: Iterable[np.ndarray], batch_size: int) -> None:
        self._batches: Iterator[np.ndarray] = iter(batches)
        self.batch_size = batch_size
        self.used = 0
        self.skipped = 0
        self.error: BaseException | None = None

    def next_batch(self) -> np.ndarray | None:
        """The next full batch, or None at the end of the data or after an error."""
        if self.error is not None:
            return None
        try:
            for batch in self._batches:
                if batch.shape[0] != self.batch_size:
                    self.skipped += 1  # a short last batch: the calibration shape is fixed
                    continue
                self.used += 1
                return batch
        except Exception as exc:  # kept, and raised after TensorRT returns
            self.error = exc
        return None

    def raise_if_failed(self) -> None:
        if self.error is None:
            return
        if isinstance(self.error, JetkitError):
            raise JetkitError(f"calibration stopped: {self.error}; nothing was built") from None
        raise JetkitError(
            f"calibration stopped after {self.used} batches: "
            f"{type(self.error).__name__}: {self.error}; nothing was built"
        ) from self.error


@dataclass(frozen=True)
class DlaPlacement:
    """Which network layers TensorRT puts on the DLA and which fall back to the GPU
    (`IBuilderConfig.can_run_on_DLA`, asked per layer before building)."""

    dla_layers: tuple[str, ...]
    gpu_layers: tuple[str, ...]

    @classmethod
    def from_layers(cls, layers: Sequence[tuple[str, bool]]) -> DlaPlacement:
        return cls(
            tuple(name for name, on_dla in layers if on_dla),
            tuple(name for name, on_dla in layers if not on_dla),
        )

    def describe(self) -> str:
        total = len(self.dla_layers) + len(self.gpu_layers)
        text = f"{len(self.dla_layers)} of {total} layers on the DLA"
        if self.gpu_layers:
            shown = ", ".join(self.gpu_layers[:5])
            more = f" and {len(self.gpu_layers) - 5} more" if len(self.gpu_layers) > 5 else ""
            text += f"; on the GPU: {shown}{more}"
        return text

    def require_some_on_dla(self, model: str) -> None:
        """A DLA engine with nothing on the DLA is a GPU engine under a DLA label: refuse it."""
        if not self.dla_layers:
            raise JetkitError(
                f"no layer of {model} can run on the DLA ({self.describe()}); build it for "
                "the GPU (without --dla), or see `jetkit check MODEL --dla` for why"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "dla_layers": len(self.dla_layers),
            "gpu_layers": len(self.gpu_layers),
            "gpu_fallback": list(self.gpu_layers),
        }


def summarize_engine_layers(information_json: str) -> dict[str, Any]:
    """TensorRT's engine inspector (`get_engine_information(LayerInformationFormat.JSON)`,
    built with `ProfilingVerbosity.DETAILED`) as counts: layers in the engine, by type, and
    the DLA subgraphs. A DLA subgraph is one `{ForeignNode[…]}` layer fed and drained through
    DLA memory (`… to nvm` / `… from nvm` copies, NVIDIA/TensorRT#3143); GPU Myelin regions are
    also `{ForeignNode[…]}` and have LayerType `Myelin`, so they are not counted."""
    try:
        info = json.loads(information_json)
    except json.JSONDecodeError as exc:
        raise JetkitError(f"TensorRT's engine inspector gave no JSON ({exc})") from None
    layers = info.get("Layers", []) if isinstance(info, dict) else []
    names = [layer if isinstance(layer, str) else str(layer.get("Name", "")) for layer in layers]
    types = ["" if isinstance(layer, str) else str(layer.get("LayerType", "")) for layer in layers]
    nvm_copies = sum(name.endswith((" to nvm", " from nvm")) for name in names)
    dla_subgraphs = sum(
        name.startswith("{ForeignNode[") and kind != "Myelin"
        for name, kind in zip(names, types, strict=True)
    )
    return {
        "layers": len(layers),
        "by_type": dict(Counter(kind for kind in types if kind)),
        "dla_subgraphs": dla_subgraphs if nvm_copies else 0,
        "dla_copies": nvm_copies,
    }


def attach_timing_cache(
    previous: bytes,
    create: Callable[[bytes], Cache | None],
    attach: Callable[[Cache], bool],
    path: str,
    log: Log,
) -> Cache:
    """The timing cache to build with: the one in `previous` when TensorRT takes it, else a
    fresh one, said once. A cache from another TensorRT or GPU makes TensorRT log "Version tag
    does not match" and `create_timing_cache` return an unusable cache, `None`, or raise
    (depending on version; Polygraphy's `CreateConfig` guards all three), and
    `set_timing_cache(cache, ignore_mismatch=False)` return False for another GPU."""
    cache: Cache | None = None
    if previous:
        try:
            cache = create(previous)
        except Exception as exc:  # the bindings raise RuntimeError/TypeError on some versions
            log(f"warning: TensorRT cannot read timing cache {path} ({exc})")
            cache = None
        if cache is not None and attach(cache):
            log(f"reusing timing cache {path}")
            return cache
        log(
            f"warning: timing cache {path} is from another GPU or TensorRT version; "
            "starting a new one (it is rewritten after this build)"
        )
    fresh = create(b"")
    if fresh is None or not attach(fresh):
        raise JetkitError("TensorRT could not create a timing cache; build without --timing-cache")
    return fresh
