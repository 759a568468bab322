"""Which layers lose the most to INT8: keep one quantized node at a time in float, re-quantize
from the ranges already calibrated (no recalibration), and measure how much closer the raw
outputs come to FP32's on a few calibration images.

The error is per channel, normalised: box channels are in pixels and score channels in [0, 1], so
a plain norm would see only the boxes. The metric, the ranking and the selection are pure (the
selection is handed the measuring as a function); `OutputProbe`, `rank_sensitive_nodes` and
`auto_exclude_nodes` are the thin shell that quantizes and runs ONNX Runtime.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from calibration.data import CalibrationBatches, select_images
from edge.errors import JetkitError
from edge.manifest import Manifest

# Axis of the channels (box, objectness, class scores) in each raw, pre-NMS output format.
CHANNEL_AXIS = {"yolov8": 1, "yolov5": 2, "yolox": 2}
# The nodes worth ranking: those with weights, where nearly all of a detector's compute is.
WEIGHTED_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")

# (nodes to keep in float, Q/DQ model path): writes the model from the stored ranges.
Quantize = Callable[[Sequence[str], Path], None]


def check_auto_exclude(count: int, output_format: str) -> None:
    """Refuse, before any calibration, what auto-exclusion cannot do."""
    if count < 0:
        raise JetkitError(f"--auto-exclude must be >= 0, got {count}")
    if count and output_format not in CHANNEL_AXIS:
        raise _needs_raw_outputs(output_format)


def _needs_raw_outputs(output_format: str) -> JetkitError:
    return JetkitError(
        f"--auto-exclude needs raw (pre-NMS) outputs ({', '.join(CHANNEL_AXIS)}), but this "
        f"model's output format is {output_format!r}; keep nodes in float with --exclude"
    )


def channel_rows(outputs: np.ndarray, output_format: str) -> np.ndarray:
    """Raw outputs in the format's layout (`[B, 4+nc, N]` for yolov8, `[B, N, 5+nc]` for yolov5
    and yolox) → `(B*N, C)` float64, one column per channel."""
    if output_format not in CHANNEL_AXIS:
        raise _needs_raw_outputs(output_format)
    if outputs.ndim != 3:
        raise JetkitError(
            f"output of shape {list(outputs.shape)} is not a rank-3 {output_format!r} output; "
            "check the manifest's output.format"
        )
    channels_last = np.moveaxis(outputs, CHANNEL_AXIS[output_format], -1)
    return channels_last.reshape(-1, channels_last.shape[-1]).astype(np.float64)


def output_error(outputs_fp32: np.ndarray, outputs_quant: np.ndarray, output_format: str) -> float:
    """How far quantized raw outputs are from FP32's (same shape, the format's layout): per
    channel, the RMS difference over images and anchors divided by that channel's FP32 standard
    deviation, then the mean over channels. 0 when identical; 1 is an error as large as the
    channel's own spread. A channel constant in FP32 has no spread to compare with, so its RMS
    difference counts unscaled."""
    rows_fp32 = channel_rows(outputs_fp32, output_format)
    rows_quant = channel_rows(outputs_quant, output_format)
    rms_error_per_channel = np.sqrt(np.mean((rows_quant - rows_fp32) ** 2, axis=0))
    std_per_channel = rows_fp32.std(axis=0)
    scale_per_channel = np.where(std_per_channel > 0, std_per_channel, 1.0)
    return float(np.mean(rms_error_per_channel / scale_per_channel))


@dataclass(frozen=True)
class NodeSensitivity:
    """One quantized node: the output error with it alone (besides the fixed exclusions) in
    float, and how much lower that is than the fully quantized model's."""

    node: str
    op_type: str
    error_in_float: float
    error_reduction: float


def candidate_nodes(model: Any, excluded: Sequence[str]) -> list[tuple[str, str]]:
    """(name, op type) of the weighted nodes that quantization touches, in graph order."""
    skip = set(excluded)
    return [
        (node.name, node.op_type)
        for node in model.graph.node
        if node.op_type in WEIGHTED_OPS and node.name not in skip
    ]


def rank_nodes(
    error_quantized: float, errors_in_float: Sequence[tuple[str, str, float]]
) -> tuple[NodeSensitivity, ...]:
    """(name, op type, error with it in float) per node → most error removed first (ties by
    name, so the order is the same every run)."""
    ranking = [
        NodeSensitivity(name, op_type, error, error_quantized - error)
        for name, op_type, error in errors_in_float
    ]
    return tuple(sorted(ranking, key=lambda s: (-s.error_reduction, s.node)))


def select_nodes(
    ranking: Sequence[NodeSensitivity],
    count: int,
    error_before: float,
    error_with: Callable[[tuple[str, ...]], float],
) -> tuple[tuple[str, ...], float]:
    """Up to `count` nodes, and the error with them all in float. Walks down the nodes that help
    alone and keeps each that still lowers `error_with(kept + node)`: quantization errors partly
    cancel, so gains measured alone do not simply add up, and a node in float that does not help
    costs speed for nothing."""
    chosen: tuple[str, ...] = ()
    error = error_before
    for sensitivity in ranking:
        if len(chosen) == count or sensitivity.error_reduction <= 0:
            break
        trial = error_with((*chosen, sensitivity.node))
        if trial < error:
            chosen, error = (*chosen, sensitivity.node), trial
    return chosen, error


