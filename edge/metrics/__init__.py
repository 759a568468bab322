"""Pipeline metrics: latency percentiles per stage and end to end, processed FPS, drops, errors,
queue depths; a JSON summary, a latency table, log lines, Prometheus exposition
(`register_prometheus`, which imports prometheus-client only when called) and Jetson power from
tegrastats."""

from edge.metrics.pipeline_metrics import STAGES, PipelineMetrics, format_table
from edge.metrics.prometheus import register_prometheus
from edge.metrics.tegrastats import TegrastatsReader, TegrastatsSample, parse_tegrastats

__all__ = [
    "STAGES",
    "PipelineMetrics",
    "TegrastatsReader",
    "TegrastatsSample",
    "format_table",
    "parse_tegrastats",
    "register_prometheus",
]
