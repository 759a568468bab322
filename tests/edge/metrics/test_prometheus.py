"""Prometheus exposition: scrape a registry with a PipelineMetrics on it and parse the text."""

import subprocess
import sys

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from edge.metrics import STAGES, PipelineMetrics, TegrastatsReader, register_prometheus
from edge.metrics.stats import LATENCY_BUCKETS_MS


def scrape(registry: CollectorRegistry) -> dict[str, dict[tuple, float]]:
    """{sample name: {sorted label items: value}} from the exposition text."""
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


@pytest.fixture
def metrics(clock) -> PipelineMetrics:
    start_s = clock.now_s
    metrics = PipelineMetrics(["cam0", "cam1"], clock=clock)
    for duration_ms in [0.4, 5.0, 12.0, 20_000.0]:
        metrics.record_stage("infer", duration_ms, frames=2)
    for _ in range(3):
        metrics.record_result("cam0", 40.0)
    metrics.record_drop("cam0", "stale", 5)
    metrics.record_error("cam1", "capture")
    metrics.record_error(None, "capture")
    metrics.record_error(None, "reload")
    metrics.set_queue_depth("to_infer", 3)
    clock.now_s = start_s + 2.0
    metrics.record_result("cam1", 60.0)
    return metrics


def test_stage_histogram_in_seconds(metrics):
    registry = CollectorRegistry()
    register_prometheus(metrics, registry)
    samples = scrape(registry)
    buckets = {
        dict(labels)["le"]: value
        for labels, value in samples["jetkit_stage_latency_seconds_bucket"].items()
        if dict(labels)["stage"] == "infer"
    }
    assert len(buckets) == len(LATENCY_BUCKETS_MS) + 1
    assert buckets["0.0005"] == 1
    assert buckets["0.005"] == 2  # a sample on a bound belongs to its bucket
    assert buckets["0.015"] == 3
    assert buckets["10.0"] == 3 and buckets["+Inf"] == 4
    infer = (("stage", "infer"),)
    assert samples["jetkit_stage_latency_seconds_count"][infer] == 4
    assert samples["jetkit_stage_latency_seconds_sum"][infer] == pytest.approx(20.0174)
    stages = {dict(labels)["stage"] for labels in samples["jetkit_stage_latency_seconds_count"]}
    assert stages == set(STAGES)


def test_e2e_histogram_per_stream(metrics):
    registry = CollectorRegistry()
    register_prometheus(metrics, registry)
    samples = scrape(registry)
    bucket = samples["jetkit_e2e_latency_seconds_bucket"]
    assert bucket[(("le", "0.03"), ("stream", "cam0"))] == 0
    assert bucket[(("le", "0.05"), ("stream", "cam0"))] == 3
    assert bucket[(("le", "0.075"), ("stream", "cam1"))] == 1
    assert samples["jetkit_e2e_latency_seconds_sum"][(("stream", "cam0"),)] == pytest.approx(0.12)


def test_counters_and_gauges(metrics):
    registry = CollectorRegistry()
    register_prometheus(metrics, registry)
    samples = scrape(registry)
    assert samples["jetkit_frames_total"] == {(("stream", "cam0"),): 3, (("stream", "cam1"),): 1}
    assert samples["jetkit_drops_total"] == {(("reason", "stale"), ("stream", "cam0")): 5}
    assert samples["jetkit_errors_total"] == {
        (("reason", "capture"), ("stream", "cam1")): 1,
        (("reason", "capture"), ("stream", "")): 1,
        (("reason", "reload"), ("stream", "")): 1,
    }
    assert samples["jetkit_queue_depth"] == {(("queue", "to_infer"),): 3}
    assert samples["jetkit_stream_fps"] == {(("stream", "cam0"),): 1.5, (("stream", "cam1"),): 0.5}
    assert samples["jetkit_fps"] == {(): 2.0}
    assert samples["jetkit_uptime_seconds"] == {(): 2.0}
    assert not any(name.startswith(("jetkit_power", "jetkit_temperature")) for name in samples)


def test_power_gauges_with_a_tegrastats_reader(metrics, fake_tegrastats, wait_until):
    script = fake_tegrastats(["RAM 1/2MB GR3D_FREQ 40%@1300 GPU@50.5C VDD_IN 5000/5000"])
    with TegrastatsReader(executable=str(script)) as reader:
        metrics.attach_power(reader)
        wait_until(lambda: reader.samples > 0)
    registry = CollectorRegistry()
    register_prometheus(metrics, registry)
    samples = scrape(registry)
    assert samples["jetkit_power_watts"] == {(): 5.0}
    assert samples["jetkit_gpu_load_ratio"] == {(): 0.4}
    assert samples["jetkit_temperature_celsius"] == {(("sensor", "gpu"),): 50.5}
    energy_j = reader.energy_mj / 1e3 / 4
    assert samples["jetkit_energy_per_frame_joules"][()] == pytest.approx(energy_j)


def test_importing_metrics_leaves_prometheus_client_unloaded():
    code = "import sys, edge.metrics; print('prometheus_client' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_a_sinks_own_counters_are_exported(metrics):
    from dataclasses import dataclass

    @dataclass
    class MqttLike:
        connected: bool
        published: int
        queued: int
        dropped: int
        last_error: str | None

    metrics.watch_sink("mqtt://broker:1883/det", lambda: MqttLike(False, 40, 7, 2, "refused"))
    registry = CollectorRegistry()
    register_prometheus(metrics, registry)
    samples = scrape(registry)
    sink = (("sink", "mqtt://broker:1883/det"),)
    assert samples["jetkit_sink_published_total"] == {sink: 40}
    assert samples["jetkit_sink_dropped_total"] == {sink: 2}
    assert samples["jetkit_sink_queued"] == {sink: 7}
    assert samples["jetkit_sink_connected"] == {sink: 0}
    assert "jetkit_sink_last_error" not in samples
