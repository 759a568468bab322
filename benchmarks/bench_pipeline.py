"""Streaming pipeline benchmark: file throughput against `jetkit bench` and a naive loop, latency
under overload, the number of 15 FPS streams sustained, and the memory of `jetkit run`.

Model (`--model`; default the blob sample detector, `edge.samples.build_blob_detector` at
640×640 with a dynamic batch up to 8, written to `--out`): ONNX Runtime CPU provider, 2 intra-op
threads. Every pipeline is `edge.pipeline.Pipeline` with the `PipelineConfig` defaults of
`jetkit run` except the max batch, and a `jsonl:///dev/null` sink (each frame serialised and
written, as the naive loop does). Sections (`--sections`, all by default):

throughput: a 300-frame 1280×720 MJPG .avi of `draw_blob_scene` scenes (boxes moving as in
  `test://`), written once per run to `--out`, read through the source `jetkit run` picks for a
  file (GStreamer where it imports, else OpenCV). Per batch (1, and the model's max batch):
  - model: `edge.bench.run_bench(...)["throughput_fps"]`, what `jetkit bench --batch B` prints
    (200 ms warm-up, then at least 3 s of `backend.infer` on one preprocessed input);
  - pipeline: the file through the pipeline, frames / seconds from `start()` until drained
    (sources opened before; a file stream never waits for others, so batches are what its read-
    ahead queue holds: the table gives the mean batch), in the stage layout `jetkit run` picks
    (`PipelineConfig.overlap` None: one worker thread for preprocess → infer → postprocess when
    ONNX Runtime runs on the CPU);
  - overlapped: the same with a thread per stage (what a GPU backend gets);
  - naive (batch 1 only): the same file, one frame at a time: `read` (same source class) →
    `detector.preprocess` → `infer` → `postprocess` → the JSON line sink, timed from the first
    read to the last write.
  All candidates alternate (order flipping every repeat); medians over `--repeats`. Ratios are
  medians of the per-repeat ratios. Goal: pipeline/model ≥ 0.9 at the same batch.
overload: one `test://` stream at 3× the model's batch-1 throughput (measured first with
  `run_bench`, 1 s) for `--overload-s`, through three candidates in turn: the pipeline (layout
  as `jetkit run` picks), the pipeline overlapped (a thread per stage), and a naive anchor (a
  capture thread keeping the newest frame, one loop: preprocess → infer → postprocess → sink).
  End-to-end latency per frame from a recording sink (`Result.latency_ms`: capture →
  delivered); the sum of the stage medians from `PipelineMetrics.snapshot()` (queue wait,
  preprocess, infer, postprocess, sink: every stage between capture and delivery), for the
  naive loop from its own timings of the same stages. Goals (for the pipeline): p99 ≤ 1.5× that
  sum, and p99 not growing: reported per third of the run (by delivery order); "growing" here
  means the last third's p99 above 1.25× the first's (a tolerance for this shared machine, not
  the issue's).
streams: N `test://?fps=15` streams (1280×720) for `--stream-s` after a 2 s warm-up; sustained
  when every stream's processed FPS over that window is ≥ 0.95×15 and its drops ≤ 5% of its
  frames. N doubles from 1 until it fails (at most 64), then bisects. With cross-stream batching
  (max batch = the model's) and without (max batch 1; only this when the model's max is 1),
  each in both stage layouts.
memory: `jetkit run test://?fps=15 test://?fps=15 --model M --threads 2 --duration S` as a
  subprocess, on the demo student of `bench_distill.py` when it exists (the issue's model for
  this goal), else the section model. VmRSS from /proc/<pid>/status every second: after a 10 s
  warm-up (counted from the "running" line), at the end of `--soak-s`, and the maximum. Goals:
  RSS ≤ 200 MB, growth (end − warm-up) ≤ 5%.

Timings are never asserted. Exit 1 only when the pipeline or the naive loop did not deliver
every frame of the file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from _common import environment, finish, median, report, table

from edge.bench import BenchConfig, run_bench
from edge.detector import Detector
from edge.metrics import PipelineMetrics
from edge.metrics.stats import summarize_ms
from edge.pipeline import LatestSlot, Pipeline, PipelineConfig, backend_options
from edge.samples import build_blob_detector, draw_blob_scene
from edge.sinks import Result, Sink, open_sink
from edge.sources import Frame, open_source, open_streams
from edge.sources.synthetic import blob_boxes

SECTIONS = ("throughput", "overload", "streams", "memory")
THREADS = 2
BACKEND_OPTIONS = {"threads": THREADS, "providers": ["CPUExecutionProvider"]}
DEMO_STUDENT = Path("runs/bench_distill/demo/distilled-0/onnx/model.onnx")
BLOB_INPUT_HW = (640, 640)
BLOB_MAX_BATCH = 8
NULL_SINK = "jsonl:///dev/null"
# Far more than any run here needs, even on a loaded machine: past it a run counts as hung.
DRAIN_TIMEOUT_S = 120.0

VIDEO_FRAMES = 300
VIDEO_WH = (1280, 720)
VIDEO_FPS = 30.0
# `jetkit bench`'s defaults; the stage loop (not part of the throughput) cut to 10 calls.
MODEL_LOOP = BenchConfig(warmup_ms=200.0, iterations=10, duration_s=3.0, stage_iterations=10)
MIN_MODEL_RATIO = 0.9

OVERLOAD_FACTOR = 3.0
OVERLOAD_PROBE = dataclasses.replace(MODEL_LOOP, batch=1, duration_s=1.0)
OVERLOAD_STAGES = ("queue_wait", "preprocess", "infer", "postprocess", "sink")
MAX_P99_OVER_STAGES = 1.5
MAX_THIRD_GROWTH = 1.25

STREAM_FPS = 15.0
MIN_FPS_FRACTION = 0.95
MAX_DROP_FRACTION = 0.05
MAX_STREAMS = 64
STREAM_WARMUP_S = 2.0

MEMORY_STREAMS = 2
MEMORY_WARMUP_S = 10.0
RSS_SAMPLE_S = 1.0
MAX_RSS_MB = 200.0
MAX_RSS_GROWTH = 0.05


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", help="ONNX model for throughput, overload, streams (default: blob sample)"
    )
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated, of {','.join(SECTIONS)} (default: all)",
    )
    parser.add_argument("--repeats", type=int, default=5, help="throughput repeats (default 5)")
    parser.add_argument("--overload-s", type=float, default=60.0, help="overload run (default 60)")
    parser.add_argument("--stream-s", type=float, default=8.0, help="per stream count (default 8)")
    parser.add_argument("--soak-s", type=float, default=600.0, help="memory soak (default 600)")
    parser.add_argument("--out", default="runs/bench_pipeline", help="video, model and logs")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    args = parser.parse_args()
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown or not args.sections:
        parser.error(f"--sections takes {','.join(SECTIONS)}; got {unknown or 'none'}")
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    for name in ("overload_s", "stream_s", "soak_s"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be > 0")
    return args


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def open_detector(path: Path, in_pipeline: bool = False) -> Detector:
    """As `jetkit bench` opens the model, or (`in_pipeline`) as `jetkit run` does: the same
    threads, ONNX Runtime's idle threads not spinning (`edge.pipeline.backend_options`)."""
    options = dict(BACKEND_OPTIONS)
    if in_pipeline:
        options |= backend_options(path, None, THREADS)
    return Detector.open(path, backend_options=options)


