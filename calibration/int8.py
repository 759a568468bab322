"""INT8 artifacts as Q/DQ ONNX, calibrated with ONNX Runtime on images preprocessed exactly as
the runtime does (`calibration.data`).

The format depends on what will run it:
- `tensorrt` (default): symmetric int8 activations and per-channel int8 weights, the explicit
  quantization TensorRT ≥ 8.6 consumes (and ONNX Runtime can run, slowly, for accuracy checks);
- `cpu`: uint8 activations and per-channel int8 weights, what ONNX Runtime runs fast on x86/ARM.
The decode at the end of the graph (everything after the last convolution) stays in float, and
so can the layers that quantize worst (`auto_exclude`, `calibration.sensitivity`): calibrated
once, re-quantized from the stored ranges. The same ranges also give a TensorRT calibration cache
for implicit INT8 on older JetPacks.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from calibration.artifacts import derived_manifest, load_source_model, write_artifact
from calibration.data import CalibrationBatches, calibration_digest
from calibration.sensitivity import AutoExclusion, auto_exclude_nodes, check_auto_exclude
from calibration.trt_cache import CalibrationCache
from calibration.trt_rules.graph import GraphView
from calibration.trt_rules.qdq import WEIGHTED_OPS, tensorrt_qdq_nodes
from edge.errors import JetkitError
from edge.manifest import Manifest

RUNTIMES = ("tensorrt", "cpu")
METHODS = ("entropy", "percentile", "minmax")
_ORT_METHOD_NAMES = {"entropy": "Entropy", "percentile": "Percentile", "minmax": "MinMax"}
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
    excluded: tuple[str, ...]  # every node kept in float: decode tail, --exclude, auto-excluded
    auto_exclusion: AutoExclusion | None = None


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


@contextlib.contextmanager
def _without_onnxruntime_warnings() -> Iterator[None]:
    """Hides what ONNX Runtime's quantizer logs to the root logger on every call: advice to
    pre-process the model (jetkit's exports are shape-inferred and simplified already), repeated
    dozens of times by the re-quantizations of auto-exclusion."""

    def outside_onnxruntime(record: logging.LogRecord) -> bool:
        return "onnxruntime" not in Path(record.pathname).parts

    root = logging.getLogger()
    root.addFilter(outside_onnxruntime)
    try:
        yield
    finally:
        root.removeFilter(outside_onnxruntime)


# Images whose activations ONNX Runtime's histogram calibrators hold at once. They keep every
# intermediate tensor of every image until the histograms are built: 256 images of the demo
# student took 5 GB, too much for an 8 GB Jetson. Collected in chunks, the histograms merge.
CALIBRATION_CHUNK_IMAGES = 16


def _ort_method(method: str) -> Any:
    from onnxruntime.quantization import CalibrationMethod

    return getattr(CalibrationMethod, _ORT_METHOD_NAMES[method])


class _ListReader:
    """ONNX Runtime's CalibrationDataReader protocol over a list of input feeds."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self._feeds = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def calibrate_ranges(
    source: Path,
    ranges_path: Path,
    method: str,
    batches: Iterable[np.ndarray],
    input_name: str,
    chunk_images: int = CALIBRATION_CHUNK_IMAGES,
) -> None:
    """Tensor ranges of `source` over `batches`, stored in `ranges_path` as ONNX Runtime's
    calibration cache (what `quantize_static(calibration_cache_path=…)` reads). The same
    calibrator and defaults `quantize_static` would use, fed `chunk_images` batches at a time so
    that memory stays bounded."""
    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    with tempfile.TemporaryDirectory(prefix="jetkit-calib-") as scratch:
        calibrator = create_calibrator(
            source,
            sorted(set(QLinearOpsRegistry) | set(QDQRegistry)),
            augmented_model_path=str(Path(scratch) / "augmented.onnx"),
            calibrate_method=_ort_method(method),
        )
        chunk: list[dict[str, np.ndarray]] = []
        for batch in batches:
            chunk.append({input_name: batch})
            if len(chunk) == chunk_images:
                calibrator.collect_data(_ListReader(chunk))
                chunk = []
        if chunk:
            calibrator.collect_data(_ListReader(chunk))
        save_tensors_data(calibrator.compute_data(), ranges_path)


@dataclass(frozen=True)
class _QdqWriter:
    """Writes the Q/DQ model of `source` in the runtime's format from the ranges stored in
    `ranges_path` (`calibrate_ranges`), so re-quantizing with other nodes in float costs no
    calibration."""

    source: Path
    ranges_path: Path
    runtime: str
    method: str
    # The nodes TensorRT's layout quantizes (`tensorrt_qdq_nodes`), found once per model.
    tensorrt_nodes: tuple[str, ...] = ()

    def __call__(self, nodes_in_float: Sequence[str], out: Path) -> None:
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

        options: dict[str, Any] = {"WeightSymmetric": True}
        placement: dict[str, Any] = {"nodes_to_exclude": list(nodes_in_float)}
        if self.runtime == "tensorrt":
            options.update(_TENSORRT_QDQ_OPTIONS)
            in_float = set(nodes_in_float)
            placement = {"nodes_to_quantize": [n for n in self.tensorrt_nodes if n not in in_float]}
        # ONNX Runtime prints progress to stdout, which belongs to the command's own output.
        with contextlib.redirect_stdout(io.StringIO()), _without_onnxruntime_warnings():
            quantize_static(
                str(self.source),
                str(out),
                None,
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=(
                    QuantType.QInt8 if self.runtime == "tensorrt" else QuantType.QUInt8
                ),
                weight_type=QuantType.QInt8,
                calibrate_method=_ort_method(self.method),
                extra_options=options,
                calibration_cache_path=str(self.ranges_path),
                **placement,
            )
        if self.runtime == "tensorrt":
            _detach_partial_concat_qdq(out)


