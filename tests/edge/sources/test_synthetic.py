"""test:// frames: paced like a camera, the same for a seed, and found by the blob detector."""

import time

import numpy as np
import pytest

from edge import Detector
from edge.sources.synthetic import SyntheticSource, blob_boxes, frame_maker, next_slot
from edge.sources.uri import SyntheticParams, parse_source_uri

from .conftest import close_during_read


def opened(uri: str) -> SyntheticSource:
    source = SyntheticSource(parse_source_uri(uri))
    source.open()
    return source


def test_delivers_count_frames_at_fps():
    source = opened("test://?size=64x48&fps=50&count=10")
    start_s = time.monotonic()
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
    elapsed_s = time.monotonic() - start_s
    assert all(frame.shape == (48, 64, 3) and frame.dtype == np.uint8 for frame in frames)
    # Frame 0 is due at open, frame 9 at 9/50 s: never sooner. A reader that oversleeps a slot
    # (a busy machine) misses that frame, and the miss is counted.
    assert elapsed_s >= 0.17
    assert len(frames) + source.skipped_frames == 10 and len(frames) >= 5


def test_a_slow_reader_gets_the_newest_frame_and_misses_count_as_skipped():
    source = opened("test://?size=32x32&fps=100&count=3")
    source.read()
    time.sleep(0.1)
    source.read()
    # About 10 frames fell due during the sleep; only the newest was produced.
    assert source.skipped_frames >= 8
    assert source.read() is not None and source.read() is None


def test_next_slot_waits_for_the_next_frame_or_jumps_to_the_newest():
    assert next_slot(10.0, 10.0, last_slot=-1, now_s=10.0) == (0, 0.0)
    slot, wait_s = next_slot(10.0, 10.0, last_slot=0, now_s=10.04)
    assert slot == 1 and wait_s == pytest.approx(0.06)
    assert next_slot(10.0, 10.0, last_slot=0, now_s=10.55) == (5, 0.0)


@pytest.mark.parametrize("pattern", ["blobs", "noise", "gradient"])
def test_frames_are_the_same_for_a_seed(pattern):
    params = SyntheticParams(size_wh=(96, 64), pattern=pattern, seed=3)
    first, again = frame_maker(params), frame_maker(params)
    for index in (0, 1, 17):
        np.testing.assert_array_equal(first(index), again(index))
    assert not np.array_equal(first(0), first(1))
    other = frame_maker(SyntheticParams(size_wh=(96, 64), pattern=pattern, seed=4))
    assert pattern == "gradient" or not np.array_equal(first(0), other(0))


def test_blob_boxes_move_and_stay_in_their_bands():
    size_wh = (1280, 720)
    for index in range(0, 400, 7):
        boxes = blob_boxes(size_wh, index, seed=0)
        for band, (x0, y0, x1, y1) in enumerate(boxes.values()):
            assert 0 <= x0 < x1 <= 1280 and band * 240 <= y0 < y1 <= (band + 1) * 240
    assert blob_boxes(size_wh, 0, 0) != blob_boxes(size_wh, 5, 0)


def test_the_blob_detector_finds_the_boxes(blob_onnx):
    params = SyntheticParams(size_wh=(1280, 720))
    frame = frame_maker(params)(42)
    detections = Detector.open(blob_onnx)(frame)
    found = dict(zip(detections.names, detections.xyxy, strict=True))
    expected = blob_boxes(params.size_wh, 42, params.seed)
    assert sorted(found) == sorted(expected)
    for name, box in expected.items():
        # The 4x downscale to the 320x320 input blurs edges by about one input pixel.
        np.testing.assert_allclose(found[name], box, atol=8)


def test_close_wakes_a_read_waiting_for_its_frame():
    source = opened("test://?size=32x32&fps=0.1")
    source.read()
    results, close_s = close_during_read(source, settle_s=0.05)
    assert results == [None] and close_s < 0.2


def test_reopening_starts_again():
    source = opened("test://?size=32x32&fps=1000&count=2")
    first = [source.read(), source.read(), source.read()]
    source.close()
    source.open()
    assert first[2] is None
    np.testing.assert_array_equal(source.read(), first[0])