def describe(path: Path, detector: Detector) -> str:
    spec = detector.manifest.input
    batch = f"dynamic batch <= {spec.max_batch}" if spec.dynamic_batch else f"batch {spec.shape[0]}"
    return f"{path} ({spec.size_hw[0]}x{spec.size_hw[1]}, {batch})"


def make_pipeline(
    uris: Sequence[str],
    detector: Detector,
    sinks: Sequence[Sink],
    max_batch: int,
    overlap: bool | None = None,
) -> tuple[Pipeline, PipelineMetrics, list[Any]]:
    """A pipeline over freshly opened sources (returned too, for their counters), not started;
    `overlap` None: the layout `jetkit run` picks."""
    streams = open_streams(uris)
    metrics = PipelineMetrics([stream_id for stream_id, _ in streams])
    config = PipelineConfig(max_batch=max_batch, overlap=overlap)
    pipeline = Pipeline(streams, detector, [*sinks, open_sink(NULL_SINK)], metrics, config)
    return pipeline, metrics, [source for _, source in streams]


def finish_pipeline(pipeline: Pipeline) -> None:
    """Stop capture, wait for the drain and the threads: the next run gets the cores to itself."""
    pipeline.stop()
    if not pipeline.wait(DRAIN_TIMEOUT_S):
        raise RuntimeError(f"the pipeline did not drain within {DRAIN_TIMEOUT_S:.0f} s")
    pipeline.join(DRAIN_TIMEOUT_S)


