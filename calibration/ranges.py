"""Calibration ranges from one pass of histograms: every method (entropy, percentiles, min-max)
is a pure function of the same per-tensor histogram, so choosing among them costs quantizations
and evaluations, never another pass over the images.

A histogram is ONNX Runtime's signed one (`HistogramCollector.collect_value`): counts over
`[-threshold, threshold]` in an even number of bins, with the exact min and max seen. The
methods work on it folded to magnitudes, as TensorRT's calibrators do (2048 bins).
"""

from __future__ import annotations

import contextlib
import io
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import JetkitError

HISTOGRAM_BINS = 2048
# TensorRT's entropy calibration quantizes the candidate range into 128 bins (the positive half
# of INT8) and keeps the threshold with the least KL divergence (GTC 2017, S7310).
QUANTIZED_BINS = 128
DEFAULT_PERCENTILE = 99.99
# ONNX Runtime widens a histogram at its first chunk's bin width when later images reach further
# (`HistogramCollector.merge_histogram`): on a barely trained `l`, tensors narrow on the first 16
# images ended with up to 584 000 bins, and the entropy search, O(bins²), stalled for hours.
# Wider histograms are searched on coarser bins; those within this are searched as collected.
ENTROPY_MAX_BINS = 8192
# What `--method auto` tries with --val, from the same histograms.
AUTO_CANDIDATES = ("entropy", "percentile:99.9", "percentile:99.99", "percentile:99.999", "minmax")
_METHOD = re.compile(r"^(entropy|minmax|percentile)(?::(\d+(?:\.\d+)?))?$")


@dataclass(frozen=True)
class Method:
    """A calibration method: `entropy`, `minmax` or `percentile` at `percentile` (0-100)."""

    kind: str
    percentile: float = DEFAULT_PERCENTILE

    @classmethod
    def parse(cls, text: str) -> Method:
        match = _METHOD.match(text)
        if match is None:
            raise JetkitError(
                f"--method {text!r} is not auto, entropy, minmax, percentile or percentile:P "
                "(P in 50-100, e.g. percentile:99.99)"
            )
        kind, value = match.groups()
        if value is not None and kind != "percentile":
            raise JetkitError(f"--method {text!r}: only percentile takes a value")
        percentile = float(value) if value is not None else DEFAULT_PERCENTILE
        if not 50.0 <= percentile <= 100.0:
            raise JetkitError(f"--method {text!r}: the percentile must be in 50-100")
        return cls(kind, percentile)

    def __str__(self) -> str:
        return f"percentile:{self.percentile:g}" if self.kind == "percentile" else self.kind


@dataclass(frozen=True)
class TensorHistogram:
    """Counts over `[-threshold, threshold]` in an even number of equal bins, and the exact
    extremes seen."""

    counts: np.ndarray
    threshold: float
    lowest: float
    highest: float

    def magnitudes(self) -> tuple[np.ndarray, float]:
        """The histogram of |x|: half as many bins over `[0, threshold]`, and their width."""
        half = self.counts.size // 2
        folded = self.counts[half:].astype(np.float64) + self.counts[:half][::-1]
        return folded, self.threshold / half if half else 0.0