@dataclass(frozen=True)
class AutoExclusion:
    """What auto-exclusion found: the nodes it kept in float (at most `requested`), the whole
    ranking, and the output error on the probe images before and after."""

    requested: int
    nodes: tuple[str, ...]
    ranking: tuple[NodeSensitivity, ...]
    error_before: float
    error_after: float
    images: int

    def table(self, top: int = 5) -> str:
        lines = [
            f"sensitivity on {self.images} images: output error {self.error_before:.4f} fully "
            f"quantized; each node alone in float:",
            f"  {'reduction':>9}  {'error':>7}  {'op':<6} node",
        ]
        lines += [
            f"  {s.error_reduction:9.4f}  {s.error_in_float:7.4f}  {s.op_type:<6} {s.node}"
            for s in self.ranking[:top]
        ]
        fewer = (
            f" of {self.requested} (no other node lowered the error further)"
            if len(self.nodes) < self.requested
            else ""
        )
        lines.append(
            f"auto-excluded {len(self.nodes)} node(s){fewer}, output error "
            f"{self.error_before:.4f} → {self.error_after:.4f}" + (":" if self.nodes else "")
        )
        lines += [f"  {node}" for node in self.nodes]
        return "\n".join(lines)

    def provenance(self, top: int = 10) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "images": self.images,
            "error_before": self.error_before,
            "error_after": self.error_after,
            "ranking": [
                {"node": s.node, "op": s.op_type, "error_reduction": s.error_reduction}
                for s in self.ranking[:top]
            ],
        }


class OutputProbe:
    """A fixed set of input batches and the FP32 model's first output on them, computed once;
    `error(path)` runs another model on the same batches and compares."""

    def __init__(self, fp32_path: Path, batches_nchw: Sequence[np.ndarray], manifest: Manifest):
        self._batches_nchw = list(batches_nchw)
        self._input_name = manifest.input.name
        self._output_name = manifest.output.names[0]
        self._output_format = manifest.output.format
        self._outputs_fp32 = self._run(fp32_path)

    def _run(self, model_path: Path) -> np.ndarray:
        from edge.backends.onnxruntime import load_session

        # CPU on purpose: another execution provider would compile an engine per candidate. All
        # cores (ONNX Runtime's default) for each inference: the candidates run one at a time,
        # since ONNX Runtime's quantizer is neither thread-safe nor free of the GIL.
        session = load_session(model_path, providers=["CPUExecutionProvider"])
        return np.concatenate(
            [
                session.run([self._output_name], {self._input_name: batch})[0]
                for batch in self._batches_nchw
            ]
        )

    def error(self, model_path: Path) -> float:
        return output_error(self._outputs_fp32, self._run(model_path), self._output_format)


def rank_sensitive_nodes(
    probe: OutputProbe,
    quantize: Quantize,
    candidates: Sequence[tuple[str, str]],
    excluded: Sequence[str],
    error_quantized: float,
    scratch_path: Path,
) -> tuple[NodeSensitivity, ...]:
    """Each candidate (name, op type) in float in turn, on top of `excluded`; the Q/DQ models go
    to `scratch_path`, one after another."""
    errors_in_float = []
    for name, op_type in candidates:
        quantize([*excluded, name], scratch_path)
        errors_in_float.append((name, op_type, probe.error(scratch_path)))
    return rank_nodes(error_quantized, errors_in_float)


def auto_exclude_nodes(
    model: Any,
    source_path: Path,
    quantized_path: Path,
    quantize: Quantize,
    manifest: Manifest,
    image_paths: Sequence[Path],
    excluded: Sequence[str],
    count: int,
    probe_images: int = 8,
    log: Callable[[str], None] = lambda _message: None,
) -> AutoExclusion:
    """Rank the nodes of `model` (saved at `source_path`; fully quantized at `quantized_path`)
    on `probe_images` of the calibration images, keep up to `count` of the most sensitive in
    float too, and rewrite `quantized_path` with them excluded."""
    probe_paths = select_images(image_paths, probe_images)
    batch = manifest.input.max_batch if manifest.input.dynamic_batch else 1
    probe = OutputProbe(
        source_path, list(CalibrationBatches(probe_paths, manifest, batch)), manifest
    )
    error_before = probe.error(quantized_path)
    candidates = candidate_nodes(model, excluded)
    log(f"ranking {len(candidates)} nodes: one re-quantization and {len(probe_paths)} images each")
    scratch_path = quantized_path.with_name("candidate.onnx")
    ranking = rank_sensitive_nodes(
        probe, quantize, candidates, excluded, error_before, scratch_path
    )

    def error_with(nodes: tuple[str, ...]) -> float:
        quantize([*excluded, *nodes], scratch_path)
        return probe.error(scratch_path)

    chosen, error_after = select_nodes(ranking, count, error_before, error_with)
    if chosen:
        quantize([*excluded, *chosen], quantized_path)
    result = AutoExclusion(count, chosen, ranking, error_before, error_after, len(probe_paths))
    log(result.table())
    return result
