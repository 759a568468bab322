"""Motion gating (issue 20): CPU time per second of video and recall, gated against ungated.

A mostly still live stream: `test://?pattern=moving&moving=0.2` (objects move a fifth of the
time and stand where they are for the rest, `edge.samples_tracking`), with the scene's own
detector (`build_moving_detector`). The same pipeline runs it with tracking (ByteTrack, as
`jetkit run --track`) ungated and gated (`--track --motion`, the default MotionConfig), and a
third run only reads the source (and writes its ground truth, as the others do), so that the
frames' own making (the stand-in for a camera's decode) is taken out of both. Runs alternate,
`--repeats` times; medians.

- CPU per second of video: the process's user + system CPU time over the run, less the
  source-only run's, divided by the video's length.
- Recall: the ground-truth boxes (visibility >= 0.5) matched at IoU >= 0.5 by a reported box,
  over every frame the pipeline delivered, and over the frames where something moves.

Goal: gated CPU <= 1/3 of ungated, at <= 1 point of recall lost.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path
from typing import Any

import numpy as np
from _common import environment, median, report, table

from edge.analytics.bytetrack import TrackerConfig
from edge.analytics.mot import read_mot_rows
from edge.analytics.motion import MotionConfig
from edge.analytics.stream import AnalyticsConfig, run_at_tracker_threshold
from edge.boxes import pairwise_iou
from edge.detector import Detector
from edge.pipeline import PipelineConfig, backend_options, open_pipeline
from edge.samples_tracking import MovingScene, build_moving_detector
from edge.sinks import Result
from edge.sources import open_source

THREADS = 2
CPU_GOAL_RATIO = 3.0
RECALL_GOAL_LOSS = 0.01
MIN_VISIBILITY = 0.5
MATCH_IOU = 0.5


def log(message: str) -> None:
    print(f"[bench_motion] {message}", file=sys.stderr, flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/bench_motion")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60.0, help="video per run")
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--objects", type=int, default=8)
    parser.add_argument("--moving", type=float, default=0.2, help="share of time objects move")
    parser.add_argument("--json", metavar="FILE")
    return parser.parse_args()


class Recorder:
    """A sink keeping each delivered frame's reported boxes, by frame index."""

    uri = "bench://boxes"

    def __init__(self) -> None:
        self.xyxy_by_frame: dict[int, np.ndarray] = {}

    def write(self, result: Result) -> None:
        self.xyxy_by_frame[result.frame.index] = result.detections.xyxy

    def close(self) -> None:
        pass


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def source_uri(args: argparse.Namespace, gt: Path | None = None) -> str:
    count = round(args.seconds * args.fps)
    uri = (f"test://?pattern=moving&moving={args.moving:g}&objects={args.objects}"
           f"&size={args.size}&fps={args.fps:g}&count={count}&seed=0")  # fmt: skip
    return uri + (f"&gt={gt}" if gt is not None else "")


def source_only(args: argparse.Namespace, gt: Path) -> dict[str, Any]:
    """The source read to its end, its ground truth written as in the pipeline runs."""
    source = open_source(source_uri(args, gt))
    started = cpu_s()
    frames = 0
    while source.read() is not None:
        frames += 1
    source.close()
    return {"cpu_s": cpu_s() - started, "frames": frames}


def pipeline_run(args: argparse.Namespace, model: Path, gated: bool, gt: Path) -> dict[str, Any]:
    analytics = AnalyticsConfig(TrackerConfig(), motion=MotionConfig() if gated else None)
    detector = Detector.open(model, backend_options=backend_options(model, None, THREADS))
    report_conf = run_at_tracker_threshold(detector, analytics)
    recorder = Recorder()
    pipeline = open_pipeline(
        [source_uri(args, gt)], [], detector,
        PipelineConfig(analytics=analytics, report_conf=report_conf), [recorder],
    )  # fmt: skip
    started = cpu_s()
    pipeline.start()
    pipeline.wait()
    pipeline.join(60.0)
    used_s = cpu_s() - started
    snapshot = pipeline.metrics.snapshot()
    detector.close()
    (stream,) = snapshot["streams"].values()
    return {
        "cpu_s": used_s,
        "xyxy_by_frame": recorder.xyxy_by_frame,
        "drops": sum(stream["drops"].values()),
        "motion": stream.get("motion", {}),
        "infer_frames": snapshot["stages"]["infer"]["frames"],
    }


