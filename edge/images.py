"""Reading still images for `jetkit detect` and friends, with errors that name the file.

An image larger than a pixel limit is refused from the size in its header, before it is decoded:
a small file can claim a size whose decoded pixels would fill the memory (OpenCV's own guard,
CV_IO_MAX_IMAGE_PIXELS, allows 2^30 pixels: 3 GB of BGR). PNG, JPEG, BMP and WebP headers are
read here; other formats are left to OpenCV's guard.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from edge.errors import JetkitError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
# 100 megapixels (300 MB decoded) is past any camera frame or dataset still a detector takes.
DEFAULT_MAX_IMAGE_PIXELS = 100_000_000
MAX_IMAGE_PIXELS_ENV = "JETKIT_MAX_IMAGE_PIXELS"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (C0-CF except DHT C4, JPG C8, DAC CC) carry the frame size.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# JPEG markers without a length: TEM, RST0-7, SOI.
_JPEG_STANDALONE = frozenset([0x01, *range(0xD0, 0xD9)])


def list_images(paths: list[str]) -> list[Path]:
    """Expand files and directories (sorted, images only, not recursive) into image paths."""
    found: list[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not images:
                raise JetkitError(f"directory {path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
            found.extend(images)
        elif path.is_file():
            found.append(path)
        else:
            raise JetkitError(f"image {path} does not exist")
    return found


def max_image_pixels(environ: Mapping[str, str] = os.environ) -> int:
    """The pixel limit: JETKIT_MAX_IMAGE_PIXELS where set, else DEFAULT_MAX_IMAGE_PIXELS."""
    text = environ.get(MAX_IMAGE_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_IMAGE_PIXELS
    if not text.isdigit() or int(text) < 1:
        raise JetkitError(
            f"{MAX_IMAGE_PIXELS_ENV} must be a whole number of pixels >= 1, got {text!r}"
        )
    return int(text)


def _be(data: memoryview, start: int, size: int) -> int:
    return int.from_bytes(data[start : start + size], "big")


def _le(data: memoryview, start: int, size: int) -> int:
    return int.from_bytes(data[start : start + size], "little")


def _jpeg_size_wh(data: memoryview) -> tuple[int, int] | None:
    """From the first start-of-frame segment, walking the segments before it."""
    position = 2
    while position + 9 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
        elif marker in _JPEG_STANDALONE:
            position += 2
        elif marker in _JPEG_SOF:
            return _be(data, position + 7, 2), _be(data, position + 5, 2)
        elif marker == 0xDA:  # scan data before any frame header: not a JPEG we can size
            return None
        else:
            position += 2 + _be(data, position + 2, 2)
    return None


def _webp_size_wh(data: memoryview) -> tuple[int, int] | None:
    chunk = bytes(data[12:16])
    if chunk == b"VP8X" and len(data) >= 30:
        return _le(data, 24, 3) + 1, _le(data, 27, 3) + 1
    if chunk == b"VP8L" and len(data) >= 25:
        bits = _le(data, 21, 4)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and len(data) >= 30:
        return _le(data, 26, 2) & 0x3FFF, _le(data, 28, 2) & 0x3FFF
    return None


def image_size_wh(data: bytes | memoryview) -> tuple[int, int] | None:
    """`(width, height)` from a PNG, JPEG, BMP or WebP file's header, without decoding it;
    None for another format or a header cut short."""
    view = memoryview(data)
    if bytes(view[:8]) == _PNG_SIGNATURE and bytes(view[12:16]) == b"IHDR" and len(view) >= 24:
        return _be(view, 16, 4), _be(view, 20, 4)
    if bytes(view[:2]) == b"\xff\xd8":
        return _jpeg_size_wh(view)
    if bytes(view[:2]) == b"BM" and len(view) >= 26 and _le(view, 14, 4) >= 40:
        # A negative height marks a top-down bitmap.
        return _le(view, 18, 4), abs(int.from_bytes(view[22:26], "little", signed=True))
    if bytes(view[:4]) == b"RIFF" and bytes(view[8:12]) == b"WEBP":
        return _webp_size_wh(view)
    return None


def read_image(path: Path, max_pixels: int | None = None) -> np.ndarray:
    """The image as 8-bit BGR `(H,W,3)`; grayscale and alpha images are converted. An image of
    more than `max_pixels` (None: `max_image_pixels()`) is refused before it is decoded."""
    import cv2

    data = np.fromfile(str(path), dtype=np.uint8)
    limit = max_image_pixels() if max_pixels is None else max_pixels
    size_wh = image_size_wh(data.data)
    if size_wh is not None and size_wh[0] * size_wh[1] > limit:
        width, height = size_wh
        raise JetkitError(
            f"image {path} is {width}x{height} ({width * height / 1e6:.0f} megapixels), over the "
            f"limit of {limit} pixels; raise it with --max-pixels or {MAX_IMAGE_PIXELS_ENV}"
        )
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise JetkitError(f"image {path} cannot be read (not an image, or corrupt)")
    return image
