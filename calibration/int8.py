"""INT8 artifacts as Q/DQ ONNX, calibrated with ONNX Runtime on images preprocessed exactly as
the runtime does (`calibration.data`).

The format depends on what will run it:
- `tensorrt` (default): symmetric int8 activations and per-channel int8 weights, the explicit
  quantization TensorRT ≥ 8.6 consumes (and ONNX Runtime can run, slowly, for accuracy checks);
- `cpu`: uint8 activations and per-channel int8 weights, what ONNX Runtime runs fast on x86/ARM.
The decode at the end of the graph (everything after the last convolution) stays in float. The
same ranges also give a TensorRT calibration cache for implicit INT8 on older JetPacks.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from calibration.artifacts import derived_manifest, load_source_model, write_artifact
from calibration.data import CalibrationBatches, calibration_digest
from calibration.trt_cache import CalibrationCache
from edge.errors import JetkitError
from edge.manifest import Manifest

RUNTIMES = ("tensorrt", "cpu")
METHODS = ("entropy", "percentile", "minmax")
# TensorRT's calibrator whose cache header a jetkit-written cache carries, per method.
TRT_ALGORITHM = {
    "entropy": "EntropyCalibration2",
    "percentile": "EntropyCalibration2",
    "minmax": "MinMaxCalibration",
}


@dataclass(frozen=True)
class Int8Result:
    manifest: Manifest
    amax: dict[str, float]  # per calibrated tensor: max(|lowest|, |highest|)
    excluded: tuple[str, ...]


def output_tail_nodes(model: Any) -> list[str]:
    """Names of the nodes between the last convolutions and the graph outputs (the decode: box
    arithmetic, sigmoid, concatenation), found by walking back from the outputs and stopping at
    each Conv."""
    producer = {out: node for node in model.graph.node for out in node.output}
    tail: list[str] = []
    seen: set[str] = set()
    stack = [output.name for output in model.graph.output]
    while stack:
        node = producer.get(stack.pop())
        if node is None or node.name in seen or node.op_type == "Conv":
            continue
        seen.add(node.name)
        tail.append(node.name)
        stack.extend(node.input)
    return tail


class _Reader:
    """ONNX Runtime's CalibrationDataReader protocol over `CalibrationBatches`."""

    def __init__(self, batches: CalibrationBatches, input_name: str) -> None:
        self._batches = batches
        self._input_name = input_name
        self._iterator: Iterator[Any] = iter(batches)

    def get_next(self) -> dict[str, Any] | None:
        batch = next(self._iterator, None)
        return None if batch is None else {self._input_name: batch}

    def rewind(self) -> None:
        self._iterator = iter(self._batches)


def quantize_int8(
    source_path: str | Path,
    manifest: Manifest,
    image_paths: Sequence[Path],
    out_path: str | Path,
    runtime: str = "tensorrt",
    method: str = "entropy",
    exclude: Sequence[str] = (),
    log: Callable[[str], None] = lambda _message: None,
) -> Int8Result:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import load_tensors_data

    if runtime not in RUNTIMES:
        raise JetkitError(f"--runtime {runtime!r} is not one of {', '.join(RUNTIMES)}")
    if method not in METHODS:
        raise JetkitError(f"--method {method!r} is not one of {', '.join(METHODS)}")
    source_path, out_path = Path(source_path), Path(out_path)
    model = load_source_model(source_path)
    names = {node.name for node in model.graph.node}
    unknown = [name for name in exclude if name not in names]
    if unknown:
        raise JetkitError(
            f"--exclude {', '.join(unknown)}: no such node in {source_path} "
            "(node names are listed by Netron or onnx.load(...).graph.node)"
        )
    excluded = tuple(dict.fromkeys([*output_tail_nodes(model), *exclude]))
    symmetric = runtime == "tensorrt"
    batches = CalibrationBatches(list(image_paths), manifest, batch=1)
    log(f"calibrating on {len(batches.paths)} images ({method}, {runtime})")
    with tempfile.TemporaryDirectory(prefix="jetkit-int8-") as scratch:
        named = Path(scratch) / "source.onnx"
        onnx.save(model, str(named))
        ranges_path = Path(scratch) / "ranges.json"
        quantized_path = Path(scratch) / "int8.onnx"
        # The calibrators print progress to stdout, which belongs to the command's own output.
        with contextlib.redirect_stdout(io.StringIO()):
            quantize_static(
                str(named),
                str(quantized_path),
                _Reader(batches, manifest.input.name),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=list(excluded),
                calibrate_method={
                    "entropy": CalibrationMethod.Entropy,
                    "percentile": CalibrationMethod.Percentile,
                    "minmax": CalibrationMethod.MinMax,
                }[method],
                extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True},
                calibration_cache_path=str(ranges_path),
            )
        ranges = load_tensors_data(ranges_path)
        quantized = onnx.load(str(quantized_path))
    # Ranges come as arrays (one value, or one per channel); the cache needs one amax.
    amax = {
        name: float(np.abs(np.asarray(data.range_value, dtype=np.float64)).max())
        for name, data in ranges.items()
    }
    target = derived_manifest(
        manifest,
        source_path,
        out_path,
        "onnx-int8-qdq",
        "int8",
        {
            "calibration": {
                "runtime": runtime,
                "method": method,
                "images": len(batches.paths),
                "digest": calibration_digest(batches.paths),
                "excluded_nodes": list(excluded),
            }
        },
    )
    return Int8Result(write_artifact(quantized, target, out_path), amax, excluded)


def trt_cache_from(result: Int8Result, tensorrt_version: str, method: str) -> CalibrationCache:
    """The TensorRT calibration cache from the same ranges as the Q/DQ model."""
    return CalibrationCache.from_amax(result.amax, tensorrt_version, TRT_ALGORITHM[method])