def _detach_partial_concat_qdq(path: Path) -> None:
    import onnx

    from calibration.trt_rules.qdq import detach_partial_concat_qdq

    model = onnx.load(str(path))
    if detach_partial_concat_qdq(model):
        onnx.save(model, str(path))


# TensorRT's layout (calibration.trt_rules.qdq): symmetric INT8 activations (zero point 0);
# float weights through a Q/DQ pair that TensorRT folds into per-channel INT8 weights on axis 0
# (TensorRT 8.x rejects INT8 weight initializers; ConvTranspose too is quantized on axis 0);
# biases left in float (TensorRT has no INT32 DequantizeLinear); Q/DQ only on the inputs of
# the layers quantized, never between a convolution and its activation; concatenations fed
# float where only some of their inputs would be quantized.
_TENSORRT_QDQ_OPTIONS: dict[str, Any] = {
    "ActivationSymmetric": True,
    "QuantizeBias": False,
    "AddQDQPairToWeight": True,
    "OpTypesToExcludeOutputQuantization": [*WEIGHTED_OPS, "Add"],
    # Gemm's axis follows its transB, which ONNX Runtime reads itself.
    "QDQOpTypePerChannelSupportToAxis": {
        op: axis for op, (_, axis) in WEIGHTED_OPS.items() if op != "Gemm"
    },
}


def quantize_int8(
    source_path: str | Path,
    manifest: Manifest,
    image_paths: Sequence[Path],
    out_path: str | Path,
    runtime: str = "tensorrt",
    method: str = "entropy",
    exclude: Sequence[str] = (),
    auto_exclude: int = 0,
    auto_exclude_images: int = 8,
    log: Callable[[str], None] = lambda _message: None,
) -> Int8Result:
    """Calibrate once, then quantize. With `auto_exclude` N > 0 up to N more nodes, those whose
    quantization moves the outputs most (measured on `auto_exclude_images` of the images), stay
    in float; each node ranked costs a re-quantization from the same ranges and a few
    inferences."""
    import onnx
    from onnxruntime.quantization.calibrate import load_tensors_data

    if runtime not in RUNTIMES:
        raise JetkitError(f"--runtime {runtime!r} is not one of {', '.join(RUNTIMES)}")
    if method not in METHODS:
        raise JetkitError(f"--method {method!r} is not one of {', '.join(METHODS)}")
    check_auto_exclude(auto_exclude, manifest.output.format)
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
    batches = CalibrationBatches(list(image_paths), manifest, batch=1)
    log(f"calibrating on {len(batches.paths)} images ({method}, {runtime})")
    with tempfile.TemporaryDirectory(prefix="jetkit-int8-") as scratch:
        named = Path(scratch) / "source.onnx"
        onnx.save(model, str(named))
        ranges_path = Path(scratch) / "ranges.json"
        quantized_path = Path(scratch) / "int8.onnx"
        with contextlib.redirect_stdout(io.StringIO()):
            calibrate_ranges(named, ranges_path, method, batches, manifest.input.name)
        tensorrt_nodes = (
            tuple(tensorrt_qdq_nodes(GraphView(model), ())) if runtime == "tensorrt" else ()
        )
        quantize = _QdqWriter(named, ranges_path, runtime, method, tensorrt_nodes)
        quantize(excluded, quantized_path)
        auto_exclusion = None
        if auto_exclude:
            auto_exclusion = auto_exclude_nodes(
                model,
                named,
                quantized_path,
                quantize,
                manifest,
                batches.paths,
                excluded,
                auto_exclude,
                auto_exclude_images,
                log,
            )
            excluded = (*excluded, *auto_exclusion.nodes)
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
                **_auto_exclusion_provenance(auto_exclusion),
            }
        },
    )
    return Int8Result(write_artifact(quantized, target, out_path), amax, excluded, auto_exclusion)


def _auto_exclusion_provenance(auto_exclusion: AutoExclusion | None) -> dict[str, Any]:
    if auto_exclusion is None:
        return {}
    return {
        "auto_excluded": list(auto_exclusion.nodes),
        "sensitivity": auto_exclusion.provenance(),
    }


def trt_cache_from(result: Int8Result, tensorrt_version: str, method: str) -> CalibrationCache:
    """The TensorRT calibration cache from the same ranges as the Q/DQ model."""
    return CalibrationCache.from_amax(result.amax, tensorrt_version, TRT_ALGORITHM[method])
