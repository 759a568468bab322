"""Calibration ranges from histograms: every method a pure function of the same counts."""

import numpy as np
import pytest

from calibration.ranges import (
    AUTO_CANDIDATES,
    HISTOGRAM_BINS,
    Method,
    TensorHistogram,
    coarsened,
    entropy_amax,
    percentile_amax,
    ranges_for,
    save_ranges,
    tensor_range,
)
from edge.errors import JetkitError


def histogram_of(values: np.ndarray, bins: int = HISTOGRAM_BINS) -> TensorHistogram:
    """As ONNX Runtime's collector builds it: symmetric about zero out to the largest |x|."""
    threshold = float(np.abs(values).max())
    counts, _ = np.histogram(values, bins, range=(-threshold, threshold))
    return TensorHistogram(counts, threshold, float(values.min()), float(values.max()))


def test_methods_parse_and_print_as_the_user_writes_them():
    assert Method.parse("entropy") == Method("entropy")
    assert Method.parse("percentile") == Method("percentile", 99.99)
    assert Method.parse("percentile:99.9") == Method("percentile", 99.9)
    assert [str(Method.parse(m)) for m in AUTO_CANDIDATES] == list(AUTO_CANDIDATES)
    for bad, message in [
        ("kl", "is not auto, entropy, minmax"),
        ("entropy:99", "only percentile takes a value"),
        ("percentile:20", "must be in 50-100"),
        ("percentile:", "is not auto"),
    ]:
        with pytest.raises(JetkitError, match=message):
            Method.parse(bad)


def test_the_histogram_folds_to_magnitudes():
    histogram = TensorHistogram(np.array([1, 2, 3, 4, 5, 6]), 3.0, -3.0, 3.0)
    counts_abs, width = histogram.magnitudes()
    # Bins [-3,-2) [-2,-1) [-1,0) | [0,1) [1,2) [2,3): |x| in [0,1) gathers 3 and 4.
    np.testing.assert_array_equal(counts_abs, [7, 7, 7])
    assert width == 1.0


def test_percentile_cuts_the_rare_outliers_and_minmax_keeps_them():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0, 1, 200_000), [40.0, -35.0]]).astype(np.float32)
    histogram = histogram_of(values)
    assert tensor_range(histogram, Method("minmax")) == (pytest.approx(-35.0), pytest.approx(40.0))
    low, high = tensor_range(histogram, Method("percentile", 99.99))
    assert low == -high and 3.5 < high < 5.0  # |N(0,1)| passes 3.89 once in 10^4
    assert tensor_range(histogram, Method("percentile", 99.9))[1] < high


def test_entropy_keeps_a_uniform_range_and_cuts_a_long_tail():
    rng = np.random.default_rng(0)
    uniform = histogram_of(rng.uniform(-1, 1, 100_000).astype(np.float32))
    assert tensor_range(uniform, Method("entropy"))[1] > 0.95
    tailed = histogram_of(
        np.concatenate([rng.normal(0, 1, 100_000), rng.normal(0, 1, 20) * 30]).astype(np.float32)
    )
    amax = tensor_range(tailed, Method("entropy"))[1]
    assert 2.0 < amax < 0.5 * tailed.highest


def test_a_one_sided_tensor_keeps_its_lower_bound():
    """A ReLU output never goes below 0: the symmetric threshold is clipped to what was seen."""
    rng = np.random.default_rng(1)
    relu = np.maximum(rng.normal(0, 1, 50_000), 0).astype(np.float32)
    for method in AUTO_CANDIDATES:
        low, high = tensor_range(histogram_of(relu), Method.parse(method))
        assert low == 0.0 and 0 < high <= relu.max()


def test_degenerate_histograms_give_finite_ranges():
    empty = np.zeros(HISTOGRAM_BINS // 2)
    assert percentile_amax(empty, 0.1, 99.9) == 0.0
    assert entropy_amax(empty, 0.1) == pytest.approx(HISTOGRAM_BINS // 2 * 0.1)
    narrow = np.zeros(HISTOGRAM_BINS // 2)
    narrow[:10] = 5
    assert entropy_amax(narrow, 0.1) == pytest.approx(1.0)  # all within the first 10 bins
    constant = histogram_of(np.full(100, 2.5, np.float32))
    for method in AUTO_CANDIDATES:
        low, high = tensor_range(constant, Method.parse(method))
        assert np.isfinite([low, high]).all() and low <= high <= 2.5


def test_coarsening_keeps_every_count_and_the_covered_range():
    counts = np.arange(10.0)
    merged, width = coarsened(counts, 0.5, 4)
    assert merged.tolist() == [3.0, 12.0, 21.0, 9.0] and width == 1.5  # 3 bins each, 2 padded
    assert coarsened(counts, 0.5, 10) == (counts, 0.5)


def test_a_histogram_onnxruntime_widened_to_400k_bins_keeps_the_bulk_not_the_outliers():
    # Later chunks reaching 200x further than the first leave ONNX Runtime's histogram with
    # hundreds of thousands of bins of the first chunk's width; searched bin by bin, the
    # entropy threshold of such a tensor took hours.
    rng = np.random.default_rng(3)
    values = np.concatenate([np.abs(rng.normal(0, 1, 200_000)), [150.0, 399.0]])
    counts, _ = np.histogram(values, bins=400_000, range=(0, 400))
    amax = entropy_amax(counts.astype(np.float64), 0.001)
    assert 2.0 < amax < 20.0, amax


def test_saved_ranges_are_what_onnxruntimes_quantizer_reads(tmp_path):
    from onnxruntime.quantization.calibrate import load_tensors_data

    rng = np.random.default_rng(2)
    histograms = {"a": histogram_of(rng.normal(0, 2, 10_000).astype(np.float32))}
    ranges = ranges_for(histograms, Method("percentile", 99.9))
    save_ranges(ranges, tmp_path / "ranges.json")
    loaded = load_tensors_data(tmp_path / "ranges.json")
    np.testing.assert_allclose(
        np.asarray(loaded["a"].range_value, np.float64), ranges["a"], rtol=1e-6
    )
