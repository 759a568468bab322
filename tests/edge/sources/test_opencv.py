"""The OpenCV fallback reads the same video file as GStreamer does."""

import pytest

from edge.errors import JetkitError
from edge.sources.gst import GstSource
from edge.sources.opencv import OpenCVSource
from edge.sources.uri import parse_source_uri

from .conftest import assert_same_clip, read_all


def test_reads_the_file_frame_for_frame_like_gstreamer(clip_path, clip_frames):
    spec = parse_source_uri(clip_path.as_uri())
    through_opencv, through_gst = OpenCVSource(spec), GstSource(spec)
    through_opencv.open()
    through_gst.open()
    frames = read_all(through_opencv)
    assert_same_clip(frames, clip_frames)
    for ours, theirs in zip(frames, read_all(through_gst), strict=True):
        # Two JPEG decoders (libjpeg's and GStreamer's): chroma upsampling differs a little.
        difference = abs(ours.astype(int) - theirs)
        assert difference.mean() < 1 and difference.max() <= 8
    assert through_opencv.read() is None


def test_a_missing_file_or_camera_fails_at_open(tmp_path):
    with pytest.raises(JetkitError, match=f"no such file {tmp_path}/gone.avi"):
        OpenCVSource(parse_source_uri(str(tmp_path / "gone.avi"))).open()
    with pytest.raises(JetkitError, match="no such device /dev/video9"):
        OpenCVSource(parse_source_uri("v4l2:///dev/video9")).open()


def test_a_file_that_is_no_video_fails_at_open(tmp_path):
    path = tmp_path / "notes.avi"
    path.write_text("this is not a video\n" * 100)
    with pytest.raises(JetkitError, match="OpenCV cannot open"):
        OpenCVSource(parse_source_uri(str(path))).open()


def test_close_twice_and_read_after_close(clip_path):
    source = OpenCVSource(parse_source_uri(str(clip_path)))
    source.open()
    source.close()
    source.close()
    assert source.read() is None
