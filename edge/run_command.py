"""`jetkit run SOURCE… --model M`: the streaming pipeline in the foreground, a log line per stream
every few seconds, the latency table at the end and, with --summary, the metrics as JSON.

Everything that can fail at start-up (model, sources, sinks, options) fails before the first
frame, as `jetkit: error: …`. Ctrl-C (or SIGTERM) ends a run the normal way: capture stops, the
frames in flight are finished, the table is printed. A file source (a video, a folder of stills)
that ends without giving a single frame fails the run: exit status 1. Only argparse at import
time.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import time
from pathlib import Path
from typing import Any

from edge.cli import stderr_log

DEFAULT_SOURCE = "test://"
# After stop: how long the frames in flight may take before the run gives up on them.
DRAIN_TIMEOUT_S = 10.0


def _run(args: argparse.Namespace) -> int:
    from edge.analytics.bytetrack import TrackerConfig
    from edge.analytics.motion import MotionConfig
    from edge.analytics.stream import AnalyticsConfig, run_at_tracker_threshold
    from edge.atomic import write_text_atomic
    from edge.detector import Detector
    from edge.errors import JetkitError
    from edge.metrics import TegrastatsReader
    from edge.pipeline import PipelineConfig, backend_options, open_pipeline

    for option, seconds in (("--duration", args.duration), ("--log-interval", args.log_interval)):
        if seconds is not None and not 0 < seconds < math.inf:
            raise JetkitError(f"{option} must be a finite number of seconds > 0, got {seconds}")
    options = backend_options(args.model, args.backend, args.threads)
    thresholds = {k: v for k, v in (("conf", args.conf), ("iou", args.iou)) if v is not None}
    detector = Detector.open(
        args.model, backend=args.backend, backend_options=options, **thresholds
    )
    if args.motion and not args.track:
        raise JetkitError("--motion holds tracks while nothing moves: give --track too")
    analytics = None
    if args.track:
        motion = MotionConfig() if args.motion else None
        analytics = AnalyticsConfig(tracker=TrackerConfig(), motion=motion)
    report_conf = run_at_tracker_threshold(detector, analytics)
    config = PipelineConfig(
        max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, max_frames=args.max_frames,
        analytics=analytics, report_conf=report_conf,
    )  # fmt: skip
    pipeline = open_pipeline(
        args.sources or [DEFAULT_SOURCE], args.sink or [], detector, config, log=stderr_log
    )
    metrics = pipeline.metrics
    stderr_log(
        f"running {Path(args.model).name} on {len(pipeline.sources)} stream(s), batch up to "
        f"{pipeline.max_batch}; Ctrl-C to stop"
    )
    power = TegrastatsReader()  # on a Jetson: board power, GPU load, temperatures
    if power.start():
        metrics.attach_power(power)
    with _stop_on_sigterm(pipeline):
        pipeline.start()
        _wait(pipeline, metrics, args.duration, args.log_interval)
    if not pipeline.wait(DRAIN_TIMEOUT_S):
        stderr_log(f"frames still in flight after {DRAIN_TIMEOUT_S:.0f} s were abandoned")
    power.stop()
    detector.close()
    print(metrics.format_table())
    if args.summary:
        write_text_atomic(Path(args.summary), json.dumps(metrics.summary(), indent=2) + "\n")
    return _report_empty_streams(pipeline)


def _report_empty_streams(pipeline: Any) -> int:
    """1, after a line per stream, where a source ended without a single frame; else 0."""
    from edge.redact import redact

    sources = dict(pipeline.sources)
    for stream_id in pipeline.empty_streams:
        stderr_log(
            f"jetkit: error: source {redact(sources[stream_id].uri)!r} (stream {stream_id}) "
            "ended without a readable frame; nothing of it was processed"
        )
    return 1 if pipeline.empty_streams else 0


def _wait(pipeline: Any, metrics: Any, duration_s: float | None, log_interval_s: float) -> None:
    """Until the sources end, the duration passes, --max-frames are delivered or Ctrl-C; then
    stop capture."""
    started = time.monotonic()
    next_log = started + log_interval_s
    try:
        while not pipeline.wait(0.1):
            now = time.monotonic()
            if duration_s is not None and now - started >= duration_s:
                break
            if now >= next_log:
                for line in metrics.log_lines():
                    stderr_log(line)
                next_log = now + log_interval_s
    except KeyboardInterrupt:
        stderr_log("stopping: finishing the frames in flight")
    pipeline.stop()


class _stop_on_sigterm:
    """SIGTERM stops the run like Ctrl-C (where this is the main thread)."""

    def __init__(self, pipeline: Any) -> None:
        self._pipeline = pipeline
        self._previous: Any = None

    def __enter__(self) -> None:
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread (a test calling main() from one)
            self._previous = None

    def _handle(self, _signum: int, _frame: Any) -> None:
        stderr_log("stopping (SIGTERM): finishing the frames in flight")
        self._pipeline.stop()

    def __exit__(self, *_exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def register_run(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a model on camera/video/stream sources in the foreground",
        description="Capture → batch across streams → preprocess → infer → NMS → sinks, each "
        "stage a thread. Live sources keep only the newest frame (drops are counted); files are "
        "read in full. Prints a log line per stream every --log-interval seconds and the latency "
        "table at the end.",
    )
    parser.add_argument(
        "sources",
        nargs="*",
        metavar="SOURCE",
        help="csi://N, v4l2:///dev/videoN, rtsp://…, a file path or file://…, images://DIR, "
        "test://?size=1280x720&fps=30, gst://<pipeline ending in appsink> (default: test://)",
    )
    parser.add_argument("--model", required=True, help="ONNX model or TensorRT engine")
    parser.add_argument(
        "--sink",
        action="append",
        metavar="URI",
        help="where results go: jsonl://PATH or - for stdout (repeatable; default: none)",
    )
    parser.add_argument("--duration", type=float, help="stop after S seconds")
    parser.add_argument("--max-frames", type=int, help="stop after N results are delivered")
    parser.add_argument("--summary", metavar="FILE", help="write the metrics as JSON at exit")
    parser.add_argument("--max-batch", type=int, help="frames per inference (default: model's)")
    parser.add_argument(
        "--max-wait-ms",
        type=float,
        default=5.0,
        help="how long a batch waits for frames of other streams (default 5)",
    )
    parser.add_argument("--conf", type=float, help="confidence threshold (default: manifest)")
    parser.add_argument(
        "--track",
        action="store_true",
        help="track objects (ByteTrack): results carry track_id, the overlay a trail; the "
        "detector then runs at the tracker's low threshold and --conf filters untracked boxes",
    )
    parser.add_argument(
        "--motion",
        action="store_true",
        help="with --track: run the detector only where something moved (a crop of it, or not "
        "at all while nothing moves; the whole frame every 5 s); tracks hold meanwhile",
    )
    parser.add_argument("--iou", type=float, help="NMS IoU threshold (default: manifest)")
    parser.add_argument("--backend", choices=("onnxruntime", "tensorrt"))
    parser.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads")
    parser.add_argument(
        "--log-interval", type=float, default=5.0, help="seconds between log lines (default 5)"
    )
    parser.set_defaults(handler=_run)
