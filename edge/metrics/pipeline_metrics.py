"""PipelineMetrics: what the streaming pipeline measures, recorded from its threads and read as
a JSON-ready snapshot, a latency table, periodic log lines and Prometheus histograms."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from edge.metrics.stats import (
    SUMMARY_KEYS,
    Histogram,
    LatencyWindow,
    rate_per_s,
    summarize_latency,
    summarize_ms,
)
from edge.metrics.tegrastats import TegrastatsReader

STAGES = ("capture_wait", "queue_wait", "preprocess", "infer", "postprocess", "sink")


@dataclass(slots=True)
class _Stream:
    e2e: LatencyWindow
    drops: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    motion: dict[str, int] = field(default_factory=dict)  # gating decisions: skip/crop/full
    logged_frames: int = 0


class PipelineMetrics:
    """Per-stage and end-to-end latency, processed FPS, drops, errors and queue depths.

    Every `record_*`/`set_*` call takes one lock for O(1) work, so the pipeline's threads may
    call them per frame. A stage sample is one call of that stage (a whole batch for preprocess,
    infer and postprocess), `frames` the frames it handled. An end-to-end sample is one frame
    delivered to the sinks, from its capture time. Streams not named at construction are added
    on first use.

    `snapshot()` keys:
      - `uptime_s`: seconds since construction.
      - `run_s`: seconds from construction to the latest delivered frame (the span FPS use, so
        that a summary written after the pipeline drained still gives the run's rate).
      - `stages`: {stage: {count, frames, mean_ms, p50_ms, p90_ms, p95_ms, p99_ms, max_ms}}.
      - `e2e`: {count, mean_ms, p50_ms, p90_ms, p95_ms, p99_ms, max_ms} over all streams.
      - `streams`: {id: {frames, fps, drops: {reason: n}, errors: {reason: n}, e2e: {…}}},
        with motion gating also `motion`: {skip|crop|full: frames}.
      - `frames`, `total_fps`: delivered frames and their rate over all streams.
      - `errors`: {reason: n} over all streams and stream-less errors.
      - `queues`: {name: depth} as last set.
      - `power`: None without a tegrastats reader (`attach_power`), else {power_mw,
        gpu_load_pct, temperatures_c, energy_mj, energy_mj_per_frame}, each None until known.
      - `sinks`: {uri: counters} for sinks that keep their own (`watch_sink`).
      - `analytics`: with tracking (`watch_analytics`), {stream: {tracks, lines: {line: {class:
        {in, out}}}, zones: {zone: {occupancy: {class: n}, entered: {class: n}}}}}.
    count, mean and max cover the whole run, percentiles the last `window` samples; a
    statistic without samples is None.
    """

    def __init__(
        self,
        stream_ids: Sequence[str],
        window: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._start_s = clock()
        self._last_result_s = self._start_s
        self._logged_s = self._start_s
        self._stages = {stage: LatencyWindow(window) for stage in STAGES}
        self._stage_frames = dict.fromkeys(STAGES, 0)
        self._e2e = LatencyWindow(window)
        self._streams = {stream_id: _Stream(LatencyWindow(window)) for stream_id in stream_ids}
        self._streamless_errors: dict[str, int] = {}
        self._queues: dict[str, int] = {}
        self._power: TegrastatsReader | None = None
        self._sink_stats: dict[str, Callable[[], Any]] = {}
        self._analytics: Callable[[], dict[str, Any]] | None = None

    # --- recording (pipeline threads) ----------------------------------------------------------

    def record_stage(self, stage: str, duration_ms: float, frames: int = 1) -> None:
        with self._lock:
            window = self._stages.get(stage)
            if window is None:
                window = self._stages[stage] = LatencyWindow(self._window)
                self._stage_frames[stage] = 0
            window.add(duration_ms)
            self._stage_frames[stage] += frames

    def record_result(self, stream_id: str, e2e_ms: float) -> None:
        with self._lock:
            self._stream(stream_id).e2e.add(e2e_ms)
            self._e2e.add(e2e_ms)
            self._last_result_s = self._clock()

    def record_drop(self, stream_id: str, reason: str, count: int = 1) -> None:
        with self._lock:
            drops = self._stream(stream_id).drops
            drops[reason] = drops.get(reason, 0) + count

    def record_motion(self, stream_id: str, decision: str) -> None:
        """Motion gating's decision for one of the stream's frames (skip, crop or full)."""
        with self._lock:
            motion = self._stream(stream_id).motion
            motion[decision] = motion.get(decision, 0) + 1

    def record_error(self, stream_id: str | None, reason: str) -> None:
        with self._lock:
            errors = (
                self._streamless_errors if stream_id is None else self._stream(stream_id).errors
            )
            errors[reason] = errors.get(reason, 0) + 1

    def set_queue_depth(self, queue: str, depth: int) -> None:
        with self._lock:
            self._queues[queue] = depth

    def attach_power(self, reader: TegrastatsReader) -> None:
        """Report `reader`'s power in snapshots; start it when the run starts, as energy per
        frame divides its energy by the frames delivered since construction."""
        with self._lock:
            self._power = reader

    def watch_sink(self, uri: str, stats: Callable[[], Any]) -> None:
        """Report a sink's own counters (a dataclass, e.g. an MQTT sink's published, queued,
        dropped, disconnects) under `sinks` in snapshots: a broker outage shows there."""
        with self._lock:
            self._sink_stats[uri] = stats

    def watch_analytics(self, status: Callable[[], dict[str, Any]]) -> None:
        """Report the streams' analytics (track counts, line crossings, zone occupancy) under
        `analytics` in snapshots."""
        with self._lock:
            self._analytics = status

    def _stream(self, stream_id: str) -> _Stream:
        stream = self._streams.get(stream_id)
        if stream is None:
            stream = self._streams[stream_id] = _Stream(LatencyWindow(self._window))
        return stream

    # --- reading -------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready summary; see the class docstring for its keys."""
        # Copy under the lock, summarise (sorting the windows) outside it.
        with self._lock:
            uptime_s = self._clock() - self._start_s
            run_s = self._last_result_s - self._start_s
            stages = {
                name: (w.state(), self._stage_frames[name]) for name, w in self._stages.items()
            }
            e2e = self._e2e.state()
            streams = {
                stream_id: (s.e2e.state(), dict(s.drops), dict(s.errors), dict(s.motion))
                for stream_id, s in self._streams.items()
            }
            errors = dict(self._streamless_errors)
            queues = dict(self._queues)
            power = self._power
            sink_stats = dict(self._sink_stats)
            analytics = self._analytics
        for _, _, stream_errors, _ in streams.values():
            for reason, n in stream_errors.items():
                errors[reason] = errors.get(reason, 0) + n
        return {
            "uptime_s": uptime_s,
            "run_s": run_s,
            "stages": {
                name: summarize_latency(state) | {"frames": frames}
                for name, (state, frames) in stages.items()
            },
            "e2e": summarize_latency(e2e),
            "streams": {
                stream_id: {
                    "frames": state.count,
                    "fps": rate_per_s(state.count, run_s),
                    "drops": drops,
                    "errors": stream_errors,
                    **({"motion": motion} if motion else {}),
                    "e2e": summarize_latency(state),
                }
                for stream_id, (state, drops, stream_errors, motion) in streams.items()
            },
            "frames": e2e.count,
            "total_fps": rate_per_s(e2e.count, run_s),
            "errors": errors,
            "queues": queues,
            "power": power_summary(power, e2e.count) if power is not None else None,
            "sinks": {uri: asdict(stats()) for uri, stats in sink_stats.items()},
            **({"analytics": analytics()} if analytics is not None else {}),
        }

    def summary(self) -> dict[str, Any]:
        """The snapshot plus all-time latency histograms (bucket bounds and counts) per stage
        and per stream, in the /metrics buckets (`histograms`) and in `FINE_BUCKETS_MS`
        (`fine_histograms`, for plots): what `--summary` files hold."""
        return self.snapshot() | {
            key: {
                kind: {name: asdict(histogram) for name, histogram in by_name.items()}
                for kind, by_name in self.histograms(fine=fine).items()
            }
            for key, fine in (("histograms", False), ("fine_histograms", True))
        }

    def histograms(self, fine: bool = False) -> dict[str, dict[str, Histogram]]:
        """All-time bucket counts: `{"stages": {stage: Histogram}, "e2e": {stream: Histogram}}`
        (`LatencyWindow.histogram`)."""
        with self._lock:
            return {
                "stages": {name: w.histogram(fine) for name, w in self._stages.items()},
                "e2e": {stream_id: s.e2e.histogram(fine) for stream_id, s in self._streams.items()},
            }

    def format_table(self) -> str:
        """The latency table `jetkit run` prints at the end."""
        return format_table(self.snapshot())

    def log_lines(self) -> list[str]:
        """One line per stream about the interval since the previous call (or construction):
        processed FPS and e2e p50/p99 over it, then the run's drops and errors."""
        with self._lock:
            now_s = self._clock()
            interval_s, self._logged_s = now_s - self._logged_s, now_s
            intervals = []
            for stream_id, stream in self._streams.items():
                frames = stream.e2e.count - stream.logged_frames
                stream.logged_frames = stream.e2e.count
                recent_ms = stream.e2e.state(last=frames).recent_ms
                intervals.append(
                    (stream_id, frames, recent_ms, dict(stream.drops), dict(stream.errors))
                )
        lines = []
        for stream_id, frames, recent_ms, drops, errors in intervals:
            if recent_ms.size:
                stats = summarize_ms(recent_ms)
                latency = f"e2e p50 {stats['median']:.1f} ms p99 {stats['p99']:.1f} ms"
            else:
                latency = "e2e p50 - p99 -"
            lines.append(
                f"{stream_id}: {rate_per_s(frames, interval_s):.1f} fps ({frames} frames in "
                f"{interval_s:.1f} s), {latency}, drops {_counts(drops)}, errors {_counts(errors)}"
            )
        return lines