def coarsened(counts: np.ndarray, bin_width: float, max_bins: int) -> tuple[np.ndarray, float]:
    """`counts` summed over runs of `k` adjacent bins, `k` the smallest that leaves at most
    `max_bins` (the last run padded with empty bins), and the bin width times `k`."""
    factor = -(-counts.size // max_bins)
    if factor <= 1:
        return counts, bin_width
    padded = np.zeros(factor * -(-counts.size // factor))
    padded[: counts.size] = counts
    return padded.reshape(-1, factor).sum(axis=1), bin_width * factor


def entropy_amax(
    counts_abs: np.ndarray, bin_width: float, quantized_bins: int = QUANTIZED_BINS
) -> float:
    """The |x| threshold whose INT8 quantization loses least information (TensorRT's
    EntropyCalibration2): for each candidate cut `i` (in bins), the reference distribution is
    the histogram up to `i` with everything beyond added to its last bin; the candidate is that
    range merged into `quantized_bins` levels and spread back over its non-empty bins; keep the
    cut of least KL divergence. Histograms narrower than `quantized_bins` bins keep their whole
    range."""
    counts_abs, bin_width = coarsened(counts_abs, bin_width, ENTROPY_MAX_BINS)
    total = counts_abs.sum()
    if total == 0 or counts_abs.size <= quantized_bins:
        return float(counts_abs.size * bin_width)
    nonzero = np.flatnonzero(counts_abs)
    last = int(nonzero[-1]) + 1
    if last <= quantized_bins:
        return float(last * bin_width)
    tail_after = np.concatenate([np.cumsum(counts_abs[::-1])[::-1][1:], [0.0]])
    best_cut, best_divergence = last, np.inf
    for cut in range(quantized_bins, last + 1):
        sliced = counts_abs[:cut]
        reference = sliced.copy()
        reference[-1] += tail_after[cut - 1]
        level = np.arange(cut) * quantized_bins // cut
        level_sums = np.bincount(level, weights=sliced, minlength=quantized_bins)
        level_nonzero = np.bincount(level, weights=sliced > 0, minlength=quantized_bins)
        spread = np.divide(
            level_sums, level_nonzero, out=np.zeros(quantized_bins), where=level_nonzero > 0
        )
        candidate = np.where(sliced > 0, spread[level], 0.0)
        divergence = _kl_divergence(reference, candidate)
        if divergence < best_divergence:
            best_cut, best_divergence = cut, divergence
    return float(best_cut * bin_width)


def _kl_divergence(reference: np.ndarray, candidate: np.ndarray) -> float:
    """KL(reference ‖ candidate) of two unnormalised histograms; bins the candidate left empty
    where the reference is not get a small mass (as TensorRT smooths), not an infinity."""
    p = reference / reference.sum()
    q_total = candidate.sum()
    if q_total == 0:
        return float("inf")
    q = np.where((candidate == 0) & (p > 0), 1e-4 * q_total, candidate)
    q = q / q.sum()
    mask = p > 0
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))


def percentile_amax(counts_abs: np.ndarray, bin_width: float, percentile: float) -> float:
    """The |x| below which `percentile` % of the values lie (the upper edge of its bin)."""
    total = counts_abs.sum()
    if total == 0:
        return 0.0
    cdf = np.cumsum(counts_abs) / total
    index = int(np.searchsorted(cdf, percentile / 100.0))
    return float(min(index + 1, counts_abs.size) * bin_width)


def tensor_range(histogram: TensorHistogram, method: Method) -> tuple[float, float]:
    """`(lowest, highest)` for one tensor: min-max as seen, otherwise the method's |x| threshold
    applied to both sides and clipped to what was seen (a ReLU output keeps lowest 0)."""
    if method.kind == "minmax":
        return histogram.lowest, histogram.highest
    counts_abs, width = histogram.magnitudes()
    if method.kind == "entropy":
        amax = entropy_amax(counts_abs, width)
    else:
        amax = percentile_amax(counts_abs, width, method.percentile)
    return max(histogram.lowest, -amax), min(histogram.highest, amax)


def ranges_for(
    histograms: Mapping[str, TensorHistogram], method: Method
) -> dict[str, tuple[float, float]]:
    return {name: tensor_range(h, method) for name, h in histograms.items()}


def save_ranges(ranges: Mapping[str, tuple[float, float]], path: Path) -> None:
    """Write ranges as ONNX Runtime's calibration cache (what
    `quantize_static(calibration_cache_path=…)` reads)."""
    from onnxruntime.quantization.calibrate import (
        CalibrationMethod,
        TensorData,
        TensorsData,
        save_tensors_data,
    )

    data = {
        name: TensorData(
            lowest=np.array(low, dtype=np.float32), highest=np.array(high, dtype=np.float32)
        )
        for name, (low, high) in ranges.items()
    }
    save_tensors_data(TensorsData(CalibrationMethod.MinMax, data), path)


class _ListReader:
    """ONNX Runtime's CalibrationDataReader protocol over a list of input feeds."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self._feeds = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


# Images whose activations ONNX Runtime's calibrator holds at once: it keeps every intermediate
# tensor of every image until the histograms are built (256 images of the demo student took
# 5 GB, too much for an 8 GB Jetson). Collected in chunks, the histograms merge.
CALIBRATION_CHUNK_IMAGES = 16


def collect_histograms(
    source: Path,
    batches: Iterable[np.ndarray],
    input_name: str,
    chunk_images: int = CALIBRATION_CHUNK_IMAGES,
) -> dict[str, TensorHistogram]:
    """Run `source` over `batches` and histogram every tensor ONNX Runtime's quantizer may
    quantize, `chunk_images` batches at a time so that memory stays bounded."""
    from onnxruntime.quantization.calibrate import HistogramCalibrater
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    with tempfile.TemporaryDirectory(prefix="jetkit-calib-") as scratch:
        calibrator = HistogramCalibrater(
            source,
            sorted(set(QLinearOpsRegistry) | set(QDQRegistry)),
            augmented_model_path=str(Path(scratch) / "augmented.onnx"),
            method="entropy",  # ONNX Runtime's signed histogram of values
            num_bins=HISTOGRAM_BINS,
        )
        calibrator.augment_graph()
        calibrator.create_inference_session()
        chunk: list[dict[str, np.ndarray]] = []
        # ONNX Runtime prints progress to stdout, which belongs to the command's own output.
        with contextlib.redirect_stdout(io.StringIO()):
            for batch in batches:
                chunk.append({input_name: batch})
                if len(chunk) == chunk_images:
                    calibrator.collect_data(_ListReader(chunk))
                    chunk = []
            if chunk:
                calibrator.collect_data(_ListReader(chunk))
        collected = calibrator.collector.histogram_dict if calibrator.collector else {}
    return {
        name: TensorHistogram(np.asarray(counts), float(threshold), float(lowest), float(highest))
        for name, (counts, _edges, lowest, highest, threshold) in collected.items()
    }
