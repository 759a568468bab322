"""Latency statistics: the ring window, its summary (trtexec's percentile rule) and buckets."""

import math

import numpy as np
import pytest

from edge.metrics.stats import (
    FINE_BUCKETS_MS,
    Histogram,
    LatencyState,
    LatencyWindow,
    cumulative_counts,
    rate_per_s,
    ring_tail,
    summarize_latency,
    summarize_ms,
    trtexec_percentile,
)


def test_ring_tail_before_and_after_wrapping():
    ring = np.array([10.0, 11.0, 12.0, 0.0])  # 3 written, next goes to index 3
    np.testing.assert_array_equal(ring_tail(ring, 3, 3, 2), [11.0, 12.0])
    np.testing.assert_array_equal(ring_tail(ring, 3, 3, 0), np.empty(0))
    wrapped = np.array([4.0, 5.0, 2.0, 3.0])  # 2,3,4,5 written in that order, next at index 2
    np.testing.assert_array_equal(ring_tail(wrapped, 2, 4, 4), [2.0, 3.0, 4.0, 5.0])
    np.testing.assert_array_equal(ring_tail(wrapped, 2, 4, 3), [3.0, 4.0, 5.0])


def test_ring_tail_refuses_more_than_it_holds():
    with pytest.raises(ValueError, match="cannot take 4 of 3"):
        ring_tail(np.zeros(4), 3, 3, 4)


def test_summary_uses_trtexec_percentiles_over_the_window():
    state = LatencyState(count=100, total_ms=5050.0, max_ms=100.0, recent_ms=np.arange(1.0, 101))
    assert summarize_latency(state) == {
        "count": 100,
        "mean_ms": 50.5,
        "p50_ms": 50.5,  # the median of an even count is the mean of the middle two
        "p90_ms": 90.0,
        "p95_ms": 95.0,
        "p99_ms": 99.0,
        "max_ms": 100.0,
    }


def test_summary_without_samples_is_all_none_but_the_count():
    summary = summarize_latency(LatencyState(0, 0.0, -math.inf, np.empty(0)))
    assert summary == {
        "count": 0,
        "mean_ms": None,
        "p50_ms": None,
        "p90_ms": None,
        "p95_ms": None,
        "p99_ms": None,
        "max_ms": None,
    }


def test_window_keeps_the_recent_samples_and_all_time_count_mean_max():
    window = LatencyWindow(4)
    for value_ms in [100.0, 1.0, 2.0, 3.0, 4.0, 5.0]:
        window.add(value_ms)
    state = window.state()
    assert sorted(state.recent_ms) == [2.0, 3.0, 4.0, 5.0]
    summary = summarize_latency(state)
    assert summary["count"] == 6
    assert summary["mean_ms"] == pytest.approx(115.0 / 6)
    assert summary["max_ms"] == 100.0  # gone from the window, kept as the run's maximum
    assert summary["p99_ms"] == 5.0
    np.testing.assert_array_equal(window.state(last=2).recent_ms, [4.0, 5.0])


def test_window_of_zero_samples_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        LatencyWindow(0)


def test_histogram_buckets_include_their_upper_bound():
    window = LatencyWindow(2, bounds_ms=(1.0, 10.0))
    for value_ms in [0.5, 1.0, 1.5, 10.0, 11.0, 500.0]:
        window.add(value_ms)
    histogram = window.histogram()
    assert histogram == Histogram((1.0, 10.0), (2, 2, 2), 524.0, 6)
    assert cumulative_counts(histogram) == [2, 4, 6]


def test_fine_buckets_tell_sub_millisecond_stages_apart():
    window = LatencyWindow(2)
    for value_ms in [0.30, 0.40, 0.45, FINE_BUCKETS_MS[0], 20_000.0]:
        window.add(value_ms)
    coarse, fine = window.histogram(), window.histogram(fine=True)
    assert coarse.counts[0] == 4  # all four in the /metrics buckets' first, "<= 0.5 ms"
    assert fine.bounds_ms == FINE_BUCKETS_MS and sum(fine.counts) == fine.count == 5
    used = [k for k, count in enumerate(fine.counts) if count]
    assert len(used) == 5 and used[0] == 0 and used[-1] == len(FINE_BUCKETS_MS)  # +Inf last
    ratios = np.asarray(FINE_BUCKETS_MS[1:]) / np.asarray(FINE_BUCKETS_MS[:-1])
    assert ratios.max() < 1.13


def test_rate_is_zero_before_time_passes():
    assert rate_per_s(30, 2.0) == 15.0
    assert rate_per_s(5, 0.0) == 0.0


def test_percentile_follows_trtexec_index_rule():
    data = np.arange(1, 101, dtype=float)  # 1..100
    # index max(n - 1 - int((1 - p/100) * n), 0): p99 -> 98 -> value 99; p90 -> 89 -> 90
    assert trtexec_percentile(data, 99) == 99
    assert trtexec_percentile(data, 90) == 90
    assert trtexec_percentile(np.array([5.0]), 99) == 5


def test_summary_has_every_statistic():
    stats = summarize_ms([3.0, 1.0, 2.0, 10.0])
    assert stats == {
        "min": 1.0,
        "mean": 4.0,
        "median": 2.5,
        "p90": 10.0,
        "p95": 10.0,
        "p99": 10.0,
        "max": 10.0,
    }
