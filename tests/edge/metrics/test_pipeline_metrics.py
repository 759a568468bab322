"""PipelineMetrics: recording from threads, the JSON snapshot, the table and the log lines."""

import json
import threading

import pytest

from edge.metrics import STAGES, PipelineMetrics, format_table


def two_stream_run(clock) -> PipelineMetrics:
    """10 s in which cam0 delivers 20 frames and cam1 11, with a few drops and errors."""
    metrics = PipelineMetrics(["cam0", "cam1"], clock=clock)
    for i in range(20):
        metrics.record_stage("infer", 8.0 + i, frames=2)
        metrics.record_stage("queue_wait", 1.0)
        metrics.record_result("cam0", 30.0 + i)
    for i in range(10):
        metrics.record_result("cam1", 50.0 + i)
    metrics.record_drop("cam0", "stale", count=3)
    metrics.record_drop("cam0", "sink_full")
    metrics.record_error("cam1", "capture")
    metrics.record_error("cam1", "reconnect")
    metrics.record_error(None, "infer")
    metrics.set_queue_depth("to_infer", 2)
    metrics.set_queue_depth("to_infer", 1)
    metrics.set_queue_depth("to_sinks", 0)
    clock.now_s += 10.0
    metrics.record_result("cam1", 60.0)
    return metrics


def test_snapshot_has_every_documented_key_and_is_json(clock):
    metrics = two_stream_run(clock)
    clock.now_s += 5.0  # after the last result: uptime grows, the run's rate does not fall
    snapshot = json.loads(json.dumps(metrics.snapshot()))
    assert snapshot["uptime_s"] == 15.0
    assert snapshot["run_s"] == 10.0
    assert list(snapshot["stages"]) == list(STAGES)
    infer = snapshot["stages"]["infer"]
    assert infer["count"] == 20 and infer["frames"] == 40
    assert infer["mean_ms"] == pytest.approx(17.5)
    assert infer["p50_ms"] == 17.5 and infer["max_ms"] == 27.0
    assert set(infer) == {
        "count",
        "frames",
        "mean_ms",
        "p50_ms",
        "p90_ms",
        "p95_ms",
        "p99_ms",
        "max_ms",
    }
    assert snapshot["stages"]["sink"]["count"] == 0 and snapshot["stages"]["sink"]["p99_ms"] is None
    assert snapshot["e2e"]["count"] == 31 and snapshot["e2e"]["max_ms"] == 60.0
    cam0, cam1 = snapshot["streams"]["cam0"], snapshot["streams"]["cam1"]
    assert cam0["frames"] == 20 and cam0["fps"] == 2.0
    assert cam0["drops"] == {"stale": 3, "sink_full": 1} and cam0["errors"] == {}
    assert cam0["e2e"]["p99_ms"] == 49.0
    assert cam1["frames"] == 11 and cam1["errors"] == {"capture": 1, "reconnect": 1}
    assert snapshot["frames"] == 31 and snapshot["total_fps"] == 3.1
    assert snapshot["errors"] == {"infer": 1, "capture": 1, "reconnect": 1}
    assert snapshot["queues"] == {"to_infer": 1, "to_sinks": 0}
    assert snapshot["power"] is None


def test_streams_and_stages_not_named_upfront_are_added(clock):
    metrics = PipelineMetrics([], clock=clock)
    metrics.record_result("late", 5.0)
    metrics.record_drop("other", "stale")
    metrics.record_stage("decode", 1.0)
    snapshot = metrics.snapshot()
    assert set(snapshot["streams"]) == {"late", "other"}
    assert snapshot["streams"]["other"]["frames"] == 0
    assert snapshot["stages"]["decode"]["count"] == 1


def test_percentiles_cover_the_window_and_count_mean_max_the_run(clock):
    metrics = PipelineMetrics(["cam"], window=10, clock=clock)
    for _ in range(10):
        metrics.record_result("cam", 500.0)
    for _ in range(10):
        metrics.record_result("cam", 5.0)
    e2e = metrics.snapshot()["streams"]["cam"]["e2e"]
    assert e2e["count"] == 20 and e2e["mean_ms"] == 252.5 and e2e["max_ms"] == 500.0
    assert e2e["p50_ms"] == 5.0 and e2e["p99_ms"] == 5.0


