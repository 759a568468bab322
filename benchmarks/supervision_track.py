"""Runs inside the tracking venv (benchmarks/tracking_venv.sh), never jetkit's: supervision's
ByteTrack, with its defaults, on detections jetkit saved, and py-motmetrics on any tracker's
output against the ground truth.

Usage:
  python supervision_track.py track DETECTIONS.npz OUT.npz FPS
      DETECTIONS.npz: `frames` (F,), and per frame k `xyxy_k`, `scores_k`, `class_ids_k`;
      writes `rows` (MOT rows of the tracked detections) and `ms` (per-frame update time).
  python supervision_track.py motmetrics GT.txt HYP.txt [HYP.txt …]
      prints one JSON line per hypothesis file: mota, idf1, num_switches, motp (1 - IoU), and
      TrackEval's HOTA, DetA, AssA and LocA (its HOTA metric on the rows as its MOTChallenge
      loader hands them over: ids numbered from 0, IoU similarities per frame).
  python supervision_track.py lines DETECTIONS.npz X0 Y0 X1 Y1 FPS
      ByteTrack then LineZone (bottom-centre anchor) on the line; prints {"in": n, "out": m}.
"""

import json
import sys
import time

import numpy as np


def track(detections_path: str, out_path: str, fps: float) -> None:
    import supervision as sv

    data = np.load(detections_path)
    tracker = sv.ByteTrack(frame_rate=int(round(fps)))
    rows, times_ms = [], []
    for k in data["frames"].tolist():
        found = sv.Detections(
            xyxy=data[f"xyxy_{k}"].astype(np.float32),
            confidence=data[f"scores_{k}"].astype(np.float32),
            class_id=data[f"class_ids_{k}"].astype(int),
        )
        start = time.perf_counter()
        tracked = tracker.update_with_detections(found)
        times_ms.append((time.perf_counter() - start) * 1e3)
        for box, track_id, score in zip(
            tracked.xyxy, tracked.tracker_id, tracked.confidence, strict=True
        ):
            x0, y0, x1, y1 = (float(v) for v in box)
            rows.append([k + 1, int(track_id), x0, y0, x1 - x0, y1 - y0, float(score), -1, -1, -1])
    np.savez(out_path, rows=np.array(rows, dtype=np.float64).reshape(-1, 10), ms=np.array(times_ms))


def line_counts(detections_path: str, line: list[float], fps: float) -> None:
    import supervision as sv

    data = np.load(detections_path)
    tracker = sv.ByteTrack(frame_rate=int(round(fps)))
    zone = sv.LineZone(start=sv.Point(line[0], line[1]), end=sv.Point(line[2], line[3]),
                       triggering_anchors=[sv.Position.BOTTOM_CENTER])  # fmt: skip
    for k in data["frames"].tolist():
        found = sv.Detections(
            xyxy=data[f"xyxy_{k}"].astype(np.float32).reshape(-1, 4),
            confidence=data[f"scores_{k}"].astype(np.float32),
            class_id=data[f"class_ids_{k}"].astype(int),
        )
        zone.trigger(tracker.update_with_detections(found))
    print(json.dumps({"in": int(zone.in_count), "out": int(zone.out_count)}))


def motmetrics_scores(gt_path: str, hyp_paths: list[str]) -> None:
    import motmetrics as mm

    gt = mm.io.loadtxt(gt_path, fmt="mot15-2D", min_confidence=0)
    handler = mm.metrics.create()
    for path in hyp_paths:
        hyp = mm.io.loadtxt(path, fmt="mot15-2D")
        accumulator = mm.utils.compare_to_groundtruth(gt, hyp, "iou", distth=0.5)
        summary = handler.compute(accumulator, metrics=["mota", "idf1", "num_switches", "motp"])
        row = summary.iloc[0]
        print(json.dumps({"file": path, "mota": float(row["mota"]), "idf1": float(row["idf1"]),
                          "num_switches": int(row["num_switches"]),
                          "motp": float(row["motp"]),
                          **trackeval_hota(np.loadtxt(gt_path, delimiter=",", ndmin=2),
                                           np.loadtxt(path, delimiter=",", ndmin=2))}))  # fmt: skip


def trackeval_hota(gt: np.ndarray, hyp: np.ndarray) -> dict:
    from trackeval.datasets._base_dataset import _BaseDataset
    from trackeval.metrics import HOTA

    _, gt_ids = np.unique(gt[:, 1], return_inverse=True)
    _, hyp_ids = np.unique(hyp[:, 1], return_inverse=True)
    frames = int(max(gt[:, 0].max(), hyp[:, 0].max()))
    data = {"num_gt_dets": len(gt), "num_tracker_dets": len(hyp),
            "num_gt_ids": int(gt_ids.max()) + 1, "num_tracker_ids": int(hyp_ids.max()) + 1,
            "gt_ids": [], "tracker_ids": [], "similarity_scores": []}  # fmt: skip
    for t in range(1, frames + 1):
        g, h = gt[:, 0] == t, hyp[:, 0] == t
        data["gt_ids"].append(gt_ids[g])
        data["tracker_ids"].append(hyp_ids[h])
        data["similarity_scores"].append(
            _BaseDataset._calculate_box_ious(gt[g, 2:6], hyp[h, 2:6], box_format="xywh")
        )
    result = HOTA().eval_sequence(data)
    return {"hota": float(np.mean(result["HOTA"])), "det_a": float(np.mean(result["DetA"])),
            "ass_a": float(np.mean(result["AssA"])), "loc_a": float(np.mean(result["LocA"]))}  # fmt: skip


if __name__ == "__main__":
    if sys.argv[1] == "track":
        track(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    elif sys.argv[1] == "motmetrics":
        motmetrics_scores(sys.argv[2], sys.argv[3:])
    elif sys.argv[1] == "lines":
        line_counts(sys.argv[2], [float(v) for v in sys.argv[3:7]], float(sys.argv[7]))
    else:
        sys.exit(f"unknown command {sys.argv[1]!r}: track, motmetrics or lines")
