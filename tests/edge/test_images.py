"""Image sizes read from file headers, and the pixel limit that refuses an image before it is
decoded."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest
from image_files import png_header_only

from edge.errors import JetkitError
from edge.images import DEFAULT_MAX_IMAGE_PIXELS, image_size_wh, max_image_pixels, read_image


@pytest.mark.parametrize(
    ("suffix", "params"),
    [
        (".png", []),
        (".jpg", []),
        (".bmp", []),
        (".webp", []),
        (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]),
    ],
    ids=["png", "jpeg", "bmp", "webp-lossy", "webp-lossless"],
)
def test_the_header_gives_the_size_opencv_decodes(suffix, params):
    image = np.full((37, 53, 3), 90, np.uint8)
    ok, encoded = cv2.imencode(suffix, image, params)
    assert ok
    assert image_size_wh(encoded.tobytes()) == (53, 37)


def test_headers_opencv_does_not_write():
    exif = b"\xff\xe1" + struct.pack(">H", 18) + b"Exif\x00\x00" + b"\x00" * 10
    sof2 = b"\xff\xc2" + struct.pack(">HBHHB", 11, 8, 480, 640, 3) + b"\x00" * 3
    assert image_size_wh(b"\xff\xd8" + exif + b"\xff\xff" + sof2) == (640, 480)
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x10\x00\x00\x00"
    vp8x += (4999).to_bytes(3, "little") + (2999).to_bytes(3, "little")
    assert image_size_wh(b"RIFF\x00\x00\x00\x00WEBP" + vp8x) == (5000, 3000)
    top_down_bmp = b"BM" + b"\x00" * 12 + struct.pack("<Iii", 40, 64, -48)
    assert image_size_wh(top_down_bmp) == (64, 48)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x89PNG\r\n\x1a\n",
        b"\xff\xd8\xff\xda\x00\x02" + b"\x00" * 16,
        b"II*\x00" + b"\x00" * 64,
        b"garbage",
    ],
    ids=["empty", "png-cut-short", "jpeg-scan-first", "tiff", "garbage"],
)
def test_no_size_where_the_header_does_not_give_one(data):
    assert image_size_wh(data) is None


def test_an_image_over_the_limit_is_refused_before_it_is_decoded(tmp_path):
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_header_only(16000, 16000))
    with pytest.raises(
        JetkitError,
        match=r"huge.png is 16000x16000 \(256 megapixels\), over the limit of 100000000 pixels",
    ):
        read_image(huge)
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), np.zeros((20, 30, 3), np.uint8))
    with pytest.raises(JetkitError, match="over the limit of 500 pixels"):
        read_image(small, max_pixels=500)
    assert read_image(small, max_pixels=600).shape == (20, 30, 3)


def test_the_limit_comes_from_the_environment():
    assert max_image_pixels({}) == DEFAULT_MAX_IMAGE_PIXELS == 100_000_000
    assert max_image_pixels({"JETKIT_MAX_IMAGE_PIXELS": "300000000"}) == 300_000_000
    for bad in ("0", "-5", "lots", "1e9"):
        with pytest.raises(JetkitError, match="JETKIT_MAX_IMAGE_PIXELS must be a whole number"):
            max_image_pixels({"JETKIT_MAX_IMAGE_PIXELS": bad})
