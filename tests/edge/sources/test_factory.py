"""open_source: the right reader for each kind and machine, opened, live ones reconnecting."""

import subprocess
import sys

import pytest
from net_helpers import free_port

from edge.errors import JetkitError
from edge.sources import (
    FileSource,
    GstSource,
    ImagesSource,
    OpenCVSource,
    ReconnectingSource,
    SourceError,
    SyntheticSource,
    make_source,
    open_source,
    parse_source_uri,
)

from .conftest import CLIP_FRAMES, read_all


@pytest.mark.parametrize(
    ("uri", "gstreamer", "kind"),
    [
        ("test://", True, SyntheticSource),
        ("images://shots", True, ImagesSource),
        ("clip.mp4", True, FileSource),
        ("clip.mp4", False, OpenCVSource),
        ("v4l2:///dev/video0", False, OpenCVSource),
        ("rtsp://cam/s", True, GstSource),
    ],
)
def test_picks_the_reader(uri, gstreamer, kind):
    assert type(make_source(parse_source_uri(uri), gstreamer=gstreamer)) is kind


def test_streams_need_gstreamer_where_opencv_cannot_stand_in():
    with pytest.raises(JetkitError, match="rtsp sources need GStreamer's Python bindings"):
        make_source(parse_source_uri("rtsp://cam/s"), gstreamer=False)


def test_opens_a_file_and_reads_it_to_the_end(clip_path):
    source = open_source(str(clip_path))
    assert isinstance(source, FileSource) and source.reader == "gstreamer"
    assert len(read_all(source)) == CLIP_FRAMES


def test_live_gst_pipelines_reconnect_and_synthetic_ones_need_not():
    source = open_source(
        "gst://videotestsrc num-buffers=2 ! videoconvert ! video/x-raw,format=BGR ! appsink"
    )
    assert isinstance(source, ReconnectingSource) and len(read_all(source)) == 2
    synthetic = open_source("test://?size=32x32&count=1&fps=1000", index=4)
    assert isinstance(synthetic, SyntheticSource) and len(read_all(synthetic)) == 1


def test_bad_sources_fail_at_open(tmp_path):
    with pytest.raises(JetkitError, match=f"no such file {tmp_path}/gone.mp4"):
        open_source(str(tmp_path / "gone.mp4"))
    with pytest.raises(JetkitError, match="no such device /dev/video9"):
        open_source("v4l2:///dev/video9")
    with pytest.raises(SourceError, match="Could not open resource"):
        open_source(f"rtsp://127.0.0.1:{free_port()}/stream")
    with pytest.raises(JetkitError, match="unknown scheme"):
        open_source("http://cam/video")


def test_importing_sources_loads_neither_gstreamer_nor_opencv():
    code = "import sys, edge.sources; print(sorted({'gi', 'cv2'} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
