"""What a source can check before it starts: that its file or device is there at all."""

from __future__ import annotations

from pathlib import Path

from edge.errors import JetkitError
from edge.sources.uri import SourceSpec


def ensure_exists(spec: SourceSpec) -> None:
    """JetkitError naming the path when a file source's file or a camera's device is missing:
    such a source cannot start, and retrying would not help."""
    path = Path(spec.location)
    if spec.kind == "file" and not path.is_file():
        raise JetkitError(f"source {spec.safe_uri!r}: no such file {path}")
    if spec.kind == "v4l2" and not path.exists():
        raise JetkitError(
            f"source {spec.safe_uri!r}: no such device {path}; `v4l2-ctl --list-devices` lists the "
            "cameras (is it plugged in?)"
        )