def recall(xyxy_by_frame: dict[int, np.ndarray], gt_rows: np.ndarray,
           frames: set[int]) -> float:  # fmt: skip
    """The share of ground-truth boxes in `frames` (0-based) that a reported box matches."""
    found = total = 0
    for index in frames & set(xyxy_by_frame):
        rows = gt_rows[(gt_rows[:, 0] == index + 1) & (gt_rows[:, 8] >= MIN_VISIBILITY)]
        if not len(rows):
            continue
        truth = np.concatenate([rows[:, 2:4], rows[:, 2:4] + rows[:, 4:6]], axis=1)
        reported = xyxy_by_frame[index]
        total += len(truth)
        if len(reported):
            found += int((pairwise_iou(truth, reported).max(axis=1) >= MATCH_IOU).sum())
    return found / total if total else float("nan")


def main() -> int:
    args = parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = out_dir / "moving.onnx"
    build_moving_detector(model, input_hw=(384, 640), max_batch=1)
    width, height = (int(v) for v in args.size.split("x"))
    scene = MovingScene((width, height), args.objects, 0, args.moving)
    count = round(args.seconds * args.fps)
    moving_frames = {k for k in range(count) if scene.moving(k)}
    video_s = count / args.fps
    runs: dict[str, list[dict[str, Any]]] = {"source": [], "ungated": [], "gated": []}
    for repeat in range(args.repeats):
        order = ["source", "ungated", "gated"]
        for name in order if repeat % 2 == 0 else order[::-1]:
            log(f"repeat {repeat + 1}/{args.repeats}: {name}")
            gt = out_dir / f"gt-{name}-{repeat}.txt"
            if name == "source":
                runs[name].append(source_only(args, gt))
                continue
            run = pipeline_run(args, model, name == "gated", gt)
            rows = read_mot_rows(gt)
            run["recall"] = recall(run["xyxy_by_frame"], rows, set(range(count)))
            run["recall_moving"] = recall(run["xyxy_by_frame"], rows, moving_frames)
            run["delivered"] = len(run.pop("xyxy_by_frame"))
            runs[name].append(run)
    source_cpu_s = median([r["cpu_s"] for r in runs["source"]])
    rows_out = []
    summary: dict[str, dict[str, float]] = {}
    for name in ("ungated", "gated"):
        cpu_per_video_s = median([(r["cpu_s"] - source_cpu_s) / video_s for r in runs[name]])
        summary[name] = {
            "cpu_per_video_s": cpu_per_video_s,
            "recall": median([r["recall"] for r in runs[name]]),
            "recall_moving": median([r["recall_moving"] for r in runs[name]]),
            "infer_share": median([r["infer_frames"] / r["delivered"] for r in runs[name]]),
            "drops": median([r["drops"] for r in runs[name]]),
        }
        rows_out.append([name, cpu_per_video_s, summary[name]["infer_share"],
                         summary[name]["recall"], summary[name]["recall_moving"],
                         summary[name]["drops"]])  # fmt: skip
    ratio = summary["ungated"]["cpu_per_video_s"] / summary["gated"]["cpu_per_video_s"]
    loss = summary["ungated"]["recall"] - summary["gated"]["recall"]
    loss_moving = summary["ungated"]["recall_moving"] - summary["gated"]["recall_moving"]
    ok = ratio >= CPU_GOAL_RATIO and max(loss, loss_moving) <= RECALL_GOAL_LOSS
    body = "\n".join([
        f"{source_uri(args)}; {args.repeats} repeats, medians; the source alone used "
        f"{source_cpu_s / video_s:.3f} CPU s per video s (taken out of both rows)",
        "",
        table(["pipeline", "CPU s per video s", "frames detected", "recall", "recall moving",
               "drops"], rows_out),
        "",
        f"CPU ungated / gated: {ratio:.2f}x (goal >= {CPU_GOAL_RATIO:g}x); recall lost "
        f"{loss * 100:+.2f} points, {loss_moving * 100:+.2f} while moving (goal <= "
        f"{RECALL_GOAL_LOSS * 100:g})",
        "goal met" if ok else "GOAL NOT MET",
    ])  # fmt: skip
    report("motion gating: CPU and recall, gated against ungated", environment("onnxruntime"),
           body)  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "summary": summary, "ratio": ratio,
                                               "argv": sys.argv}, indent=2, default=str))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
