"""Cost of `import edge`: wall time of `python -c "import edge"` in a fresh subprocess.

Anchor, in the same run: `python -c "pass"` (the interpreter's own start-up), run the same number
of times, alternating with the candidate. Reports both medians and their difference (what
`import edge` itself adds). Target: median `import edge` wall time < 150 ms.

Check (exit 1 if it fails): after `import edge` in a fresh interpreter, none of `torch`,
`onnxruntime`, `cv2` is in `sys.modules` (they must load lazily, inside the functions that need
them).
"""

from __future__ import annotations

import subprocess
import sys
import time

from _common import environment, finish, interleaved, median, parse_args, report, table

HEAVY = ("torch", "onnxruntime", "cv2")
PROBE = f"import sys, edge; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"


def run_python(code: str) -> None:
    subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.DEVNULL)


def main() -> int:
    args = parse_args(__doc__, default_repeats=15)
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], check=True, capture_output=True, text=True
    )
    loaded = [m for m in probe.stdout.strip().split(",") if m]
    clock = time.perf_counter
    start = clock()
    times = interleaved(
        {"import edge": lambda: run_python("import edge"), "pass": lambda: run_python("pass")},
        args.repeats,
    )
    wall_s = clock() - start
    edge_ms, pass_ms = median(times["import edge"]), median(times["pass"])
    rows = [
        ['python -c "import edge"', edge_ms, edge_ms / pass_ms],
        ['python -c "pass"', pass_ms, 1.0],
        ["difference (import edge)", edge_ms - pass_ms, ""],
    ]
    env = environment()
    report(
        f"fresh-interpreter wall time, medians of {args.repeats} interleaved runs each "
        f"({wall_s:.1f} s) (target: import edge < 150 ms)",
        env,
        table(["command", "median ms", "ratio to pass"], rows)
        + f"\n\nheavy modules loaded by `import edge`: {', '.join(loaded) or 'none'} "
        f"(checked: {', '.join(HEAVY)})",
    )
    result = {
        "benchmark": "import",
        "environment": env,
        "import_edge_ms": edge_ms,
        "python_pass_ms": pass_ms,
        "difference_ms": edge_ms - pass_ms,
        "heavy_modules_loaded": loaded,
        "samples_ms": times,
    }
    return finish(args, result, not loaded)


if __name__ == "__main__":
    sys.exit(main())