def mean_batch(snapshot: dict[str, Any], since: dict[str, Any] | None = None) -> float:
    """Frames per inference, over the run or since an earlier snapshot."""
    infer = snapshot["stages"]["infer"]
    earlier = since["stages"]["infer"] if since else {"frames": 0, "count": 0}
    calls = infer["count"] - earlier["count"]
    return (infer["frames"] - earlier["frames"]) / calls if calls else 0.0


# --- throughput ------------------------------------------------------------------------------


def write_video(path: Path) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), VIDEO_FPS, VIDEO_WH)
    if not writer.isOpened():
        sys.exit(f"OpenCV cannot write an MJPG video to {path}")
    try:
        for index in range(VIDEO_FRAMES):
            writer.write(draw_blob_scene(VIDEO_WH, blob_boxes(VIDEO_WH, index, seed=0)))
    finally:
        writer.release()


def model_run(detector: Detector, batch: int) -> dict[str, float]:
    result = run_bench(detector, dataclasses.replace(MODEL_LOOP, batch=batch))
    return {"fps": result["throughput_fps"]}


def file_pipeline_run(
    detector: Detector, video: Path, batch: int, overlap: bool | None = None
) -> dict[str, float]:
    pipeline, metrics, _ = make_pipeline([str(video)], detector, [], batch, overlap)
    started = time.perf_counter()
    pipeline.start()
    # Not finish_pipeline: stop() would end capture before the file is read to its end.
    if not pipeline.wait(DRAIN_TIMEOUT_S):
        raise RuntimeError(f"the file pipeline did not finish within {DRAIN_TIMEOUT_S:.0f} s")
    elapsed_s = time.perf_counter() - started
    pipeline.join(DRAIN_TIMEOUT_S)
    snapshot = metrics.snapshot()
    return {
        "fps": pipeline.delivered / elapsed_s,
        "frames": pipeline.delivered,
        "mean_batch": mean_batch(snapshot),
        "errors": sum(snapshot["errors"].values()),
    }


def naive_run(detector: Detector, video: Path) -> dict[str, float]:
    source = open_source(str(video))
    sink = open_sink(NULL_SINK)
    frames = 0
    try:
        started = time.perf_counter()
        while (image := source.read()) is not None:
            frame = Frame("s0", frames, time.monotonic(), time.time(), image)
            tensor, transforms = detector.preprocess([image])
            detections = detector.postprocess(detector.infer(tensor), transforms)[0]
            sink.write(Result(frame, detections, time.time()))
            frames += 1
        elapsed_s = time.perf_counter() - started
    finally:
        source.close()
        sink.close()
    return {"fps": frames / elapsed_s, "frames": frames}


def alternating(
    runs: dict[str, Callable[[], dict[str, float]]], repeats: int
) -> dict[str, list[dict[str, float]]]:
    """Each run once per repeat, the order reversed on odd repeats; every run reports its own
    rate. Not `_common.interleaved`: a call's wall time would count the model loop's warm-up and
    stage loop, and the opening of the file, which the rates leave out."""
    names = list(runs)
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for rep in range(repeats):
        for name in names if rep % 2 == 0 else names[::-1]:
            samples[name].append(runs[name]())
            log(f"throughput repeat {rep + 1}/{repeats}: {name} {samples[name][-1]['fps']:.1f} fps")
    return samples


def warm_up(detector: Detector, video: Path, batches: Sequence[int]) -> str:
    """Each batch size through the session once and the file source opened once (GStreamer
    loads its plugins on the first open), so that the first repeat is not the slow one.
    Returns the source's class name."""
    source = open_source(str(video))
    image = source.read()
    source.close()
    assert image is not None, f"{video} has no frames"
    for batch in batches:
        detector.detect_batch([image] * batch)
    return type(source).__name__


