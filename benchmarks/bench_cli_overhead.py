"""Does `jetkit bench` distort? Its latency median vs a bare ONNX Runtime loop, same model and input.

Model: `edge.samples.build_blob_detector` at 640×640, static batch 1 (a small real CNN), written
to a temporary directory. Input: the preprocessed tensor of `run_bench`'s own synthetic 1920×1080
frame. Both sides use 2 intra-op threads. Per repeat, in alternating order:

- bare: an `onnxruntime.InferenceSession` (intra_op_num_threads=2), 200 ms warm-up, then
  `sess.run(None, {"images": x})` in a loop for 0.4 s, each call timed with
  `time.perf_counter`; the median call.
- jetkit: `run_bench(Detector.open(path, backend_options={"threads": 2}),
  BenchConfig(duration_s=0.4, warmup_ms=200))["latency_ms"]["median"]`, the number
  `jetkit bench` prints.

Target: jetkit / bare within 5% (0.95-1.05), per repeat and as the median of the ratios.
No output check: both run the same session type on the same input (exit status is always 0).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import environment, finish, median, parse_args, report, table

from edge.bench import BenchConfig, run_bench, synthetic_frame
from edge.detector import Detector
from edge.samples import build_blob_detector

THREADS = 2
WARMUP_MS = 200.0


def bare_loop_median(session, feed: dict[str, np.ndarray], duration_s: float) -> tuple[float, int]:
    """Median ms of `session.run` over a `duration_s` loop after a WARMUP_MS warm-up; and the count."""
    clock = time.perf_counter
    end = clock() + WARMUP_MS / 1e3
    session.run(None, feed)
    while clock() < end:
        session.run(None, feed)
    latencies = []
    deadline = clock() + duration_s
    while clock() < deadline or len(latencies) < 10:
        before = clock()
        session.run(None, feed)
        latencies.append(clock() - before)
    return median(latencies) * 1e3, len(latencies)


def main() -> int:
    args = parse_args(__doc__, default_repeats=24)
    duration_s = 0.4
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "blob640.onnx"
        build_blob_detector(path, input_hw=(640, 640), max_batch=1, dynamic_batch=False)
        detector = Detector.open(path, backend_options={"threads": THREADS})
        config = BenchConfig(
            batch=1, warmup_ms=WARMUP_MS, duration_s=duration_s, stage_iterations=10
        )
        frame = synthetic_frame(config.frame_size_wh, seed=0)  # run_bench's frame
        x = np.array(detector.preprocessor([frame])[0])
        options = ort.SessionOptions()
        options.intra_op_num_threads = THREADS
        session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        feed = {"images": x}

        def bare() -> tuple[float, int]:
            return bare_loop_median(session, feed, duration_s)

        def jetkit() -> tuple[float, int]:
            result = run_bench(detector, config)
            return result["latency_ms"]["median"], result["iterations"]

        rows, reps = [], []
        for rep in range(args.repeats):
            order = [("bare", bare), ("jetkit", jetkit)]
            measured = {name: func() for name, func in (order if rep % 2 == 0 else order[::-1])}
            (bare_ms, bare_n), (jk_ms, jk_n) = measured["bare"], measured["jetkit"]
            first = "bare" if rep % 2 == 0 else "jetkit"
            rows.append(
                [f"{rep + 1} ({first} first)", bare_ms, bare_n, jk_ms, jk_n, jk_ms / bare_ms]
            )
            reps.append(
                {
                    "bare_ms": bare_ms,
                    "bare_calls": bare_n,
                    "jetkit_ms": jk_ms,
                    "jetkit_calls": jk_n,
                    "ratio": jk_ms / bare_ms,
                }
            )
        detector.close()

    ratios = [r["ratio"] for r in reps]
    bare_all, jk_all = median([r["bare_ms"] for r in reps]), median([r["jetkit_ms"] for r in reps])
    rows.append(["median", bare_all, "", jk_all, "", median(ratios)])
    for first, parity in (("bare", 0), ("jetkit", 1)):  # shows any effect of running second
        if args.repeats > parity:
            rows.append([f"median, {first} first", "", "", "", "", median(ratios[parity::2])])
    env = environment("numpy", "onnxruntime")
    report(
        f"jetkit bench latency median vs bare InferenceSession.run loop, blob detector 640x640 "
        f"batch 1, {THREADS} threads, {duration_s} s per side per repeat (target: ratio 0.95-1.05)",
        env,
        table(["repeat", "bare ms", "calls", "jetkit ms", "calls", "jetkit/bare"], rows),
    )
    summary = {
        "bare_median_ms": bare_all,
        "jetkit_median_ms": jk_all,
        "median_ratio": median(ratios),
    }
    return finish(
        args, {"benchmark": "cli_overhead", "environment": env, "repeats": reps, **summary}, True
    )


if __name__ == "__main__":
    sys.exit(main())
