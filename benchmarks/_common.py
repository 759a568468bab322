"""Shared helpers for the benchmarks: arguments, interleaved timing, medians, tables, JSON.

Every benchmark compares a candidate with an anchor in the same run: the candidates are run
alternately (the order flips every repeat) so that machine noise hits both alike, and the
reported figure is the median over repeats. Nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any


def parse_args(doc: str | None, default_repeats: int) -> argparse.Namespace:
    """`[--repeats N] [--json FILE]`, with the module docstring as the help text."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=default_repeats,
        help=f"interleaved repeats per candidate (default {default_repeats})",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    return args


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def interleaved(
    candidates: dict[str, Callable[[], Any]], repeats: int, number: int = 1
) -> dict[str, list[float]]:
    """Time each candidate `repeats` times, alternating candidates (order reversed on odd
    repeats). One sample = the mean ms per call over `number` back-to-back calls.
    Returns `{name: [ms per repeat]}`."""
    names = list(candidates)
    samples: dict[str, list[float]] = {name: [] for name in names}
    clock = time.perf_counter
    for name in names:  # one untimed warm-up call each
        candidates[name]()
    for rep in range(repeats):
        gc.collect()
        for name in names if rep % 2 == 0 else names[::-1]:
            func = candidates[name]
            start = clock()
            for _ in range(number):
                func()
            samples[name].append((clock() - start) * 1e3 / number)
    return samples


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table: first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        parts = [row[0].ljust(widths[0])] + [
            v.rjust(w) for v, w in zip(row[1:], widths[1:], strict=True)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule] + [line(r) for r in cells[1:]])


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(*modules: str) -> dict[str, Any]:
    """CPU, core count, Python and the versions of the named (already importable) modules."""
    env: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
    }
    for module in modules:
        try:
            env[module] = __import__(module).__version__
        except ImportError:
            env[module] = "not installed"
    return env


def report(title: str, env: dict[str, Any], body: str) -> None:
    print(f"{title}")
    print(", ".join(f"{k} {v}" for k, v in env.items()))
    print()
    print(body)


def finish(args: argparse.Namespace, result: dict[str, Any], ok: bool) -> int:
    """Write `--json` if asked; return the exit status (1 only for a correctness mismatch)."""
    result = {**result, "outputs_match": ok, "argv": sys.argv}
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2, default=str)
    if not ok:
        print("\nMISMATCH: outputs differ from the reference (see the table)")
    return 0 if ok else 1
