"""`jetkit`: one command line whose verbs each package registers (entry points `jetkit.verbs`).

A verb's `register(subparsers)` adds its sub-parser and sets `handler=fn(args) -> int`. A
JetkitError anywhere becomes one line `jetkit: error: …` and exit status 2; `--debug` shows
the traceback instead. A reader that closes stdout early (`jetkit … | head`) ends the command
quietly, with the status of a process stopped by SIGPIPE.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from importlib.metadata import entry_points

from edge.errors import JetkitError

VERB_GROUP = "jetkit.verbs"
# What a shell reports for a command that SIGPIPE stopped (`yes | head`): 128 + SIGPIPE.
BROKEN_PIPE_STATUS = 128 + signal.SIGPIPE


def stderr_log(message: str) -> None:
    """Progress for the person at the terminal: stdout is kept for the command's results."""
    print(message, file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jetkit",
        description="Train, distil, quantize, deploy and run detectors on NVIDIA Jetson.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB")
    subparsers.required = True
    for entry in sorted(entry_points(group=VERB_GROUP), key=lambda e: e.name):
        entry.load()(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        return int(args.handler(args) or 0)
    except BrokenPipeError:  # before OSError, which it is
        _discard_stdout()
        return BROKEN_PIPE_STATUS
    except JetkitError as exc:
        if debug:
            raise
        print(f"jetkit: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # Files and directories the user named: missing, unwritable, a file where a folder goes.
        if debug:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        print(f"jetkit: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("jetkit: interrupted", file=sys.stderr)
        return 130


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's flush of what is still buffered at
    exit does not raise BrokenPipeError again (the recipe of Python's `signal` documentation)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
