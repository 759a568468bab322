"""Which model file the daemon runs, and whether it has changed.

`model:` in the config is a model file, or a directory: a release (as deploy writes it) or a
`current` pointer (a symlink) to one. A release names its model in `release.json`, a path inside
the release (`{"model": "engines/3f9c…-fp16-b8-trt10.3.0-sm87-gpu.engine"}`); without one, its
only engine (where TensorRT runs) or its only ONNX is taken.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from edge.errors import JetkitError

RELEASE_INDEX = "release.json"
MODEL_SUFFIXES = (".onnx", ".engine", ".plan", ".trt")
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


def pick_model(names: list[str], index: dict[str, object] | None, tensorrt: bool) -> str:
    """The model among a release's files (`names`, POSIX paths inside it): the index's `model`,
    else the only engine (with TensorRT) or the only ONNX at its top. Pure; errors say what the
    release holds."""
    if index is not None:
        chosen = index.get("model")
        if not isinstance(chosen, str) or chosen not in names:
            raise JetkitError(
                f"{RELEASE_INDEX} names model {chosen!r}, which is not in the release"
            )
        return chosen
    top = [n for n in names if "/" not in n]  # without an index, only the release's own files
    engines = sorted(n for n in top if n.endswith(ENGINE_SUFFIXES))
    onnx = sorted(n for n in top if n.endswith(".onnx"))
    for candidates in ([engines] if tensorrt else []) + [onnx]:
        if len(candidates) == 1:
            return candidates[0]
        if len(candidates) > 1:
            raise JetkitError(
                f"the release holds several models ({', '.join(candidates)}); name one in "
                f'{RELEASE_INDEX} as {{"model": "<file>"}}'
            )
    raise JetkitError(f"the release holds no model ({', '.join(MODEL_SUFFIXES)} files)")


def model_file(pointer: Path, tensorrt: bool) -> Path:
    """The model file `pointer` stands for, symlinks resolved."""
    resolved = pointer.resolve()
    if resolved.is_file():
        return resolved
    if not resolved.is_dir():
        raise JetkitError(
            f"model {pointer} does not exist; set `model:` to a model file or release"
        )
    index_path = resolved / RELEASE_INDEX
    index = None
    if index_path.is_file():
        try:
            loaded = json.loads(index_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise JetkitError(f"{index_path} cannot be read ({exc})") from None
        index = loaded if isinstance(loaded, dict) else {}
    names = sorted(p.relative_to(resolved).as_posix() for p in resolved.rglob("*") if p.is_file())
    try:
        return resolved / pick_model(names, index, tensorrt)
    except JetkitError as exc:
        raise JetkitError(f"model {pointer} ({resolved}): {exc}") from None


@dataclass(frozen=True)
class ModelIdentity:
    """What changes when a new model is put in place: the resolved file, its size and mtime."""

    path: Path
    size_bytes: int
    mtime_ns: int


def identify(pointer: Path, tensorrt: bool) -> ModelIdentity:
    path = model_file(pointer, tensorrt)
    stat = os.stat(path)
    return ModelIdentity(path, stat.st_size, stat.st_mtime_ns)
