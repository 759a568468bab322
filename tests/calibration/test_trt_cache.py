"""The TensorRT calibration cache text format, against a cache TensorRT 8.6.1 wrote."""

import struct

import pytest

from calibration.trt_cache import (
    CalibrationCache,
    format_cache,
    hex_to_scale,
    parse_cache,
    read_cache,
    scale_to_hex,
    version_number,
    write_cache,
)
from edge.errors import JetkitError

# The head of a cache TensorRT 8.6.1 wrote for a YOLOv8 ONNX (ultralytics issue #14121).
TENSORRT_CACHE = """TRT-8601-EntropyCalibration2
images: 3b66eddc
168: 3dc6cf6e
169: 3c010a14
"""


def test_reads_a_cache_tensorrt_wrote():
    cache = parse_cache(TENSORRT_CACHE)
    assert cache.version == 8601 and cache.algorithm == "EntropyCalibration2"
    assert list(cache.scales) == ["images", "168", "169"]
    # The input is scaled to [0, 1]: amax 1.0 is a scale of 1/127 (to entropy's rounding).
    assert cache.amax("169") == pytest.approx(1.0, rel=1e-3)
    assert cache.scales["images"] == struct.unpack("!f", bytes.fromhex("3b66eddc"))[0]


def test_writing_reproduces_tensorrts_text_exactly():
    assert format_cache(parse_cache(TENSORRT_CACHE)) == TENSORRT_CACHE


def test_ranges_become_scales_amax_over_127_and_back():
    cache = CalibrationCache.from_amax({"images": 1.0, "act": 12.7, "dead": 0.0}, "8.6.1")
    assert cache.header == "TRT-8601-EntropyCalibration2"
    assert cache.scales["act"] == pytest.approx(0.1)
    text = format_cache(cache)
    assert "dead: 0\n" in text
    again = parse_cache(text)
    assert again.amax("act") == pytest.approx(12.7, rel=1e-6) and again.amax("dead") == 0


def test_hex_has_no_leading_zeros_and_round_trips_float32():
    assert scale_to_hex(0.0) == "0"
    assert scale_to_hex(1.0) == "3f800000"
    tiny = 1e-40  # a subnormal: its bits start with zeros
    assert not scale_to_hex(tiny).startswith("0")
    assert hex_to_scale(scale_to_hex(tiny)) == struct.unpack("!f", struct.pack("!f", tiny))[0]


def test_version_numbers_follow_nvinferversion():
    assert version_number("8.6.1") == 8601
    assert version_number("8.5.2.2") == 8502
    assert version_number("10.3.0") == 100300


def test_files_are_written_atomically_and_read_back(tmp_path):
    path = write_cache(
        CalibrationCache.from_amax({"x": 2.0}, "10.3.0", "MinMaxCalibration"), tmp_path / "c.cache"
    )
    assert read_cache(path).amax("x") == pytest.approx(2.0)
    assert [p.name for p in tmp_path.iterdir()] == ["c.cache"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", ":1: not a TensorRT calibration cache"),
        ("images 1 2 3\n", ":1: not a TensorRT calibration cache"),
        ("TRT-8601-Percentile\n", ":1: calibration algorithm 'Percentile'"),
        ("TRT-8601-EntropyCalibration2\nimages 3b66eddc\n", ":2: expected '<tensor>: <hex scale>'"),
        ("TRT-8601-EntropyCalibration2\nimages: zz\n", ":2: 'zz' is not a hex float32"),
        ("TRT-8601-EntropyCalibration2\na: 1\nb: 7fc00000\n", "scale of 'b' must be finite"),
    ],
)
def test_bad_caches_name_the_line(text, message):
    with pytest.raises(JetkitError, match=message.replace("(", r"\(")):
        parse_cache(text, "model.cache")


def test_missing_or_binary_files_are_clear_errors(tmp_path):
    with pytest.raises(JetkitError, match="does not exist"):
        read_cache(tmp_path / "none.cache")
    binary = tmp_path / "engine.cache"
    binary.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(JetkitError, match="not a text TensorRT calibration cache"):
        read_cache(binary)
