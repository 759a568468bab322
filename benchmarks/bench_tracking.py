"""Tracking (issue 20): jetkit's ByteTrack against supervision's ByteTrack on the same detections.

- Accuracy: `test://?pattern=moving` scenes (boxes that cross, pass behind a pillar and each
  other, leave and come back; `edge.samples_tracking`), per seed; the scene's own detector
  (`build_moving_detector`, conf 0.1) gives the detections both trackers get. Scored by jetkit's
  metrics (`edge.analytics.mot_metrics`, `edge.analytics.hota`) and, as a check of those, by
  py-motmetrics and TrackEval's HOTA in the tracking venv (`benchmarks/tracking_venv.sh`), on
  every ground-truth box that shows at all.
  Trackers: jetkit with its defaults (high 0.5), jetkit with supervision's activation threshold
  (high 0.25), supervision 0.30.9 with its defaults (the last release with ByteTrack).
- Speed: ms per frame of each tracker's update on a scene of about 50 objects a frame (median
  over frames, then over repeats, the two run alternately).
- Line counts on scripted hard cases (two crossing at once, a reverse crossing, an object that
  stops on the line and jitters then goes on or back, one missed for 5 frames mid-crossing):
  jetkit's LineCounter and supervision's LineZone, each behind its own tracker, against the
  truth.

Goals: IDF1 >= supervision's (medians over seeds), tracker <= 1 ms per frame with 50 objects,
line counts equal to the truth on every case.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import environment, finish, report, table

from edge.analytics.bytetrack import ByteTracker, TrackerConfig
from edge.analytics.hota import hota_scores
from edge.analytics.mot import tracks_to_rows, write_mot_rows
from edge.analytics.mot_metrics import tracking_scores
from edge.analytics.zones import LineConfig, LineCounter
from edge.detector import Detector
from edge.samples_tracking import MovingScene, build_moving_detector

BENCHMARKS = Path(__file__).resolve().parent
TRACKER_GOAL_MS = 1.0
# The line cases: a 640x480 frame, a line across the middle pointing right (up across it: "in").
CASE_SIZE_WH = (640, 480)
CASE_LINE = ((40.0, 240.0), (600.0, 240.0))


def log(message: str) -> None:
    print(f"[bench_tracking] {message}", file=sys.stderr, flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/bench_tracking")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--objects", type=int, default=30)
    parser.add_argument("--speed-objects", type=int, default=80, help="about 50 in view at once")
    parser.add_argument("--speed-frames", type=int, default=300)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--venv", default="runs/tracking-venv")
    parser.add_argument("--json", help="write the results here too")
    return parser.parse_args()


def detect_scene(detector: Detector, scene: MovingScene, frames: int, path: Path) -> dict[str, Any]:
    """Every frame's detections (saved for the anchor as `xyxy_k`, `scores_k`, `class_ids_k`)."""
    if path.is_file():
        with np.load(path) as saved:
            return dict(saved)
    data: dict[str, Any] = {"frames": np.arange(frames)}
    for k in range(frames):
        found = detector(scene.draw(k))
        data[f"xyxy_{k}"], data[f"scores_{k}"] = found.xyxy, found.scores
        data[f"class_ids_{k}"] = found.class_ids
    np.savez(path, **data)
    return data


def jetkit_track(data: dict[str, Any], config: TrackerConfig) -> tuple[np.ndarray, np.ndarray]:
    """MOT rows of the tracked detections and the per-frame update ms."""
    tracker = ByteTracker(config)
    rows, times_ms = [], []
    for k in data["frames"].tolist():
        xyxy, scores = data[f"xyxy_{k}"], data[f"scores_{k}"]
        start = time.perf_counter()
        ids = tracker.update(xyxy, scores, data[f"class_ids_{k}"])
        times_ms.append((time.perf_counter() - start) * 1e3)
        tracked = ids > 0
        rows.append(tracks_to_rows(k + 1, ids[tracked], xyxy[tracked], scores[tracked]))
    return np.concatenate(rows), np.array(times_ms)


def anchor(python: str, *args: Any) -> str:
    return subprocess.run([python, str(BENCHMARKS / "supervision_track.py"), *map(str, args)],
                          check=True, capture_output=True, text=True).stdout  # fmt: skip


def supervision_track(
    python: str, detections: Path, out: Path, fps: float
) -> tuple[np.ndarray, np.ndarray]:
    anchor(python, "track", detections, out, fps)
    with np.load(out) as saved:
        return saved["rows"], saved["ms"]


