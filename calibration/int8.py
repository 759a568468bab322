"""INT8 artifacts as Q/DQ ONNX, calibrated with ONNX Runtime on images preprocessed exactly as
the runtime does (`calibration.data`).

The format depends on what will run it:
- `tensorrt` (default): symmetric int8 activations and per-channel int8 weights, the explicit
  quantization TensorRT ≥ 8.6 consumes (and ONNX Runtime can run, slowly, for accuracy checks);
- `cpu`: uint8 activations and per-channel int8 weights, what ONNX Runtime runs fast on x86/ARM.
The parts of a detector that INT8 ruins stay in float, found from the graph's structure
(`calibration.islands`: stem, DFL decode, box/class concat, decode tail), and so can the layers
that quantize worst (`auto_exclude`, `calibration.sensitivity`). Every tensor is histogrammed
once (`calibration.ranges`); each method, each re-quantization is computed from those. The same
ranges also give a TensorRT calibration cache for implicit INT8 on older JetPacks.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from calibration.artifacts import derived_manifest, load_source_model, write_artifact
from calibration.cpu_graph import decompose_float_softmax
from calibration.data import CalibrationBatches, calibration_digest
from calibration.islands import (
    REASONS,
    FloatIsland,
    describe_islands,
    float_islands,
    is_learned_layer,
)
from calibration.ranges import (
    AUTO_CANDIDATES,
    Method,
    TensorHistogram,
    collect_histograms,
    ranges_for,
    save_ranges,
)
from calibration.sensitivity import AutoExclusion, auto_exclude_nodes, check_auto_exclude
from calibration.trt_cache import CalibrationCache
from calibration.trt_rules.graph import GraphView, artifact_kind_of
from calibration.trt_rules.qdq import WEIGHTED_OPS, detach_partial_concat_qdq, tensorrt_qdq_nodes
from edge.errors import JetkitError
from edge.manifest import Manifest

RUNTIMES = ("tensorrt", "cpu")
# `--method auto` without --val: the method that held accuracy best on the kit's benchmark models
# (Ultralytics YOLOv8n and YOLO11n, a jetkit student; BENCHMARKS.md, "INT8 on the models people
# bring").
DEFAULT_METHOD = "percentile:99.999"
# TensorRT's calibrator whose cache header a jetkit-written cache carries, per method kind.
TRT_ALGORITHM = {
    "entropy": "EntropyCalibration2",
    "percentile": "EntropyCalibration2",
    "minmax": "MinMaxCalibration",
}


@dataclass(frozen=True)
class Int8Result:
    manifest: Manifest
    ranges: dict[str, tuple[float, float]]  # per calibrated tensor: (lowest, highest)
    excluded: tuple[str, ...]  # every node kept in float: islands, --exclude, auto-excluded
    method: Method  # the calibration method used
    islands: tuple[FloatIsland, ...] = ()
    method_scores: tuple[tuple[str, float], ...] = ()  # (method, val mAP50-95) when chosen
    auto_exclusion: AutoExclusion | None = None

    @property
    def amax(self) -> dict[str, float]:
        """Per calibrated tensor: max(|lowest|, |highest|), what TensorRT's cache holds."""
        return {name: max(abs(low), abs(high)) for name, (low, high) in self.ranges.items()}


def check_quantizable(view: GraphView, path: Path) -> None:
    """Refuse graphs that INT8 calibration cannot help: one already quantized or in FP16, and
    one without a learned layer to quantize."""
    kind = artifact_kind_of(view)
    quantized_ops = {"QLinearConv", "ConvInteger", "MatMulInteger", "QLinearMatMul"}
    if kind == "onnx-int8-qdq" or any(node.op_type in quantized_ops for node in view.nodes):
        raise JetkitError(
            f"{path} is already quantized (INT8 nodes in the graph); calibrate the FP32 ONNX "
            "it was made from"
        )
    if kind == "onnx-fp16":
        raise JetkitError(f"{path} is FP16; calibrate the FP32 ONNX it was made from")
    if not any(is_learned_layer(view, node) for node in view.nodes):
        raise JetkitError(
            f"{path} has no convolution or other layer with weights: INT8 has nothing to speed "
            "up; deploy it in FP32 or FP16"
        )


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