def throughput(
    detector: Detector, pipelined: Detector, out_dir: Path, repeats: int
) -> dict[str, Any]:
    video = out_dir / "blob_scenes_1280x720.avi"
    write_video(video)
    batches = sorted({1, detector.max_batch})
    source_class = warm_up(detector, video, batches)
    warm_up(pipelined, video, batches)
    runs: dict[str, Callable[[], dict[str, float]]] = {"naive": lambda: naive_run(detector, video)}
    for batch in batches:
        runs[f"model b{batch}"] = lambda b=batch: model_run(detector, b)
        runs[f"pipeline b{batch}"] = lambda b=batch: file_pipeline_run(pipelined, video, b)
        runs[f"overlapped b{batch}"] = lambda b=batch: file_pipeline_run(pipelined, video, b, True)
    samples = alternating(runs, repeats)
    rows = []
    for batch in batches:
        model, piped = samples[f"model b{batch}"], samples[f"pipeline b{batch}"]
        overlapped = samples[f"overlapped b{batch}"]
        rows.append(
            {
                "batch": batch,
                "model_fps": median([s["fps"] for s in model]),
                "pipeline_fps": median([s["fps"] for s in piped]),
                "overlapped_fps": median([s["fps"] for s in overlapped]),
                "naive_fps": median([s["fps"] for s in samples["naive"]]),
                "pipeline_over_model": median(
                    [p["fps"] / m["fps"] for p, m in zip(piped, model, strict=True)]
                ),
                "pipeline_over_naive": median(
                    [p["fps"] / n["fps"] for p, n in zip(piped, samples["naive"], strict=True)]
                ),
                "mean_batch": median([s["mean_batch"] for s in piped]),
                "pipeline_frames": sorted({int(s["frames"]) for s in piped + overlapped}),
                "pipeline_errors": sum(int(s["errors"]) for s in piped + overlapped),
            }
        )
    naive_frames = sorted({int(s["frames"]) for s in samples["naive"]})
    complete = naive_frames == [VIDEO_FRAMES] and all(
        r["pipeline_frames"] == [VIDEO_FRAMES] and r["pipeline_errors"] == 0 for r in rows
    )
    return {
        "video": str(video),
        "source": source_class,
        "rows": rows,
        "naive_frames": naive_frames,
        "all_frames_delivered": complete,
        "samples": samples,
    }


def format_throughput(result: dict[str, Any], model: str, repeats: int) -> str:
    head = (
        f"throughput: {model}; {VIDEO_FRAMES}-frame {VIDEO_WH[0]}x{VIDEO_WH[1]} MJPG file through "
        f"{result['source']}; medians of {repeats} alternating repeats (goal: pipeline/model >= "
        f"{MIN_MODEL_RATIO}; pipeline: the stage layout jetkit run picks, one worker thread on "
        "the CPU; overlapped: a thread per stage; naive loop at batch 1)"
    )
    rows = [
        [
            r["batch"],
            f"{r['model_fps']:.1f}",
            f"{r['pipeline_fps']:.1f}",
            f"{r['pipeline_over_model']:.2f}",
            r["pipeline_over_model"] >= MIN_MODEL_RATIO,
            f"{r['overlapped_fps']:.1f}",
            f"{r['naive_fps']:.1f}",
            f"{r['pipeline_over_naive']:.2f}x",
            f"{r['mean_batch']:.2f}",
            "/".join(map(str, r["pipeline_frames"]))
            + f" / {'/'.join(map(str, result['naive_frames']))}",
        ]
        for r in result["rows"]
    ]
    return (
        head
        + "\n\n"
        + table(
            [
                "batch",
                "model fps",
                "pipeline fps",
                "pipeline/model",
                "goal met",
                "overlapped fps",
                "naive fps",
                "pipeline/naive",
                "mean batch",
                "frames pipeline / naive",
            ],
            rows,
        )
    )


# --- overload --------------------------------------------------------------------------------


class LatencyRecorder:
    """A sink keeping each delivered frame's end-to-end latency, in delivery order."""

    uri = "bench://latency"

    def __init__(self) -> None:
        self.latencies_ms: list[float] = []

    def write(self, result: Result) -> None:
        self.latencies_ms.append(result.latency_ms)

    def close(self) -> None:
        pass


def latency_row(latencies_ms: Sequence[float]) -> dict[str, float]:
    stats = summarize_ms(latencies_ms)  # the library's percentile rule, as the metrics use
    return {
        "frames": len(latencies_ms),
        "p50_ms": stats["median"],
        "p99_ms": stats["p99"],
        "max_ms": stats["max"],
    }


OVERLOAD_CANDIDATES = ("pipeline", "overlapped", "naive")