def line_cases() -> dict[str, tuple[list[list[list[float]]], dict[str, int]]]:
    """Case name → (per frame, the bottom-centre points of the objects seen; an empty frame is a
    miss), and the true counts."""

    def up(x: float, start: float, stop: float, frames: int) -> list[list[float]]:
        return [[x, y] for y in np.linspace(start, stop, frames)]

    jitter = [[200 + np.random.default_rng(t).normal(0, 1), 240 + 4 * (-1) ** t] for t in range(40)]
    two = [[a, b] for a, b in zip(up(200, 400, 100, 30), up(300, 400, 100, 30), strict=True)]
    lost = [[p] if not 13 <= t <= 17 else [] for t, p in enumerate(up(200, 400, 100, 30))]
    return {
        "two crossing at once": (two, {"in": 2, "out": 0}),
        "a reverse crossing": ([[p] for p in up(200, 400, 100, 20) + up(200, 100, 400, 20)],
                               {"in": 1, "out": 1}),
        "stops on the line, jitters, goes on": (
            [[p] for p in up(200, 400, 242, 15) + jitter + up(200, 238, 100, 15)], {"in": 1, "out": 0}),
        "stops on the line, jitters, goes back": (
            [[p] for p in up(200, 400, 242, 15) + jitter + up(200, 242, 400, 15)], {"in": 0, "out": 0}),
        "missed for 5 frames mid-crossing": (lost, {"in": 1, "out": 0}),
    }  # fmt: skip


def case_detections(points_per_frame: list[list[list[float]]]) -> dict[str, Any]:
    data: dict[str, Any] = {"frames": np.arange(len(points_per_frame))}
    for k, points in enumerate(points_per_frame):
        feet = np.array(points, dtype=np.float64).reshape(-1, 2)
        data[f"xyxy_{k}"] = np.stack([feet[:, 0] - 15, feet[:, 1] - 60, feet[:, 0] + 15,
                                      feet[:, 1]], axis=1)  # fmt: skip
        data[f"scores_{k}"] = np.full(len(feet), 0.9)
        data[f"class_ids_{k}"] = np.zeros(len(feet), np.int64)
    return data


def jetkit_line_counts(data: dict[str, Any]) -> dict[str, int]:
    counter = LineCounter(LineConfig("gate", CASE_LINE).resolve(CASE_SIZE_WH, ("person",)))
    tracker = ByteTracker()
    for k in data["frames"].tolist():
        xyxy = data[f"xyxy_{k}"]
        ids = tracker.update(xyxy, data[f"scores_{k}"], data[f"class_ids_{k}"])
        seen = ids > 0
        counter.update(ids[seen], xyxy[seen], ["person"] * int(seen.sum()))
    return {d: counter.counts[("person", d)] for d in ("in", "out")}


