"""Atomic file writes: a reader (or a crash) sees the old content or the new, never half.

`mkstemp` and `mkdtemp` create 0600 files and 0700 folders. Written in place they would make a
release or a summary unreadable to a daemon running as another user, so what they create gets
the modes a plain `open` or `mkdir` would (the umask's), unless it holds a secret (`private`)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


def current_umask() -> int:
    """The process umask, read without changing it where Linux tells it (changing it, even
    briefly, races with other threads creating files)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def public_mode(directory: bool = False) -> int:
    """The mode `open` (0666) or `mkdir` (0777) gives under the umask."""
    return (0o777 if directory else 0o666) & ~current_umask()


def make_temp_dir(parent: Path, prefix: str) -> Path:
    """A new folder in `parent` with the umask's mode (not mkdtemp's 0700)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    os.chmod(folder, public_mode(directory=True))
    return folder


@contextmanager
def _staged(path: Path, private: bool) -> Iterator[tuple[BinaryIO, Path]]:
    """A handle on a new temp file beside `path` (`.NAME.*.tmp`), synced when the block ends;
    after an exception it is gone. It gets the umask's mode, or 0600 if `private`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if not private:
            os.fchmod(fd, public_mode())
        with os.fdopen(fd, "wb") as handle:
            yield handle, Path(tmp)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def open_atomic(path: Path, private: bool = False) -> Iterator[BinaryIO]:
    """A binary handle whose content replaces `path` when the block ends without an exception;
    until then (and after an exception or a kill) `path` keeps its old content, and no temp file
    is left behind except by a kill. The file gets the umask's mode, or 0600 if `private`."""
    with _staged(path, private) as (handle, tmp):
        yield handle
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def stage_bytes(path: Path, data: bytes) -> Path:
    """`data` written and synced in a temp file beside `path` (`.NAME.*.tmp`), not yet in its
    place: the part of an atomic write that needs disk space, done ahead; `os.replace` it onto
    `path` to finish (a rename needs none)."""
    with _staged(path, private=False) as (handle, tmp):
        handle.write(data)
    return tmp


def write_text_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` so that a reader sees either the old or the new content."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: Path, data: bytes, private: bool = False) -> None:
    with open_atomic(path, private) as handle:
        handle.write(data)