def power_summary(reader: TegrastatsReader, frames: int) -> dict[str, Any]:
    """The snapshot's `power` entry from a reader's latest sample and energy."""
    sample = reader.latest
    energy_mj = reader.energy_mj
    return {
        "power_mw": sample.power_mw if sample else None,
        "gpu_load_pct": sample.gpu_load_pct if sample else None,
        "temperatures_c": dict(sample.temperatures_c) if sample else {},
        "energy_mj": energy_mj,
        "energy_mj_per_frame": energy_mj / frames if energy_mj is not None and frames else None,
    }


def format_table(snapshot: dict[str, Any]) -> str:
    """A snapshot as a table: one row per stage, end to end and per stream (ms), then FPS,
    drops, errors and power."""
    rows = [(name, stats) for name, stats in snapshot["stages"].items()]
    rows.append(("e2e", snapshot["e2e"]))
    rows += [(f"e2e {stream_id}", s["e2e"]) for stream_id, s in snapshot["streams"].items()]
    width = max(14, *(len(name) + 2 for name, _ in rows))
    columns = [key.removesuffix("_ms") for key in SUMMARY_KEYS]
    lines = [f"{'(ms)':<{width}}" + "".join(f"{column:>10}" for column in columns)]
    for name, stats in rows:
        cells = [f"{stats['count']:>10}"] + [
            f"{stats[key]:>10.3f}" if stats[key] is not None else f"{'-':>10}"
            for key in SUMMARY_KEYS[1:]
        ]
        lines.append(f"{name:<{width}}" + "".join(cells))
    per_stream = ", ".join(f"{sid} {s['fps']:.1f}" for sid, s in snapshot["streams"].items())
    lines.append(
        f"processed: {snapshot['frames']} frames in {snapshot['run_s']:.2f} s, "
        f"{snapshot['total_fps']:.1f} fps" + (f" ({per_stream})" if per_stream else "")
    )
    drops = [f"{sid} {_counts(s['drops'])}" for sid, s in snapshot["streams"].items() if s["drops"]]
    lines.append(f"drops: {'; '.join(drops) or 'none'}")
    lines.append(f"errors: {_counts(snapshot['errors'])}")
    if snapshot["power"] is not None:
        lines.append(f"power: {_power_text(snapshot['power'])}")
    return "\n".join(lines)


def _counts(by_reason: dict[str, int]) -> str:
    """`{"stale": 3, "sink_full": 1}` → `4 (sink_full 1, stale 3)`; `0` when empty."""
    if not by_reason:
        return "0"
    detail = ", ".join(f"{reason} {n}" for reason, n in sorted(by_reason.items()))
    return f"{sum(by_reason.values())} ({detail})"


def _power_text(power: dict[str, Any]) -> str:
    parts = []
    if power["power_mw"] is not None:
        parts.append(f"{power['power_mw']} mW")
    # The GPU sensor, not the hottest one: Xavier and Nano print a fixed `PMIC@100C`.
    gpu = [f"{power['gpu_load_pct']}%"] if power["gpu_load_pct"] is not None else []
    if "gpu" in power["temperatures_c"]:
        gpu.append(f"{power['temperatures_c']['gpu']:.1f} C")
    if gpu:
        parts.append("GPU " + " ".join(gpu))
    if power["energy_mj_per_frame"] is not None:
        parts.append(f"{power['energy_mj_per_frame']:.1f} mJ/frame")
    return ", ".join(parts) or "no tegrastats sample"