@dataclass(frozen=True)
class _QdqWriter:
    """Writes the Q/DQ model of `source` in the runtime's format from the ranges stored in
    `ranges_path` (`calibration.ranges.save_ranges`), so re-quantizing with other nodes in float
    costs no calibration."""

    source: Path
    ranges_path: Path
    runtime: str
    # The nodes TensorRT's layout quantizes (`tensorrt_qdq_nodes`), found once per model.
    tensorrt_nodes: tuple[str, ...] = ()

    def __call__(self, nodes_in_float: Sequence[str], out: Path) -> None:
        from onnxruntime.quantization import (
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )

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
                calibrate_method=CalibrationMethod.MinMax,  # the ranges come from the cache
                extra_options=options,
                calibration_cache_path=str(self.ranges_path),
                **placement,
            )
        _rewrite(
            out,
            detach_partial_concat_qdq if self.runtime == "tensorrt" else decompose_float_softmax,
        )


def _rewrite(path: Path, rewrite: Callable[[Any], int]) -> None:
    """Applies `rewrite` (a change in place returning how many places changed) to the model
    at `path`, saving it only if something changed."""
    import onnx

    model = onnx.load(str(path))
    if rewrite(model):
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
    method: str = "auto",
    exclude: Sequence[str] = (),
    auto_exclude: int = 0,
    auto_exclude_images: int = 8,
    score: Callable[[Path], float] | None = None,
    island_reasons: Collection[str] = tuple(REASONS),
    ranges: Mapping[str, tuple[float, float]] | None = None,
    provenance: Mapping[str, Any] | None = None,
    derived_from: Path | None = None,
    log: Callable[[str], None] = lambda _message: None,
) -> Int8Result:
    """Histogram every tensor once, then quantize with the float islands of `island_reasons`
    (`calibration.islands`) and `exclude` kept in float. `method` `auto` tries every candidate
    method from the same histograms and keeps the best by `score` (a candidate Q/DQ model's path
    → its validation mAP50-95) when given, else uses `DEFAULT_METHOD`. With `auto_exclude`
    N > 0 up to N more nodes, those whose quantization moves the outputs most (measured on
    `auto_exclude_images` of the images), stay in float; each node ranked costs a
    re-quantization from the same ranges and a few inferences.

    `ranges` (tensor → (lowest, highest)) replaces calibration: no images are run and `method`
    names where they came from (quantization-aware fine-tuning writes its model with the ranges
    its fake quantization used). `provenance` is added to the artifact's calibration record, and
    `derived_from` recorded as its source instead of `source_path` (the FP32 model a fine-tuned
    `source_path` came from)."""
    import onnx

    if runtime not in RUNTIMES:
        raise JetkitError(f"--runtime {runtime!r} is not one of {', '.join(RUNTIMES)}")
    candidates = _candidate_methods(method, score is not None and ranges is None)
    check_auto_exclude(auto_exclude, manifest.output.format)
    source_path, out_path = Path(source_path), Path(out_path)
    model = load_source_model(source_path)
    view = GraphView(model)
    check_quantizable(view, source_path)
    names = {node.name for node in model.graph.node}
    unknown = [name for name in exclude if name not in names]
    if unknown:
        raise JetkitError(
            f"--exclude {', '.join(unknown)}: no such node in {source_path} "
            "(node names are listed by Netron or onnx.load(...).graph.node)"
        )
    found_islands = tuple(i for i in float_islands(view) if i.reason in island_reasons)
    for line in describe_islands(list(found_islands)):
        log(line)
    excluded = tuple(dict.fromkeys([*(i.node for i in found_islands), *exclude]))
    batches = CalibrationBatches(list(image_paths), manifest, batch=1)
    if ranges is None:
        log(f"calibrating on {len(batches.paths)} images ({runtime})")
    with tempfile.TemporaryDirectory(prefix="jetkit-int8-") as scratch:
        named = Path(scratch) / "source.onnx"
        onnx.save(model, str(named))
        ranges_path = Path(scratch) / "ranges.json"
        quantized_path = Path(scratch) / "int8.onnx"
        tensorrt_nodes = tuple(tensorrt_qdq_nodes(view, ())) if runtime == "tensorrt" else ()
        quantize = _QdqWriter(named, ranges_path, runtime, tensorrt_nodes)
        chosen, scores = candidates[0], ()
        if ranges is None:
            histograms = collect_histograms(named, batches, manifest.input.name)
            chosen, scores = _choose_method(
                candidates, histograms, quantize, excluded, quantized_path, score, log
            )
            log(f"calibration method: {chosen} ({_chosen_by(method, scores)})")
            ranges = ranges_for(histograms, chosen)
        save_ranges(ranges, ranges_path)
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
        quantized = onnx.load(str(quantized_path))
    target = derived_manifest(
        manifest,
        derived_from or source_path,
        out_path,
        "onnx-int8-qdq",
        "int8",
        {
            "calibration": {
                "runtime": runtime,
                "method": str(chosen),
                "method_chosen_by": _chosen_by(method, scores),
                **({"method_scores": dict(scores)} if scores else {}),
                "images": len(batches.paths),
                "digest": calibration_digest(batches.paths),
                "float_islands": [island.to_dict() for island in found_islands],
                "excluded_nodes": list(excluded),
                **_auto_exclusion_provenance(auto_exclusion),
                **(provenance or {}),
            }
        },
    )
    return Int8Result(
        write_artifact(quantized, target, out_path),
        dict(ranges),
        excluded,
        chosen,
        found_islands,
        scores,
        auto_exclusion,
    )


