"""Prometheus exposition of a PipelineMetrics: a collector that reads it at scrape time.

prometheus-client is imported inside the functions, so that importing edge.metrics stays cheap
and works without it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from edge.metrics.pipeline_metrics import PipelineMetrics
from edge.metrics.stats import Histogram, cumulative_counts

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import CollectorRegistry

# The label value of errors that belong to no stream (a model reload, a batch-wide failure).
NO_STREAM = ""


def register_prometheus(metrics: PipelineMetrics, registry: CollectorRegistry) -> None:
    """Expose `metrics` on `registry` (pass your own; the process-wide default registry would
    also carry the client's process and GC metrics). Metrics, times in seconds:

    - `jetkit_stage_latency_seconds{stage}`, `jetkit_e2e_latency_seconds{stream}`: histograms
      over the whole run;
    - `jetkit_frames_total{stream}`, `jetkit_drops_total{stream,reason}`,
      `jetkit_errors_total{stream,reason}` (stream "" for errors of no stream): counters;
    - `jetkit_queue_depth{queue}`, `jetkit_stream_fps{stream}`, `jetkit_fps`,
      `jetkit_uptime_seconds`: gauges (FPS: processed frames over the run);
    - with a tegrastats reader attached, once it has a sample: `jetkit_power_watts`,
      `jetkit_gpu_load_ratio`, `jetkit_temperature_celsius{sensor}`,
      `jetkit_energy_per_frame_joules`;
    - with motion gating: `jetkit_motion_frames_total{stream,decision}`;
    - with tracking: `jetkit_tracks{stream}` (gauge),
      `jetkit_line_crossings_total{stream,line,class,direction}`,
      `jetkit_zone_entries_total{stream,zone,class}` (counters) and
      `jetkit_zone_occupancy{stream,zone,class}` (gauge).
    """
    registry.register(PipelineCollector(metrics))


class PipelineCollector:
    """A prometheus-client collector (anything with `collect()`) over a PipelineMetrics."""

    def __init__(self, metrics: PipelineMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        snapshot = self._metrics.snapshot()
        histograms = self._metrics.histograms()

        stage_latency = HistogramMetricFamily(
            "jetkit_stage_latency_seconds",
            "Time one call of a pipeline stage took (a batch for preprocess/infer/postprocess).",
            labels=["stage"],
        )
        for stage, histogram in histograms["stages"].items():
            stage_latency.add_metric([stage], prometheus_buckets(histogram), histogram.sum_ms / 1e3)
        yield stage_latency

        e2e_latency = HistogramMetricFamily(
            "jetkit_e2e_latency_seconds",
            "Time from a frame's capture to its delivery to the sinks.",
            labels=["stream"],
        )
        for stream_id, histogram in histograms["e2e"].items():
            e2e_latency.add_metric(
                [stream_id], prometheus_buckets(histogram), histogram.sum_ms / 1e3
            )
        yield e2e_latency

        streams = snapshot["streams"]
        frames = CounterMetricFamily(
            "jetkit_frames", "Frames delivered to the sinks.", labels=["stream"]
        )
        drops = CounterMetricFamily(
            "jetkit_drops", "Frames dropped, by reason.", labels=["stream", "reason"]
        )
        errors = CounterMetricFamily(
            "jetkit_errors", "Errors, by reason.", labels=["stream", "reason"]
        )
        fps = GaugeMetricFamily(
            "jetkit_stream_fps", "Frames delivered per second over the run.", labels=["stream"]
        )
        # The snapshot's `errors` count every stream's too: what is left after them has no stream.
        streamless_errors = dict(snapshot["errors"])
        for stream_id, stream in streams.items():
            frames.add_metric([stream_id], stream["frames"])
            fps.add_metric([stream_id], stream["fps"])
            for reason, n in stream["drops"].items():
                drops.add_metric([stream_id, reason], n)
            for reason, n in stream["errors"].items():
                errors.add_metric([stream_id, reason], n)
                streamless_errors[reason] -= n
        for reason, n in streamless_errors.items():
            if n:
                errors.add_metric([NO_STREAM, reason], n)
        yield from (frames, drops, errors, fps)
        motion = CounterMetricFamily(
            "jetkit_motion_frames",
            "Frames by motion gating's decision: skip (no detector), crop, full.",
            labels=["stream", "decision"],
        )
        for stream_id, stream in streams.items():
            for decision, n in stream.get("motion", {}).items():
                motion.add_metric([stream_id, decision], n)
        yield motion

        yield GaugeMetricFamily(
            "jetkit_fps",
            "Frames delivered per second over the run, all streams.",
            value=snapshot["total_fps"],
        )
        queues = GaugeMetricFamily(
            "jetkit_queue_depth", "Items waiting in a pipeline queue.", labels=["queue"]
        )
        for name, depth in snapshot["queues"].items():
            queues.add_metric([name], depth)
        yield queues
        yield GaugeMetricFamily(
            "jetkit_uptime_seconds",
            "Seconds since the metrics started.",
            value=snapshot["uptime_s"],
        )
        yield from _power_metrics(snapshot["power"] or {})
        yield from _sink_metrics(snapshot.get("sinks", {}))
        if "analytics" in snapshot:
            yield from _analytics_metrics(snapshot["analytics"])


def prometheus_buckets(histogram: Histogram) -> list[tuple[str, float]]:
    """Cumulative `(le, count)` pairs in seconds, ending with `+Inf`, as HistogramMetricFamily
    takes them."""
    from prometheus_client.utils import floatToGoString

    bounds = [floatToGoString(bound_ms / 1e3) for bound_ms in histogram.bounds_ms] + ["+Inf"]
    return list(zip(bounds, map(float, cumulative_counts(histogram)), strict=True))


def _power_metrics(power: dict[str, Any]) -> Iterator[Metric]:
    from prometheus_client.core import GaugeMetricFamily

    if power.get("power_mw") is not None:
        yield GaugeMetricFamily(
            "jetkit_power_watts", "Board input power.", value=power["power_mw"] / 1e3
        )
    if power.get("gpu_load_pct") is not None:
        yield GaugeMetricFamily(
            "jetkit_gpu_load_ratio", "GPU load.", value=power["gpu_load_pct"] / 100
        )
    if power.get("temperatures_c"):
        temperature = GaugeMetricFamily(
            "jetkit_temperature_celsius", "Jetson thermal sensors.", labels=["sensor"]
        )
        for sensor, celsius in power["temperatures_c"].items():
            temperature.add_metric([sensor], celsius)
        yield temperature
    if power.get("energy_mj_per_frame") is not None:
        yield GaugeMetricFamily(
            "jetkit_energy_per_frame_joules",
            "Board energy per delivered frame over the run.",
            value=power["energy_mj_per_frame"] / 1e3,
        )


# Sink counters that only grow (an MQTT sink's); its other numbers (queued, connected) are gauges.
SINK_COUNTERS = ("published", "dropped", "disconnects", "failed_connects")


def _sink_metrics(sinks: dict[str, dict[str, Any]]) -> Iterator[Metric]:
    """A sink's own counters, labelled by its URI (passwords masked by the sink)."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    families: dict[str, Any] = {}
    for uri, stats in sorted(sinks.items()):
        for name, value in stats.items():
            if not isinstance(value, int | float):  # bools count: `connected` is 0 or 1
                continue  # text (the last error) is for /status, not a time series
            if name not in families:
                families[name] = (
                    CounterMetricFamily(f"jetkit_sink_{name}", f"Sink {name}.", labels=["sink"])
                    if name in SINK_COUNTERS
                    else GaugeMetricFamily(f"jetkit_sink_{name}", f"Sink {name}.", labels=["sink"])
                )
            families[name].add_metric([uri], float(value))
    yield from families.values()


def _analytics_metrics(streams: dict[str, dict[str, Any]]) -> Iterator[Metric]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    tracks = GaugeMetricFamily("jetkit_tracks", "Confirmed tracks now.", labels=["stream"])
    crossings = CounterMetricFamily(
        "jetkit_line_crossings",
        "Tracks that crossed a line, by class and direction.",
        labels=["stream", "line", "class", "direction"],
    )
    entries = CounterMetricFamily(
        "jetkit_zone_entries", "Tracks that entered a zone.", labels=["stream", "zone", "class"]
    )
    occupancy = GaugeMetricFamily(
        "jetkit_zone_occupancy", "Tracks in a zone now.", labels=["stream", "zone", "class"]
    )
    for stream_id, status in sorted(streams.items()):
        tracks.add_metric([stream_id], status["tracks"])
        for line, by_class in status["lines"].items():
            for name, directions in by_class.items():
                for direction, n in directions.items():
                    crossings.add_metric([stream_id, line, name, direction], n)
        for zone, counts in status["zones"].items():
            for name, n in counts["entered"].items():
                entries.add_metric([stream_id, zone, name], n)
            for name, n in counts["occupancy"].items():
                occupancy.add_metric([stream_id, zone, name], n)
    yield from (tracks, crossings, entries, occupancy)
