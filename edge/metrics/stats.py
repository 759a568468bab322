"""Latency statistics: a fixed-size window of recent samples plus all-time count, sum, max and
histogram buckets, and pure functions that summarise them.

Percentiles come from the recent window (what a run looks like now, in bounded memory); count,
mean, max and the buckets cover all time, as Prometheus histograms must be cumulative.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def trtexec_percentile(sorted_ms: np.ndarray, percent: float) -> float:
    """trtexec's percentile: the sorted sample at index `max(n - 1 - int((1 - p/100) * n), 0)`
    (computed as `(100 - p) * n / 100` so that p=90 of 100 samples is not off by one in binary
    floating point)."""
    n = sorted_ms.shape[0]
    return float(sorted_ms[max(n - 1 - int((100 - percent) * n / 100), 0)])


def summarize_ms(samples_ms: list[float] | np.ndarray) -> dict[str, float]:
    """min/mean/median/p90/p95/p99/max of latency samples in ms."""
    data = np.sort(np.asarray(samples_ms, dtype=np.float64))
    if data.size == 0:
        raise ValueError("no samples")
    return {
        "min": float(data[0]),
        "mean": float(data.mean()),
        "median": float(np.median(data)),
        "p90": trtexec_percentile(data, 90),
        "p95": trtexec_percentile(data, 95),
        "p99": trtexec_percentile(data, 99),
        "max": float(data[-1]),
    }


# Upper bounds (ms) of the histogram buckets, +Inf implied: sub-millisecond stages (queue waits,
# NMS) up to multi-second stalls (a reconnecting camera, a first TensorRT inference).
LATENCY_BUCKETS_MS: tuple[float, ...] = (
    0.5, 1.0, 2.5, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 50.0, 75.0, 100.0,
    150.0, 200.0, 300.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 10000.0,
)  # fmt: skip

# Finer all-time buckets for plots and summaries (not /metrics): 120 log-spaced bounds from 10 µs
# to 10 s, each 12% above the last, so a 0.4 ms stage spreads over bars, not one bucket.
FINE_BUCKETS_MS: tuple[float, ...] = tuple(
    float(f"{bound:.4g}") for bound in np.geomspace(0.01, 10_000.0, 121)
)

SUMMARY_KEYS = ("count", "mean_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms")


@dataclass(frozen=True)
class LatencyState:
    """A copy of a LatencyWindow at one moment; `recent_ms` in no particular order."""

    count: int
    total_ms: float
    max_ms: float
    recent_ms: np.ndarray


@dataclass(frozen=True)
class Histogram:
    """All-time bucket counts: `counts[i]` samples fell in `(bounds_ms[i-1], bounds_ms[i]]`, the
    last entry beyond the last bound (+Inf); so `len(counts) == len(bounds_ms) + 1`."""

    bounds_ms: tuple[float, ...]
    counts: tuple[int, ...]
    sum_ms: float
    count: int


class LatencyWindow:
    """Latency samples of one kind. Not locked: its owner serialises calls."""

    __slots__ = (
        "_recent_ms",
        "_next",
        "_bounds_ms",
        "_bucket_counts",
        "_fine_counts",
        "count",
        "total_ms",
        "max_ms",
    )

    def __init__(self, window: int, bounds_ms: Sequence[float] = LATENCY_BUCKETS_MS) -> None:
        if window < 1:
            raise ValueError(f"window must hold at least 1 sample, got {window}")
        self._recent_ms = np.empty(window, dtype=np.float64)
        self._next = 0
        self._bounds_ms = tuple(bounds_ms)
        self._bucket_counts = [0] * (len(self._bounds_ms) + 1)
        self._fine_counts = [0] * (len(FINE_BUCKETS_MS) + 1)
        self.count = 0
        self.total_ms = 0.0
        self.max_ms = -math.inf

    def add(self, value_ms: float) -> None:
        self._recent_ms[self._next] = value_ms
        self._next = (self._next + 1) % self._recent_ms.shape[0]
        self.count += 1
        self.total_ms += value_ms
        self.max_ms = max(self.max_ms, value_ms)
        # bisect_left: a value equal to a bound belongs to that bound's bucket (Prometheus `le`).
        self._bucket_counts[bisect_left(self._bounds_ms, value_ms)] += 1
        self._fine_counts[bisect_left(FINE_BUCKETS_MS, value_ms)] += 1

    def state(self, last: int | None = None) -> LatencyState:
        """A copy; `recent_ms` holds the last `last` samples (all that the window holds if
        None or more)."""
        filled = min(self.count, self._recent_ms.shape[0])
        wanted = filled if last is None else min(last, filled)
        recent_ms = ring_tail(self._recent_ms, self._next, filled, wanted)
        return LatencyState(self.count, self.total_ms, self.max_ms, recent_ms)

    def histogram(self, fine: bool = False) -> Histogram:
        """All-time counts in the window's buckets, or in `FINE_BUCKETS_MS` with `fine`."""
        if fine:
            return Histogram(FINE_BUCKETS_MS, tuple(self._fine_counts), self.total_ms, self.count)
        return Histogram(self._bounds_ms, tuple(self._bucket_counts), self.total_ms, self.count)


def ring_tail(ring: np.ndarray, next_index: int, filled: int, n: int) -> np.ndarray:
    """A copy of the `n` values most recently written to a ring buffer, oldest first.

    `next_index` is where the next value will go; `filled` how many slots hold values (the ring
    fills from index 0, so before it wraps they are `ring[:filled]`)."""
    if not 0 <= n <= filled <= ring.shape[0]:
        raise ValueError(f"cannot take {n} of {filled} values from a ring of {ring.shape[0]}")
    indices = np.arange(next_index - n, next_index) % ring.shape[0]
    return ring[indices]


def summarize_latency(state: LatencyState) -> dict[str, float | int | None]:
    """`count`, `mean_ms`, `max_ms` over all time and `p50_ms` … `p99_ms` over the recent
    window (trtexec's rule, see `edge.bench.summarize_ms`); None for each statistic when there
    are no samples."""
    if state.recent_ms.size == 0:
        return {"count": state.count} | dict.fromkeys(SUMMARY_KEYS[1:])
    stats = summarize_ms(state.recent_ms)
    return {
        "count": state.count,
        "mean_ms": float(state.total_ms / state.count),
        "p50_ms": stats["median"],
        "p90_ms": stats["p90"],
        "p95_ms": stats["p95"],
        "p99_ms": stats["p99"],
        "max_ms": float(state.max_ms),
    }


def cumulative_counts(histogram: Histogram) -> list[int]:
    """The counts of samples `<=` each bound, then of all samples (Prometheus `le` buckets)."""
    return [int(n) for n in np.cumsum(histogram.counts)]


def rate_per_s(count: int, elapsed_s: float) -> float:
    """Events per second; 0 before any time has passed (a rate must stay JSON-finite)."""
    return count / elapsed_s if elapsed_s > 0 else 0.0
