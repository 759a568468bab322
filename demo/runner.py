"""Runs the demo's plan: each step a `jetkit` process, its output in `logs/NN-key.log` and shown
as it comes (indented under the step's line), its wall time kept. A failing step stops the demo
with the step named and the end of its log; a gated step the gate refused is tried again as its
plan says, and if still refused the demo goes on without it (a result to show, not a crash)."""

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

from demo.plan import REFUSED_STATUS, Step
from edge.errors import JetkitError

Log = Callable[[str], None]
SERVE_STOP_TIMEOUT_S = 60.0
LOG_TAIL_LINES = 15


@dataclass(frozen=True)
class StepTiming:
    """How a step went: `outcome` ok, refused (every try) or skipped (it needed a refused step);
    `tries` the log of each run, in order (retries after the first)."""

    key: str
    title: str
    wall_s: float
    outcome: str = "ok"
    tries: tuple[str, ...] = ()


def tries_text(count: int) -> str:
    return f"{count} tr{'y' if count == 1 else 'ies'}"


def jetkit_executable() -> str:
    return str(Path(sys.executable).with_name("jetkit"))


def run_steps(steps: list[Step], logs: Path, log: Log, echo: bool = True) -> list[StepTiming]:
    logs.mkdir(parents=True, exist_ok=True)
    timings: list[StepTiming] = []
    refused: set[str] = set()
    for number, step in enumerate(steps, 1):
        heading = f"[{number}/{len(steps)}] {step.title}"
        argvs = [step.argv, *(retry.argv for retry in step.retries)]
        if step.needs in refused:
            if step.instead is None:
                log(f"{heading}: skipped, {step.needs} was refused")
                timings.append(StepTiming(step.key, step.title, 0.0, "skipped"))
                continue
            argvs = [step.instead]
        log(heading)
        started = time.perf_counter()
        paths: list[str] = []
        for attempt, argv in enumerate(argvs):
            if attempt:
                log(f"    refused; trying again with {step.retries[attempt - 1].why}")
            suffix = f"-retry{attempt}" if attempt else ""
            log_path = logs / f"{number:02d}-{step.key}{suffix}.log"
            paths.append(str(log_path))
            status = _run(step, argv, log_path, log if echo else None)
            if status != REFUSED_STATUS or not step.optional:
                break
            if time.perf_counter() - started >= step.retry_budget_s:
                break
        wall_s = time.perf_counter() - started
        if status == REFUSED_STATUS and step.optional:
            log(
                f"    refused after {tries_text(len(paths))} ({wall_s:.1f} s): the demo goes on "
                "without it"
            )
            refused.add(step.key)
            timings.append(StepTiming(step.key, step.title, wall_s, "refused", tuple(paths)))
            continue
        if status != 0:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-LOG_TAIL_LINES:]
            for line in tail:
                log(f"    {line}")
            raise JetkitError(
                f"demo step {number} ({step.key}: jetkit {' '.join(argv[:2])}) failed with "
                f"exit status {status}; its log: {log_path}"
            )
        log(f"    done in {wall_s:.1f} s")
        timings.append(StepTiming(step.key, step.title, wall_s, "ok", tuple(paths)))
    return timings


def _run(step: Step, argv: tuple[str, ...], log_path: Path, echo: Log | None) -> int:
    """Run `argv` for `step`: its stderr (and stdout, unless the step keeps it in a file) into
    the log and, line by line, to `echo`."""
    command = [jetkit_executable(), *argv]
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
