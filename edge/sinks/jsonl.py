"""`jsonl://PATH` (or `-`, stdout): one JSON object per frame, the detections as
`jetkit detect --json` writes them."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import IO

from edge.errors import JetkitError
from edge.sinks.base import Result


class JsonlSink:
    """JSON lines to a file (created or appended to) or to stdout (`-`), flushed per line so a
    reader following the file or pipe sees each frame as it is delivered."""

    def __init__(self, uri: str, target: str) -> None:
        self.uri = uri
        self._path = None if target == "-" else Path(target)
        self._handle: IO[str] | None = None

    def open(self) -> None:
        if self._path is None:
            self._handle = sys.stdout
            return
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self._path, "a", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise JetkitError(
                f"cannot write {self._path} ({exc.strerror}); choose a writable path"
            ) from None

    def write(self, result: Result) -> None:
        assert self._handle is not None, "open() the sink first"
        self._handle.write(json.dumps(result.to_dict(), separators=(",", ":")) + "\n")
        self._handle.flush()

    def close(self) -> None:
        if self._handle is not None and self._handle is not sys.stdout:
            self._handle.close()
        self._handle = None