def overload_pipeline_run(
    detector: Detector, uri: str, duration_s: float, overlap: bool | None
) -> dict[str, Any]:
    recorder = LatencyRecorder()
    pipeline, metrics, sources = make_pipeline(
        [uri], detector, [recorder], detector.max_batch, overlap
    )
    pipeline.start()
    time.sleep(duration_s)
    finish_pipeline(pipeline)
    snapshot = metrics.snapshot()
    (stream,) = snapshot["streams"].values()
    return {
        "latencies_ms": recorder.latencies_ms,
        "stage_p50_ms": {stage: snapshot["stages"][stage]["p50_ms"] for stage in OVERLOAD_STAGES},
        "processed_fps": stream["fps"],
        "drops": stream["drops"],
        "source_skipped_frames": getattr(sources[0], "skipped_frames", None),
        "errors": snapshot["errors"],
        "mean_batch": mean_batch(snapshot),
    }


def overload_naive_run(detector: Detector, uri: str, duration_s: float) -> dict[str, Any]:
    """The anchor: a capture thread keeping the newest frame (as the pipeline's live inbox does)
    and one loop taking it → preprocess → infer → postprocess → the JSON line sink."""
    source = open_source(uri)
    inbox, stop, arrived = LatestSlot(), threading.Event(), threading.Condition()
    sink = open_sink(NULL_SINK)

    def capture() -> None:
        index = 0
        while not stop.is_set() and (image := source.read()) is not None:
            inbox.put(Frame("s0", index, time.monotonic(), time.time(), image))
            index += 1
            with arrived:
                arrived.notify()

    capturing = threading.Thread(target=capture, daemon=True)
    capturing.start()
    stage_ms: dict[str, list[float]] = {stage: [] for stage in OVERLOAD_STAGES}
    latencies_ms: list[float] = []
    deadline = time.monotonic() + duration_s
    try:
        while time.monotonic() < deadline:
            with arrived:
                while (frame := inbox.take()) is None:
                    arrived.wait(0.05)
            times = [time.monotonic()]
            tensor, transforms = detector.preprocess([frame.image_bgr])
            times.append(time.monotonic())
            outputs = detector.infer(tensor)
            times.append(time.monotonic())
            detections = detector.postprocess(outputs, transforms)[0]
            times.append(time.monotonic())
            result = Result(frame, detections, time.time())
            sink.write(result)
            times.append(time.monotonic())
            latencies_ms.append(result.latency_ms)
            stage_ms["queue_wait"].append((times[0] - frame.capture_monotonic_s) * 1e3)
            for stage, begin, end in zip(OVERLOAD_STAGES[1:], times[:-1], times[1:], strict=True):
                stage_ms[stage].append((end - begin) * 1e3)
    finally:
        stop.set()
        source.close()
        capturing.join(DRAIN_TIMEOUT_S)
        sink.close()
    return {
        "latencies_ms": latencies_ms,
        "stage_p50_ms": {stage: summarize_ms(ms)["median"] for stage, ms in stage_ms.items()},
        "processed_fps": len(latencies_ms) / duration_s,
        "source_skipped_frames": getattr(source, "skipped_frames", None),
    }


def overload(detector: Detector, pipelined: Detector, duration_s: float) -> dict[str, Any]:
    model_fps = run_bench(detector, OVERLOAD_PROBE)["throughput_fps"]
    source_fps = round(OVERLOAD_FACTOR * model_fps)
    uri = f"test://?fps={source_fps}"
    runs = {
        "pipeline": lambda: overload_pipeline_run(pipelined, uri, duration_s, None),
        "overlapped": lambda: overload_pipeline_run(pipelined, uri, duration_s, True),
        "naive": lambda: overload_naive_run(pipelined, uri, duration_s),
    }
    candidates = {}
    for name, run in runs.items():
        log(f"overload: {name} ...")
        run_result = run()
        latencies_ms = run_result.pop("latencies_ms")
        stage_sum_ms = sum(run_result["stage_p50_ms"].values())
        whole = latency_row(latencies_ms)
        thirds = [latency_row(part.tolist()) for part in np.array_split(latencies_ms, 3)]
        candidates[name] = run_result | {
            "stage_sum_ms": stage_sum_ms,
            "whole": whole,
            "thirds": thirds,
            "p99_over_stage_sum": whole["p99_ms"] / stage_sum_ms,
            "last_over_first_third_p99": thirds[-1]["p99_ms"] / thirds[0]["p99_ms"],
        }
    return {
        "model_fps": model_fps,
        "source_fps": source_fps,
        "duration_s": duration_s,
        "candidates": candidates,
    }


