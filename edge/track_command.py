"""`jetkit track SEQUENCE… (--model M | --public-detections)`: ByteTrack over MOTChallenge
sequences a user already has (MOT17/MOT20 layout), its output written as MOTChallenge results
(`OUT/<sequence>.txt`, what the benchmark's server and TrackEval read) and, where a sequence has
ground truth, scored: MOTA, IDF1, HOTA (DetA, AssA), ID switches, per sequence and combined.

With --model the frames go through the streaming pipeline with tracking, as `jetkit run --track`
runs a camera; with --public-detections the tracker gets the sequence's own det/det.txt (the
benchmark's public-detection protocol, trackers compared on the same boxes). Only argparse at
import time.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from edge.cli import stderr_log

# After the last frame: how long the pipeline may take to deliver what is in flight.
DRAIN_TIMEOUT_S = 60.0


class _Rows:
    """A sink collecting the tracked detections of the wanted classes as MOT rows."""

    uri = "track://rows"

    def __init__(self, classes: set[str] | None) -> None:
        self.classes = classes
        self.parts: list[Any] = []

    def write(self, result: Any) -> None:
        import numpy as np

        from edge.analytics.mot import tracks_to_rows

        found = result.detections
        if result.track_ids is None or not len(found):
            return
        keep = result.track_ids > 0
        if self.classes is not None:
            keep &= np.isin(np.array(found.names), sorted(self.classes))
        self.parts.append(tracks_to_rows(result.frame.index + 1, result.track_ids[keep],
                                         found.xyxy[keep], found.scores[keep]))  # fmt: skip

    def rows(self) -> Any:
        import numpy as np

        return np.concatenate(self.parts) if self.parts else np.zeros((0, 10))

    def close(self) -> None:
        return None


def _pipeline_rows(sequence: Any, detector: Any, analytics: Any, report_conf: float | None,
                   classes: set[str] | None) -> Any:  # fmt: skip
    from edge.errors import JetkitError
    from edge.pipeline import PipelineConfig, open_pipeline

    sink = _Rows(classes)
    pipeline = open_pipeline(
        [(f"images://{sequence.frames[0].parent}", sequence.name)], [], detector,
        PipelineConfig(analytics=analytics, report_conf=report_conf), [sink],
    )  # fmt: skip
    pipeline.start()
    finished = pipeline.wait(None)
    pipeline.join(DRAIN_TIMEOUT_S)
    if not finished or pipeline.delivered < len(sequence.frames):
        raise JetkitError(
            f"{sequence.name}: {pipeline.delivered} of its {len(sequence.frames)} frames came "
            "through the pipeline; see the log above"
        )
    return sink.rows()


def _track(args: argparse.Namespace) -> int:
    import numpy as np

    from edge.analytics.bytetrack import TrackerConfig
    from edge.analytics.mot import find_sequences, read_sequence, write_mot_rows
    from edge.analytics.mot_eval import (
        concatenated,
        format_scores,
        prepared,
        score,
        track_detections,
    )
    from edge.analytics.stream import AnalyticsConfig, run_at_tracker_threshold
    from edge.atomic import write_text_atomic
    from edge.errors import JetkitError

    if (args.model is None) == (not args.public_detections):
        raise JetkitError("give --model MODEL or --public-detections (not both)")
    tracker = TrackerConfig(high=args.high, low=args.low, match_iou=args.match_iou,
                            buffer_frames=args.buffer_frames)  # fmt: skip
    sequences = [read_sequence(path) for path in find_sequences([Path(p) for p in args.sequences])]
    if args.public_detections:
        missing = [s.name for s in sequences if s.det is None]
        if missing:
            raise JetkitError(
                f"--public-detections needs det/det.txt; {', '.join(missing)} has none (or give "
                "--model)"
            )
    detector = analytics = report_conf = None
    classes = set(args.classes.split(",")) if args.classes else None
    if args.model is not None:
        from edge.detector import Detector
        from edge.pipeline import backend_options

        detector = Detector.open(args.model, backend=args.backend,
                                 backend_options=backend_options(args.model, args.backend,
                                                                 args.threads))  # fmt: skip
        unknown = sorted((classes or set()) - set(detector.manifest.classes))
        if unknown:
            raise JetkitError(
                f"--classes {','.join(unknown)}: the model detects "
                f"{', '.join(detector.manifest.classes)}"
            )
        analytics = AnalyticsConfig(tracker=tracker)
        report_conf = run_at_tracker_threshold(detector, analytics)
    out_dir = Path(args.out)
    scored: list[tuple[str, Any, Any]] = []
    for sequence in sequences:
        if detector is None:
            rows = track_detections(sequence.det, len(sequence.frames), tracker)
        else:
            rows = _pipeline_rows(sequence, detector, analytics, report_conf, classes)
        write_mot_rows(out_dir / f"{sequence.name}.txt", rows)
        stderr_log(f"{sequence.name}: {len(sequence.frames)} frames, "
                   f"{len(np.unique(rows[:, 1]))} tracks -> {out_dir / sequence.name}.txt")  # fmt: skip
        if sequence.gt is not None:
            scored.append((sequence.name, *prepared(sequence.gt, rows)))
    if detector is not None:
        detector.close()
    if not scored:
        stderr_log("no sequence has gt/gt.txt: tracks written, nothing scored")
        return 0
    results = [score(name, gt, hyp) for name, gt, hyp in scored]
    if len(results) > 1:
        results.append(score("COMBINED", *concatenated([(gt, hyp) for _, gt, hyp in scored])))
    print(format_scores(results))
    if args.json:
        write_text_atomic(Path(args.json),
                          json.dumps([r.to_dict() for r in results], indent=2) + "\n")  # fmt: skip
    return 0


def register_track(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "track",
        help="track MOTChallenge sequences (MOT17/MOT20 layout) and score them (HOTA, MOTA, IDF1)",
        description="ByteTrack over sequence folders (seqinfo.ini, img1/, gt/gt.txt), with a "
        "model through the streaming pipeline or on the sequences' public detections. Writes "
        "OUT/<sequence>.txt in MOTChallenge's result format; scores the sequences that have "
        "ground truth as the benchmark does (considered pedestrians only, boxes on distractors "
        "dropped; IoU 0.5 for MOTA and IDF1, HOTA over IoU 0.05-0.95 as TrackEval computes it).",
    )
    parser.add_argument("sequences", nargs="+", metavar="SEQUENCE",
                        help="a sequence folder, or a folder of them (e.g. MOT17/train)")  # fmt: skip
    parser.add_argument("--model", help="ONNX model or TensorRT engine to detect with")
    parser.add_argument("--public-detections", action="store_true",
                        help="track each sequence's det/det.txt instead (scores in [0, 1])")  # fmt: skip
    parser.add_argument("--classes", help="with --model: keep tracks of these classes only, "
                        "comma-separated (MOT scores pedestrians: e.g. person)")  # fmt: skip
    parser.add_argument("--out", default="tracks", help="where the result files go (default tracks)")
    parser.add_argument("--json", metavar="FILE", help="also write the scores as JSON")
    parser.add_argument("--high", type=float, default=0.5, help="ByteTrack's first-stage score")
    parser.add_argument("--low", type=float, default=0.1, help="the lowest score tracked")
    parser.add_argument("--match-iou", type=float, default=0.2, help="least IoU to associate")
    parser.add_argument("--buffer-frames", type=int, default=30,
                        help="frames a lost track is kept")  # fmt: skip
    parser.add_argument("--backend", choices=("onnxruntime", "tensorrt"))
    parser.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads")
    parser.set_defaults(handler=_track)