def test_log_lines_report_the_interval_since_the_previous_call(clock):
    metrics = PipelineMetrics(["cam0", "cam1"], clock=clock)
    for _ in range(50):
        metrics.record_result("cam0", 100.0)
    clock.now_s += 5.0
    metrics.log_lines()
    for i in range(1, 101):
        metrics.record_result("cam0", float(i))
    metrics.record_drop("cam0", "stale", 2)
    metrics.record_error("cam1", "capture")
    clock.now_s += 10.0
    cam0, cam1 = metrics.log_lines()
    assert cam0 == (
        "cam0: 10.0 fps (100 frames in 10.0 s), e2e p50 50.5 ms p99 99.0 ms, "
        "drops 2 (stale 2), errors 0"
    )
    assert cam1 == (
        "cam1: 0.0 fps (0 frames in 10.0 s), e2e p50 - p99 -, drops 0, errors 1 (capture 1)"
    )


def test_log_interval_percentiles_are_bounded_by_the_window(clock):
    metrics = PipelineMetrics(["cam"], window=4, clock=clock)
    for value_ms in [1.0, 1.0, 1.0, 1.0, 9.0, 9.0, 9.0, 9.0]:
        metrics.record_result("cam", value_ms)
    clock.now_s += 1.0
    assert metrics.log_lines()[0].startswith("cam: 8.0 fps (8 frames in 1.0 s), e2e p50 9.0 ms")


def test_table_rows_and_footer(clock):
    table = two_stream_run(clock).format_table()
    lines = table.splitlines()
    assert lines[0].split() == ["(ms)", "count", "mean", "p50", "p90", "p95", "p99", "max"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:7]}
    assert list(rows) == list(STAGES)
    assert rows["infer"] == ["20", "17.500", "17.500", "25.000", "26.000", "27.000", "27.000"]
    assert rows["sink"] == ["0", "-", "-", "-", "-", "-", "-"]
    assert lines[7].split()[:2] == ["e2e", "31"]
    assert lines[8].split()[:3] == ["e2e", "cam0", "20"]
    assert "processed: 31 frames in 10.00 s, 3.1 fps (cam0 2.0, cam1 1.1)" in table
    assert "drops: cam0 4 (sink_full 1, stale 3)" in table
    assert "errors: 3 (capture 1, infer 1, reconnect 1)" in table
    assert "power:" not in table


def test_table_of_an_empty_run(clock):
    table = format_table(PipelineMetrics([], clock=clock).snapshot())
    assert "processed: 0 frames in 0.00 s, 0.0 fps" in table
    assert "drops: none" in table and "errors: 0" in table


def test_concurrent_recording_loses_nothing(clock):
    metrics = PipelineMetrics(["a", "b"], window=1000, clock=clock)
    per_thread = 5000

    def work(stream_id: str) -> None:
        for i in range(per_thread):
            metrics.record_stage("infer", 1.0)
            metrics.record_result(stream_id, float(i % 100))
            metrics.record_drop(stream_id, "stale")
            metrics.set_queue_depth("q", i)

    threads = [threading.Thread(target=work, args=(sid,)) for sid in ["a", "b", "a", "b"]]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        metrics.snapshot()  # readers run alongside the writers
        metrics.log_lines()
    for thread in threads:
        thread.join()
    snapshot = metrics.snapshot()
    assert snapshot["stages"]["infer"]["count"] == 4 * per_thread
    assert snapshot["e2e"]["count"] == 4 * per_thread
    assert snapshot["streams"]["a"]["drops"] == {"stale": 2 * per_thread}
    histograms = metrics.histograms()
    assert sum(histograms["e2e"]["a"].counts) == 2 * per_thread
    assert sum(histograms["stages"]["infer"].counts) == 4 * per_thread


def test_sinks_report_their_own_counters():
    from dataclasses import dataclass

    @dataclass
    class Counters:
        published: int
        dropped: int

    metrics = PipelineMetrics(["s0"])
    metrics.watch_sink("mqtt://broker:1883/det", lambda: Counters(7, 1))
    assert metrics.snapshot()["sinks"] == {"mqtt://broker:1883/det": {"published": 7, "dropped": 1}}
