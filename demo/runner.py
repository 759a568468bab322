"""Runs the demo's plan: each step a `jetkit` process, its output in `logs/NN-key.log` and shown
as it comes (indented under the step's line), its wall time kept. A failing step stops the demo
with the step named and the end of its log."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from demo.plan import Step
from edge.errors import JetkitError

Log = Callable[[str], None]
SERVE_STOP_TIMEOUT_S = 60.0
LOG_TAIL_LINES = 15


@dataclass(frozen=True)
class StepTiming:
    key: str
    title: str
    wall_s: float


def jetkit_executable() -> str:
    return str(Path(sys.executable).with_name("jetkit"))


def run_steps(steps: list[Step], logs: Path, log: Log, echo: bool = True) -> list[StepTiming]:
    logs.mkdir(parents=True, exist_ok=True)
    timings = []
    for number, step in enumerate(steps, 1):
        log(f"[{number}/{len(steps)}] {step.title}")
        log_path = logs / f"{number:02d}-{step.key}.log"
        started = time.perf_counter()
        status = _run(step, log_path, log if echo else None)
        wall_s = time.perf_counter() - started
        if status != 0:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-LOG_TAIL_LINES:]
            for line in tail:
                log(f"    {line}")
            raise JetkitError(
                f"demo step {number} ({step.key}: jetkit {' '.join(step.argv[:2])}) failed with "
                f"exit status {status}; its log: {log_path}"
            )
        log(f"    done in {wall_s:.1f} s")
        timings.append(StepTiming(step.key, step.title, wall_s))
    return timings


def _run(step: Step, log_path: Path, echo: Log | None) -> int:
    """Run one step: its stderr (and stdout, unless the step keeps it in a file) into the log
    and, line by line, to `echo`."""
    command = [jetkit_executable(), *step.argv]
    with open(log_path, "w", encoding="utf-8") as log_file:
        log_file.write("$ " + " ".join(command) + "\n")
        log_file.flush()
        if step.stdout is None:
            process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            stream = process.stdout
        else:
            step.stdout.parent.mkdir(parents=True, exist_ok=True)
            with open(step.stdout, "w", encoding="utf-8") as out:
                process = subprocess.Popen(command, stdout=out, stderr=subprocess.PIPE, text=True)
            stream = process.stderr
        assert stream is not None
        if step.run_s is not None:
            return _run_for(process, step.run_s, stream, log_file, echo)
        for line in stream:
            _tee(line, log_file, echo)
        return process.wait()


def _run_for(
    process: subprocess.Popen[str],
    run_s: float,
    stream: IO[str],
    log_file: IO[str],
    echo: Log | None,
) -> int:
    """Let a daemon run `run_s` seconds, then stop it as systemd would (SIGTERM); exit 0 is
    success. Its output is read meanwhile so that it never blocks on a full pipe."""
    reader = threading.Thread(target=_tee_all, args=(stream, log_file, echo))
    reader.start()
    deadline = time.monotonic() + run_s
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        status = process.wait(SERVE_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        status = process.wait()
    reader.join()
    return status


def _tee_all(stream: IO[str], log_file: IO[str], echo: Log | None) -> None:
    for line in stream:
        _tee(line, log_file, echo)


def _tee(line: str, log_file: IO[str], echo: Log | None) -> None:
    log_file.write(line)
    log_file.flush()
    text = line.rstrip("\n").split("\r")[-1]
    if echo is not None and text.strip():
        echo(f"    {text}")