def main() -> int:
    args = parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    width, height = (int(v) for v in args.size.split("x"))
    python = subprocess.run(["bash", str(BENCHMARKS / "tracking_venv.sh"), args.venv],
                            check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
    model = out / "moving.onnx"
    build_moving_detector(model)
    detector = Detector.open(model, conf=0.1)
    trackers = {"jetkit (defaults, high 0.5)": TrackerConfig(),
                "jetkit (high 0.25, as supervision)": TrackerConfig(high=0.25)}  # fmt: skip
    rows: list[dict[str, Any]] = []
    for seed in (int(s) for s in args.seeds.split(",")):
        scene = MovingScene((width, height), args.objects, seed)
        gt = np.concatenate([scene.gt_rows(k) for k in range(args.frames)])
        gt_path = out / f"gt-{seed}.txt"
        write_mot_rows(gt_path, gt)
        detections = out / f"detections-{args.objects}-{args.frames}-{width}x{height}-{seed}.npz"
        data = detect_scene(detector, scene, args.frames, detections)
        log(f"seed {seed}: {len(gt)} ground-truth boxes, {len(np.unique(gt[:, 1]))} objects")
        outputs = {name: jetkit_track(data, config) for name, config in trackers.items()}
        outputs["supervision 0.30.9 (defaults)"] = supervision_track(
            python, detections, out / f"supervision-{seed}.npz", args.fps
        )
        paths = []
        for name, (hyp, times_ms) in outputs.items():
            path = out / f"hyp-{seed}-{len(paths)}.txt"
            write_mot_rows(path, hyp)
            paths.append(path)
            scores = tracking_scores(gt, hyp)
            rows.append({"seed": seed, "tracker": name, **scores.to_dict(),
                         **hota_scores(gt, hyp).to_dict(),
                         "ms_per_frame": float(np.median(times_ms))})  # fmt: skip
        checks = [json.loads(line) for line in anchor(python, "motmetrics", gt_path,
                                                       *paths).splitlines()]  # fmt: skip
        for row, check in zip(rows[-len(paths) :], checks, strict=True):
            row["motmetrics"] = check

    speed_scene = MovingScene((width, height), args.speed_objects, 1000)
    speed_path = (
        out / f"detections-{args.speed_objects}-{args.speed_frames}-{width}x{height}-speed.npz"
    )
    speed_data = detect_scene(detector, speed_scene, args.speed_frames, speed_path)
    per_frame = np.mean([len(speed_data[f"scores_{k}"]) for k in range(args.speed_frames)])
    speed: dict[str, list[float]] = {"jetkit": [], "supervision": []}
    for repeat in range(args.repeats):
        order = ["jetkit", "supervision"] if repeat % 2 == 0 else ["supervision", "jetkit"]
        for name in order:
            if name == "jetkit":
                times_ms = jetkit_track(speed_data, TrackerConfig(high=0.25))[1]
            else:
                times_ms = supervision_track(python, speed_path, out / "speed.npz", args.fps)[1]
            speed[name].append(float(np.median(times_ms)))

    line_rows = []
    for case, (points, truth) in line_cases().items():
        data = case_detections(points)
        path = out / f"case-{len(line_rows)}.npz"
        np.savez(path, **data)
        theirs = json.loads(anchor(python, "lines", path, *CASE_LINE[0], *CASE_LINE[1], args.fps))
        line_rows.append({"case": case, "truth": truth, "jetkit": jetkit_line_counts(data),
                          "supervision": theirs})  # fmt: skip

    def median_of(name: str, key: str) -> float:
        return float(np.median([r[key] for r in rows if r["tracker"] == name]))

    names = list(trackers) + ["supervision 0.30.9 (defaults)"]
    summary = [[name, f"{median_of(name, 'idf1'):.4f}", f"{median_of(name, 'hota'):.4f}",
                f"{median_of(name, 'mota'):.4f}", f"{median_of(name, 'id_switches'):.0f}",
                f"{median_of(name, 'motp'):.3f}", f"{median_of(name, 'ms_per_frame'):.3f}"]
               for name in names]  # fmt: skip
    per_seed = [[r["seed"], r["tracker"], f"{r['idf1']:.4f}", f"{r['motmetrics']['idf1']:.4f}",
                 f"{r['hota']:.4f}", f"{r['motmetrics']['hota']:.4f}",
                 f"{r['det_a']:.4f}|{r['ass_a']:.4f}",
                 f"{r['motmetrics']['det_a']:.4f}|{r['motmetrics']['ass_a']:.4f}",
                 f"{r['mota']:.4f}", f"{r['motmetrics']['mota']:.4f}", r["id_switches"],
                 r["motmetrics"]["num_switches"], r["false_positives"], r["misses"],
                 f"{r['ms_per_frame']:.3f}"] for r in rows]  # fmt: skip
    line_table = [[r["case"], f"{r['truth']['in']}/{r['truth']['out']}",
                   f"{r['jetkit']['in']}/{r['jetkit']['out']}",
                   f"{r['supervision']['in']}/{r['supervision']['out']}"] for r in line_rows]  # fmt: skip
    ours, theirs = median_of(names[0], "idf1"), median_of(names[2], "idf1")
    jetkit_ms, supervision_ms = (
        float(np.median(speed["jetkit"])),
        float(np.median(speed["supervision"])),
    )
    exact = all(r["jetkit"] == r["truth"] for r in line_rows)
    lines = [
        f"IDF1 (median over seeds): jetkit {ours:.4f}, supervision {theirs:.4f}: goal >= "
        f"supervision's: {'yes' if ours >= theirs else 'no'}",
        f"tracker update with {per_frame:.0f} detections a frame: jetkit {jetkit_ms:.3f} ms, "
        f"supervision {supervision_ms:.3f} ms (median of {args.repeats} runs' per-frame medians); "
        f"goal <= {TRACKER_GOAL_MS} ms: {'yes' if jetkit_ms <= TRACKER_GOAL_MS else 'no'}",
        f"line counts equal to the truth on every case: jetkit {'yes' if exact else 'no'}, "
        f"supervision {'yes' if all(r['supervision'] == r['truth'] for r in line_rows) else 'no'}",
    ]
    env = environment("numpy", "scipy", "onnxruntime")
    report(
        f"moving scene {width}x{height}, {args.objects} objects, {args.frames} frames at "
        f"{args.fps:g} fps, seeds {args.seeds}; {os.cpu_count()} CPUs",
        env,
        table(("tracker", "IDF1", "HOTA", "MOTA", "ID sw", "MOTP (IoU)", "ms/frame"), summary)
        + "\n\nper seed (jetkit's metrics | py-motmetrics, TrackEval (te)):\n"
        + table(
            (
                "seed",
                "tracker",
                "IDF1",
                "IDF1 mm",
                "HOTA",
                "HOTA te",
                "DetA|AssA",
                "DetA|AssA te",
                "MOTA",
                "MOTA mm",
                "ID sw",
                "ID sw mm",
                "FP",
                "misses",
                "ms/frame",
            ),
            per_seed,
        )  # fmt: skip
        + "\n\nline counts in/out:\n"
        + table(("case", "truth", "jetkit", "supervision"), line_table)
        + "\n\n"
        + "\n".join(lines),
    )
    result = {"benchmark": "tracking", "environment": env, "rows": rows, "speed_ms": speed,
              "detections_per_frame": per_frame, "lines": line_rows}  # fmt: skip
    return finish(args, result, True)


if __name__ == "__main__":
    sys.exit(main())
