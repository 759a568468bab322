"""The benchmark's statistics (trtexec's percentile rule) and its run loop."""

import pytest

from edge import Detector
from edge.bench import (
    BenchConfig,
    format_report,
    run_bench,
    time_model_loop,
)
from edge.errors import JetkitError


def test_loop_meets_both_minimums():
    calls = []
    latencies, wall_s = time_model_loop(
        calls.append, [None], BenchConfig(warmup_ms=0, iterations=25, duration_s=0)
    )
    assert latencies.shape == (25,) and len(calls) == 26  # one warm-up call
    latencies, wall_s = time_model_loop(
        lambda _: None, [None], BenchConfig(warmup_ms=0, iterations=1, duration_s=0.05)
    )
    assert wall_s >= 0.05 and latencies.shape[0] > 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch": 0}, "--batch"),
        ({"iterations": 0}, "--iterations"),
        ({"duration_s": -1}, "--duration"),
    ],
)
def test_config_is_validated(kwargs, message):
    with pytest.raises(JetkitError, match=message):
        BenchConfig(**kwargs)


def test_run_reports_throughput_latency_and_stages(blob_onnx):
    detector = Detector.open(blob_onnx)
    result = run_bench(
        detector, BenchConfig(batch=2, warmup_ms=10, iterations=5, duration_s=0, stage_iterations=3)
    )
    assert result["iterations"] == 5 and result["batch"] == 2
    samples = result["latency_samples_ms"]
    assert len(samples) == 5 and min(samples) == pytest.approx(
        result["latency_ms"]["min"], abs=1e-3
    )
    assert result["throughput_fps"] == pytest.approx(2 * result["throughput_ips"])
    assert set(result["latency_ms"]) == {"min", "mean", "median", "p90", "p95", "p99", "max"}
    assert set(result["stages_ms"]) == {"preprocess", "compute", "decode_nms"}
    assert result["environment"]["backend"] == "onnxruntime"
    assert "Throughput:" in format_report(result)


def test_batch_above_the_model_maximum_is_refused(blob_onnx):
    with pytest.raises(JetkitError, match="larger than the model's maximum batch 8"):
        run_bench(Detector.open(blob_onnx), BenchConfig(batch=9))


def test_static_batch_model_runs_its_own_batch(tmp_path):
    from edge.samples import build_blob_detector

    path = tmp_path / "static2.onnx"
    build_blob_detector(path, max_batch=2, dynamic_batch=False)
    detector = Detector.open(path)
    quick = BenchConfig(warmup_ms=0, iterations=2, duration_s=0, stage_iterations=1)
    assert run_bench(detector, quick)["batch"] == 2
    with pytest.raises(JetkitError, match="static batch of 2; use --batch 2"):
        run_bench(detector, BenchConfig(batch=1))