def format_overload(result: dict[str, Any], model: str) -> str:
    head = (
        f"overload: {model}; one test:// stream at {result['source_fps']} fps (3x the model's "
        f"{result['model_fps']:.0f} fps at batch 1) for {result['duration_s']:g} s per candidate "
        f"(goals, for the pipeline: e2e p99 <= {MAX_P99_OVER_STAGES}x the sum of its stage "
        f"medians; last third's p99 <= {MAX_THIRD_GROWTH}x the first's). pipeline: the layout "
        "jetkit run picks (one worker thread on the CPU); overlapped: a thread per stage; naive: "
        "a capture thread keeping the newest frame and one sequential loop"
    )
    rows = []
    for name, run in result["candidates"].items():
        parts = [("whole run", run["whole"])] + [
            (f"third {k + 1}", row) for k, row in enumerate(run["thirds"])
        ]
        for part, row in parts:
            rows.append(
                [
                    name if part == "whole run" else "",
                    part,
                    row["frames"],
                    row["p50_ms"],
                    row["p99_ms"],
                    row["max_ms"],
                    f"{row['p99_ms'] / run['stage_sum_ms']:.2f}",
                ]
            )
    body = table(
        [
            "candidate",
            "part",
            "frames",
            "e2e p50 ms",
            "e2e p99 ms",
            "e2e max ms",
            "p99 / stage sum",
        ],
        rows,
    )
    lines = [head, "", body, ""]
    for name, run in result["candidates"].items():
        ratio = run["p99_over_stage_sum"]
        growth = run["last_over_first_third_p99"]
        stages = " + ".join(f"{stage} {ms:.2f}" for stage, ms in run["stage_p50_ms"].items())
        lines.append(f"{name}: stage medians (ms) {stages} = {run['stage_sum_ms']:.2f}")
        lines.append(
            f"  p99 / stage sum {ratio:.2f} (<= {MAX_P99_OVER_STAGES}: "
            f"{'yes' if ratio <= MAX_P99_OVER_STAGES else 'no'}); p99 third 3 / third 1 "
            f"{growth:.2f} (growing: {'yes' if growth > MAX_THIRD_GROWTH else 'no'}); processed "
            f"{run['processed_fps']:.1f} fps; frames the source skipped "
            f"{run['source_skipped_frames']}"
            + (
                f"; mean batch {run['mean_batch']:.2f}, drops "
                + (", ".join(f"{k} {v}" for k, v in run["drops"].items()) or "none")
                + f", errors {run['errors'] or 'none'}"
                if "drops" in run
                else ""
            )
        )
    return "\n".join(lines)


# --- streams ---------------------------------------------------------------------------------


def stream_trial(
    detector: Detector, count: int, max_batch: int, window_s: float, overlap: bool | None = None
) -> dict[str, Any]:
    """`count` 15 FPS streams; each stream's processed FPS and drop share over `window_s`
    after the warm-up (differences of two snapshots, so the start-up does not count)."""
    pipeline, metrics, _ = make_pipeline(
        [f"test://?fps={STREAM_FPS:g}"] * count, detector, [], max_batch, overlap
    )
    pipeline.start()
    try:
        time.sleep(STREAM_WARMUP_S)
        before = metrics.snapshot()
        time.sleep(window_s)
        after = metrics.snapshot()
    finally:
        finish_pipeline(pipeline)
    elapsed_s = after["uptime_s"] - before["uptime_s"]
    fps, drop_shares = [], []
    for stream_id, stream in after["streams"].items():
        frames = stream["frames"] - before["streams"][stream_id]["frames"]
        drops = sum(stream["drops"].values()) - sum(before["streams"][stream_id]["drops"].values())
        fps.append(frames / elapsed_s)
        drop_shares.append(drops / (frames + drops) if frames + drops else 1.0)
    sustained = min(fps) >= MIN_FPS_FRACTION * STREAM_FPS and max(drop_shares) <= MAX_DROP_FRACTION
    result = {
        "streams": count,
        "max_batch": max_batch,
        "min_fps": min(fps),
        "max_drop_share": max(drop_shares),
        "mean_batch": mean_batch(after, since=before),
        "errors": sum(after["errors"].values()),
        "sustained": sustained,
    }
    log(f"streams: {count} at max batch {max_batch}: min {min(fps):.1f} fps, sustained {sustained}")
    return result


