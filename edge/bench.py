"""The latency benchmark behind `jetkit bench`, reporting as trtexec does.

The model loop times `backend.infer` alone on a fixed, preprocessed input (trtexec's "Latency":
host→device + compute + device→host), so the harness adds nothing between calls but a clock
read. Preprocess and decode+NMS are timed in a second loop on the same frame and output.
"""

from __future__ import annotations

import math
import os
import platform
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.detector import Detector
from edge.errors import JetkitError
from edge.jetson import read_device_facts
from edge.metrics.stats import summarize_ms

STAT_KEYS = ("min", "mean", "median", "p90", "p95", "p99", "max")
STAGE_ORDER = ("preprocess", "h2d", "compute", "d2h", "decode_nms")


@dataclass(frozen=True)
class BenchConfig:
    """How long to run: warm up for `warmup_ms`, then at least `iterations` calls and at least
    `duration_s` seconds (both minimums, as trtexec's --iterations and --duration)."""

    batch: int | None = None  # None: the model's own (its static batch, or 1)
    warmup_ms: float = 200.0
    iterations: int = 10
    duration_s: float = 3.0
    frame_size_wh: tuple[int, int] = (1920, 1080)
    stage_iterations: int = 100

    def __post_init__(self) -> None:
        if self.batch is not None and self.batch < 1:
            raise JetkitError(f"--batch must be >= 1, got {self.batch}")
        if not 0 <= self.warmup_ms < math.inf:
            raise JetkitError(f"--warmup-ms must be finite and >= 0, got {self.warmup_ms}")
        if self.iterations < 1:
            raise JetkitError(f"--iterations must be >= 1, got {self.iterations}")
        if not 0 <= self.duration_s < math.inf:
            raise JetkitError(
                f"--duration must be a finite number of seconds >= 0, got {self.duration_s}"
            )


def synthetic_frame(size_wh: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A deterministic BGR frame `(H,W,3)` with smooth structure (not pure noise)."""
    width, height = size_wh
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 127 + 60 * np.sin(xs / 37.0)[..., None] * np.cos(ys / 23.0)[..., None]
    noise = rng.normal(0, 12, (height, width, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def time_model_loop(
    infer: Any, inputs: list[np.ndarray], config: BenchConfig
) -> tuple[np.ndarray, float]:
    """Warm up, then call `infer(inputs)` until both minimums are met.

    Returns the per-call latencies `(n,)` in ms and the loop's wall time in seconds."""
    clock = time.perf_counter
    warmup_end = clock() + config.warmup_ms / 1e3
    infer(inputs)
    while clock() < warmup_end:
        infer(inputs)
    latencies = []
    start = clock()
    deadline = start + config.duration_s
    now = start
    while len(latencies) < config.iterations or now < deadline:
        before = clock()
        infer(inputs)
        now = clock()
        latencies.append(now - before)
    return np.asarray(latencies) * 1e3, now - start


def bench_batch(detector: Detector, requested: int | None) -> int:
    """The batch to benchmark: a static-batch model runs only its own batch."""
    spec = detector.manifest.input
    if not spec.dynamic_batch:
        if requested not in (None, spec.shape[0]):
            raise JetkitError(
                f"this model has a static batch of {spec.shape[0]}; use --batch {spec.shape[0]} "
                "or export/build it with a dynamic batch"
            )
        return spec.shape[0]
    if requested is not None and requested > spec.max_batch:
        raise JetkitError(
            f"--batch {requested} is larger than the model's maximum batch {spec.max_batch}; "
            "use a smaller --batch or export/build the model with a larger batch"
        )
    return requested or 1


def run_bench(detector: Detector, config: BenchConfig) -> dict[str, Any]:
    """Benchmark a Detector's model and stages; the result has the `jetkit bench --json` keys."""
    batch = bench_batch(detector, config.batch)
    frames = [synthetic_frame(config.frame_size_wh, seed) for seed in range(batch)]
    detector.detect_batch(frames)
    tensor, _ = detector.preprocessor(frames)
    model_input = np.array(tensor)
    backend = detector.backend
    latencies_ms, wall_s = time_model_loop(backend.infer, [model_input], config)

    stages: dict[str, list[float]] = {}
    for _ in range(min(config.stage_iterations, latencies_ms.shape[0])):
        detector.detect_batch(frames)
        times = detector.last_times
        stages.setdefault("preprocess", []).append(times.preprocess)
        for name, value in times.backend.items():
            stages.setdefault(name, []).append(value)
        stages.setdefault("decode_nms", []).append(times.postprocess)
    iterations = int(latencies_ms.shape[0])
    throughput = iterations / wall_s if wall_s > 0 else float("inf")
    return {
        "model": str(getattr(backend, "path", "")),
        "batch": batch,
        "iterations": iterations,
        "wall_s": wall_s,
        "throughput_fps": throughput * batch,
        "throughput_ips": throughput,
        "latency_ms": summarize_ms(latencies_ms),
        "stages_ms": {name: summarize_ms(stages[name]) for name in STAGE_ORDER if name in stages},
        "environment": environment(detector),
        # Every call, in order: for histograms and for checking drift over the run.
        "latency_samples_ms": [round(float(ms), 4) for ms in latencies_ms],
    }


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith(("model name", "hardware")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(detector: Detector) -> dict[str, Any]:
    """What a reader needs to compare numbers: host, backend, precision, input."""
    manifest = detector.manifest
    artifact = manifest.artifact
    env: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "precision": artifact.precision if artifact else "fp32",
        "input_shape": list(manifest.input.shape),
        "input_dtype": manifest.input.dtype,
    }
    env.update(detector.backend.describe())
    device = read_device_facts()
    if device["is_jetson"]:
        # Published Jetson numbers always state the power mode; so do ours.
        env["jetson"] = device
    return env


def format_report(result: dict[str, Any]) -> str:
    """A trtexec-like table: throughput, then latency and each stage in ms."""
    env = result["environment"]
    lines = [
        f"model: {result['model']}  backend: {env.get('backend')} {env.get('version', '')} "
        f"({env.get('execution_provider', env.get('device', ''))})  precision: {env.get('precision')}  "
        f"batch: {result['batch']}",
        f"Throughput: {result['throughput_ips']:.2f} inferences/s, {result['throughput_fps']:.2f} images/s "
        f"({result['iterations']} iterations in {result['wall_s']:.2f} s)",
        f"{'(ms)':<14}" + "".join(f"{k:>9}" for k in STAT_KEYS),
    ]
    rows = [("latency", result["latency_ms"])] + list(result["stages_ms"].items())
    for name, stats in rows:
        lines.append(f"{name:<14}" + "".join(f"{stats[k]:>9.3f}" for k in STAT_KEYS))
    lines.append(
        f"environment: {env.get('cpu')} ({env.get('cpu_count')} cpus), python {env.get('python')}, "
        f"threads {env.get('intra_op_threads', '-')}"
    )
    return "\n".join(lines)
