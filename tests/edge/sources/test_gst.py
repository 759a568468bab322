"""GStreamer sources on real pipelines: videotestsrc, a video file the test writes, a refused
RTSP host, and the row padding of odd-width BGR frames."""

import time

import numpy as np
import pytest
from net_helpers import free_port

from edge.errors import JetkitError
from edge.sources.base import SourceError
from edge.sources.gst import GstSource, bgr_from_bytes, bus_error_text
from edge.sources.uri import parse_source_uri

from .conftest import assert_same_clip, close_during_read, read_all

RED_321 = (
    "gst://videotestsrc num-buffers=5 pattern=red ! video/x-raw,width=321,height=240 ! "
    "videoconvert ! video/x-raw,format=BGR ! appsink name=sink"
)


def opened(uri: str, **timeouts: float) -> GstSource:
    source = GstSource(parse_source_uri(uri), **timeouts)
    source.open()
    return source


def test_bgr_rows_padded_to_four_bytes_come_out_unpadded():
    width, height, stride = 3, 2, 12  # 9 bytes of pixels + 3 of padding a row
    rows = np.arange(height * stride, dtype=np.uint8).reshape(height, stride)
    image = bgr_from_bytes(rows.tobytes(), width, height, stride)
    np.testing.assert_array_equal(image, rows[:, :9].reshape(height, width, 3))
    assert image.flags.c_contiguous and image.flags.writeable


def test_odd_width_frames_keep_their_pixels():
    frames = read_all(opened(RED_321))
    assert len(frames) == 5
    for frame in frames:
        assert frame.shape == (240, 321, 3)
        assert (frame == (0, 0, 255)).all()


def test_a_video_file_reads_every_frame(clip_path, clip_frames):
    source = opened(clip_path.as_uri())
    assert source.live is False
    assert_same_clip(read_all(source), clip_frames)


def test_a_missing_file_fails_at_open_naming_it(tmp_path):
    with pytest.raises(JetkitError, match=f"no such file {tmp_path}/gone.mp4"):
        opened(str(tmp_path / "gone.mp4"))


def test_a_file_that_is_no_video_fails_at_open(tmp_path):
    path = tmp_path / "notes.avi"
    path.write_text("this is not a video\n" * 100)
    with pytest.raises(JetkitError, match="notes.avi"):
        opened(str(path))


def test_a_missing_camera_fails_at_open_naming_the_device():
    with pytest.raises(JetkitError, match="no such device /dev/video9; `v4l2-ctl --list-devices`"):
        opened("v4l2:///dev/video9")


def test_a_refused_rtsp_host_fails_at_open_as_a_passing_failure():
    start_s = time.monotonic()
    with pytest.raises(SourceError, match=r"rtspsrc\d+: Could not open resource") as caught:
        opened(f"rtsp://user:secret@127.0.0.1:{free_port()}/stream")
    assert time.monotonic() - start_s < 5
    assert "secret" not in str(caught.value)


def test_a_pipeline_that_cannot_be_built_names_the_problem():
    with pytest.raises(JetkitError, match='no element "nosuchsrc"'):
        opened("gst://nosuchsrc ! appsink")


def test_frames_that_are_not_bgr_are_refused_with_the_fix():
    with pytest.raises(JetkitError, match="gets RGB, not BGR; end the pipeline with `videoconvert"):
        opened("gst://videotestsrc num-buffers=1 ! video/x-raw,format=RGB ! appsink")


def test_a_live_stream_that_stalls_raises():
    # One frame, then a live source that never sends another: what a hung camera looks like.
    source = opened(
        "gst://videotestsrc is-live=true ! video/x-raw,framerate=1/100,width=32,height=32 ! "
        "videoconvert ! video/x-raw,format=BGR ! appsink sync=false",
        stall_timeout_s=0.2,
    )
    assert source.read().shape == (32, 32, 3)
    with pytest.raises(SourceError, match="no frame for 0.2 s"):
        source.read()
    source.close()


def test_close_from_another_thread_ends_a_blocked_read_promptly():
    source = opened(
        "gst://videotestsrc is-live=true ! video/x-raw,framerate=1/100,width=32,height=32 ! "
        "videoconvert ! video/x-raw,format=BGR ! appsink name=sink max-buffers=1 drop=true sync=false"
    )
    assert source.read() is not None
    results, close_s = close_during_read(source)
    assert results == [None] and close_s < 0.5
    source.close()


def test_reopening_plays_the_pipeline_again():
    source = opened(RED_321)
    assert len(read_all(source)) == 5
    source.open()
    assert len(read_all(source)) == 5


def test_a_closed_source_reads_nothing_even_with_a_frame_waiting():
    source = opened(RED_321)
    source.close()
    assert source.read() is None


def test_known_failures_come_with_their_fix():
    debug = "Argus: Failed to create CaptureSession (in src/eglstream/...)"
    assert bus_error_text("nvarguscamerasrc0", "Internal data stream error.", debug) == (
        "nvarguscamerasrc0: Internal data stream error; restart the camera daemon: "
        "sudo systemctl restart nvargus-daemon"
    )
    assert bus_error_text(
        "decodebin0", "Your GStreamer installation is missing a plug-in.", None
    ) == (
        "decodebin0: Your GStreamer installation is missing a plug-in; install GStreamer's "
        "decoders: sudo apt-get install gstreamer1.0-libav gstreamer1.0-plugins-bad"
    )
    assert bus_error_text("rtspsrc0", "Could not open resource.", None) == (
        "rtspsrc0: Could not open resource."
    )