def _candidate_methods(method: str, can_score: bool) -> tuple[Method, ...]:
    """What to try: every candidate for `auto` with a scorer, the default for `auto` without,
    else the one named."""
    if method != "auto":
        return (Method.parse(method),)
    if can_score:
        return tuple(Method.parse(m) for m in AUTO_CANDIDATES)
    return (Method.parse(DEFAULT_METHOD),)


def _chosen_by(method: str, scores: tuple[tuple[str, float], ...]) -> str:
    if scores:
        return f"best validation mAP50-95 of {len(scores)} candidates"
    if method == "auto":
        return "the default, best on jetkit's benchmark models; --val chooses per model"
    return "--method"


def _choose_method(
    candidates: tuple[Method, ...],
    histograms: dict[str, TensorHistogram],
    quantize: _QdqWriter,
    excluded: Sequence[str],
    scratch_path: Path,
    score: Callable[[Path], float] | None,
    log: Callable[[str], None],
) -> tuple[Method, tuple[tuple[str, float], ...]]:
    """The candidate with the best score (the first of equals, in `AUTO_CANDIDATES` order), and
    every candidate's score; a single candidate is taken unscored."""
    if len(candidates) == 1 or score is None:
        return candidates[0], ()
    scores = []
    for method in candidates:
        save_ranges(ranges_for(histograms, method), quantize.ranges_path)
        quantize(excluded, scratch_path)
        scores.append((str(method), score(scratch_path)))
        log(f"  {str(method):<18} val mAP50-95 {scores[-1][1]:.4f}")
    best = max(range(len(candidates)), key=lambda i: (scores[i][1], -i))
    return candidates[best], tuple(scores)


def _auto_exclusion_provenance(auto_exclusion: AutoExclusion | None) -> dict[str, Any]:
    if auto_exclusion is None:
        return {}
    return {
        "auto_excluded": list(auto_exclusion.nodes),
        "sensitivity": auto_exclusion.provenance(),
    }


def trt_cache_from(result: Int8Result, tensorrt_version: str) -> CalibrationCache:
    """The TensorRT calibration cache from the same ranges as the Q/DQ model."""
    return CalibrationCache.from_amax(
        result.amax, tensorrt_version, TRT_ALGORITHM[result.method.kind]
    )