def largest_sustained(trial: Callable[[int], dict[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
    """Double N from 1 until a trial fails (or MAX_STREAMS passes), then bisect."""
    trials: list[dict[str, Any]] = []

    def passes(count: int) -> bool:
        trials.append(trial(count))
        return bool(trials[-1]["sustained"])

    passed, failed, count = 0, None, 1
    while count <= MAX_STREAMS:
        if not passes(count):
            failed = count
            break
        passed, count = count, count * 2
    while failed is not None and failed - passed > 1:
        middle = (passed + failed) // 2
        if passes(middle):
            passed = middle
        else:
            failed = middle
    return passed, trials


def streams(detector: Detector, window_s: float) -> dict[str, Any]:
    modes = sorted({detector.max_batch, 1}, reverse=True)
    searches = []
    for max_batch in modes:
        for layout, overlap in (("pipeline", None), ("overlapped", True)):
            best, trials = largest_sustained(
                lambda n, b=max_batch, o=overlap: stream_trial(detector, n, b, window_s, o)
            )
            searches.append(
                {
                    "max_batch": max_batch,
                    "layout": layout,
                    "largest_sustained": best,
                    "trials": [t | {"layout": layout} for t in trials],
                }
            )
    return {"window_s": window_s, "searches": searches}


def format_streams(result: dict[str, Any], model: str) -> str:
    head = (
        f"streams: {model}; test://?fps={STREAM_FPS:g} (1280x720) streams, {result['window_s']:g} s "
        f"per count after {STREAM_WARMUP_S:g} s warm-up (sustained: every stream >= "
        f"{MIN_FPS_FRACTION * STREAM_FPS:.2f} fps and drops <= {MAX_DROP_FRACTION:.0%})"
    )
    summary = table(
        ["batching", "max batch", "layout", "largest sustained"],
        [
            [
                "cross-stream" if s["max_batch"] > 1 else "none",
                s["max_batch"],
                s["layout"],
                f">= {MAX_STREAMS}"
                if s["largest_sustained"] == MAX_STREAMS
                else s["largest_sustained"],
            ]
            for s in result["searches"]
        ],
    )
    trials = table(
        [
            "max batch",
            "layout",
            "streams",
            "min fps",
            "max drop share",
            "mean batch",
            "errors",
            "sustained",
        ],
        [
            [
                t["max_batch"],
                t["layout"],
                t["streams"],
                f"{t['min_fps']:.2f}",
                f"{t['max_drop_share']:.1%}",
                f"{t['mean_batch']:.2f}",
                t["errors"],
                t["sustained"],
            ]
            for s in result["searches"]
            for t in s["trials"]
        ],
    )
    notes = (
        "\n(pipeline: the layout jetkit run picks, one worker thread on the CPU; overlapped: a "
        "thread per stage)"
        + ("" if len(result["searches"]) > 2 else "\n(the model's max batch is 1: no batching)")
    )
    return f"{head}\n\n{summary}{notes}\n\ntrials, in order:\n{trials}"


# --- memory ----------------------------------------------------------------------------------


def status_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in kB (empty once it has gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return {}
    return {
        key: int(value.split()[0])
        for key, _, value in (line.partition(":") for line in lines)
        if key in ("VmRSS", "VmHWM")
    }


def memory(model: Path, soak_s: float, out_dir: Path) -> dict[str, Any]:
    """Sample `jetkit run`'s RSS every second; t = 0 when it logs that it is running."""
    log_path, summary_path = out_dir / "memory_run.log", out_dir / "memory_summary.json"
    command = [
        str(Path(sys.executable).with_name("jetkit")),
        "run",
        *[f"test://?fps={STREAM_FPS:g}"] * MEMORY_STREAMS,
        "--model",
        str(model),
        "--threads",
        str(THREADS),
        "--duration",
        f"{MEMORY_WARMUP_S + soak_s:g}",
        "--summary",
        str(summary_path),
    ]
    samples: list[tuple[float, float]] = []  # (s since running, RSS MB)
    with open(log_path, "w", encoding="utf-8") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
        running_at: float | None = None
        hwm_kb = 0
        deadline = time.monotonic() + MEMORY_WARMUP_S + soak_s + DRAIN_TIMEOUT_S
        while process.poll() is None:
            if time.monotonic() > deadline:
                process.kill()  # hung: its exit status says so in the table
            time.sleep(RSS_SAMPLE_S)
            if running_at is None and "running " in log_path.read_text(encoding="utf-8"):
                running_at = time.monotonic()
            status = status_kb(process.pid)
            if running_at is not None and "VmRSS" in status:
                samples.append((time.monotonic() - running_at, status["VmRSS"] / 1024))
                hwm_kb = max(hwm_kb, status.get("VmHWM", 0))
    result: dict[str, Any] = {
        "model": str(model),
        "command": " ".join(command),
        "exit_status": process.returncode,
        "log": str(log_path),
        "soak_s": soak_s,
        "samples": samples,
    }
    soak = [mb for t, mb in samples if MEMORY_WARMUP_S <= t <= MEMORY_WARMUP_S + soak_s]
    if process.returncode != 0 or not soak:
        return result | {"ok": False}
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    return result | {
        "ok": True,
        "warm_rss_mb": soak[0],
        "end_rss_mb": soak[-1],
        "max_rss_mb": max(soak),
        "hwm_mb": hwm_kb / 1024,
        "growth": soak[-1] / soak[0] - 1,
        "stream_fps": {sid: s["fps"] for sid, s in summary["streams"].items()},
        "drops": {sid: sum(s["drops"].values()) for sid, s in summary["streams"].items()},
    }


def format_memory(result: dict[str, Any]) -> str:
    head = (
        f"memory: {result['command']}\n(RSS sampled every {RSS_SAMPLE_S:g} s; warm-up "
        f"{MEMORY_WARMUP_S:g} s from the 'running' line, then {result['soak_s']:g} s; goals: RSS <= "
        f"{MAX_RSS_MB:.0f} MB, growth <= {MAX_RSS_GROWTH:.0%})"
    )
    if not result["ok"]:
        return f"{head}\n\njetkit run exited {result['exit_status']}; see {result['log']}"
    fps = ", ".join(f"{sid} {v:.1f}" for sid, v in result["stream_fps"].items())
    drops = ", ".join(f"{sid} {v}" for sid, v in result["drops"].items())
    body = table(
        [
            "RSS after warm-up MB",
            "RSS at end MB",
            "max RSS MB",
            "growth",
            "peak (VmHWM) MB",
            "RSS goal met",
            "growth goal met",
        ],
        [
            [
                f"{result['warm_rss_mb']:.1f}",
                f"{result['end_rss_mb']:.1f}",
                f"{result['max_rss_mb']:.1f}",
                f"{result['growth']:+.1%}",
                f"{result['hwm_mb']:.1f}",
                result["max_rss_mb"] <= MAX_RSS_MB,
                result["growth"] <= MAX_RSS_GROWTH,
            ]
        ],
    )
    return f"{head}\n\n{body}\n\nprocessed fps per stream: {fps}; drops: {drops}"


# --- main ------------------------------------------------------------------------------------


def section_model(args: argparse.Namespace, out_dir: Path) -> Path:
    if args.model:
        path = Path(args.model)
        if not path.is_file():
            sys.exit(f"{path} not found")
        return path
    path = out_dir / "blob640.onnx"
    build_blob_detector(path, input_hw=BLOB_INPUT_HW, max_batch=BLOB_MAX_BATCH)
    return path


def main() -> int:
    args = parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = section_model(args, out_dir)
    detector = open_detector(model_path)
    pipelined = open_detector(model_path, in_pipeline=True)
    model = describe(model_path, detector)
    result: dict[str, Any] = {"benchmark": "pipeline", "model": str(model_path), "threads": THREADS}
    texts, ok = [], True
    if "throughput" in args.sections:
        log("throughput ...")
        result["throughput"] = throughput(detector, pipelined, out_dir, args.repeats)
        ok = result["throughput"]["all_frames_delivered"]
        texts.append(format_throughput(result["throughput"], model, args.repeats))
    if "overload" in args.sections:
        log("overload ...")
        result["overload"] = overload(detector, pipelined, args.overload_s)
        texts.append(format_overload(result["overload"], model))
    if "streams" in args.sections:
        log("streams ...")
        result["streams"] = streams(pipelined, args.stream_s)
        texts.append(format_streams(result["streams"], model))
    detector.close()
    pipelined.close()
    if "memory" in args.sections:
        log("memory ...")
        memory_model = DEMO_STUDENT if DEMO_STUDENT.is_file() else model_path
        result["memory"] = memory(memory_model, args.soak_s, out_dir)
        texts.append(format_memory(result["memory"]))
    env = environment("onnxruntime", "cv2", "numpy")
    result["environment"] = env
    report(
        f"streaming pipeline, ONNX Runtime CPU, {THREADS} threads; sections: "
        + ", ".join(args.sections),
        env,
        "\n\n".join(texts),
    )
    if "throughput" in args.sections and not ok:
        print("\nnot every frame of the file was delivered (see the frames column)")
    return finish(args, result, ok)


if __name__ == "__main__":
    sys.exit(main())
