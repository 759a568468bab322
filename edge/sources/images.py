"""`images://DIR` and single image paths: stills in name order, one per read, then the end. A
still that cannot be read raises FrameError; the next read goes on with the one after it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.errors import JetkitError
from edge.images import list_images, read_image
from edge.sources.base import FrameError
from edge.sources.uri import SourceSpec


class ImagesSource:
    """A finite source over a directory's images (sorted by name) or one image file."""

    live = False

    def __init__(self, spec: SourceSpec) -> None:
        if spec.kind != "images":
            raise ValueError(f"ImagesSource needs an images spec, got {spec.kind}")
        self.uri = spec.uri
        self.safe_uri = spec.safe_uri
        self.location = spec.location
        self._paths: list[Path] = []
        self._next = 0

    def open(self) -> None:
        try:
            self._paths = list_images([self.location])
        except JetkitError as error:
            raise JetkitError(f"source {self.safe_uri!r}: {error}") from None
        self._next = 0

    def read(self) -> np.ndarray | None:
        if self._next >= len(self._paths):
            return None
        path = self._paths[self._next]
        # Past the bad still before raising: the reader goes on with the next one.
        self._next += 1
        try:
            return read_image(path)
        except JetkitError as error:
            raise FrameError(str(error)) from None

    def close(self) -> None:
        self._next = len(self._paths)
