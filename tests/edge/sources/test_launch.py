"""Pipeline text for each source kind, with NVIDIA elements present and absent."""

import pytest

from edge.errors import JetkitError
from edge.sources.gst import gst_modules
from edge.sources.launch import caps_framerate, pipeline_for, quote
from edge.sources.uri import parse_source_uri

LIVE_SINK = (
    "videoconvert ! video/x-raw,format=BGR ! appsink name=sink max-buffers=1 drop=true sync=false"
)
FILE_SINK = (
    "videoconvert ! video/x-raw,format=BGR ! appsink name=sink max-buffers=4 drop=false sync=false"
)
NVIDIA = {"nvarguscamerasrc", "nvv4l2decoder", "nvvidconv"}


def on_jetson(name: str) -> bool:
    return name in NVIDIA


def elsewhere(name: str) -> bool:
    return False


CASES = [
    (
        "csi://0?width=1920&height=1080&fps=30&flip=2",
        on_jetson,
        "nvarguscamerasrc sensor-id=0 ! "
        "video/x-raw(memory:NVMM),width=1920,height=1080,framerate=30/1,format=NV12 ! "
        f"nvvidconv flip-method=2 ! video/x-raw,format=BGRx ! {LIVE_SINK}",
    ),
    (
        "v4l2:///dev/video0?width=640&height=480&fps=30",
        on_jetson,
        f'v4l2src device="/dev/video0" ! video/x-raw,width=640,height=480,framerate=30/1 ! {LIVE_SINK}',
    ),
    ("v4l2:///dev/video1", elsewhere, f'v4l2src device="/dev/video1" ! video/x-raw ! {LIVE_SINK}'),
    (
        "v4l2:///dev/video0?format=mjpg&fps=29.97",
        on_jetson,
        'v4l2src device="/dev/video0" ! image/jpeg,framerate=2997/100 ! nvv4l2decoder mjpeg=1 ! '
        f"nvvidconv ! video/x-raw,format=BGRx ! {LIVE_SINK}",
    ),
    (
        "v4l2:///dev/video0?format=mjpg",
        elsewhere,
        f'v4l2src device="/dev/video0" ! image/jpeg ! jpegdec ! {LIVE_SINK}',
    ),
    (
        "rtsp://cam:554/live?latency=50",
        on_jetson,
        'rtspsrc location="rtsp://cam:554/live" latency=50 drop-on-latency=true ! rtph264depay ! '
        f"h264parse ! nvv4l2decoder ! nvvidconv ! video/x-raw,format=BGRx ! {LIVE_SINK}",
    ),
    (
        "rtsp://cam/live?codec=h265",
        on_jetson,
        'rtspsrc location="rtsp://cam/live" latency=100 drop-on-latency=true ! rtph265depay ! '
        f"h265parse ! nvv4l2decoder ! nvvidconv ! video/x-raw,format=BGRx ! {LIVE_SINK}",
    ),
    (
        "rtsp://cam/live",
        elsewhere,
        f'rtspsrc location="rtsp://cam/live" latency=100 drop-on-latency=true ! decodebin ! {LIVE_SINK}',
    ),
    (
        "/clips/a b.mp4",
        on_jetson,
        f'filesrc location="/clips/a b.mp4" ! decodebin ! nvvidconv ! video/x-raw,format=BGRx ! {FILE_SINK}',
    ),
    ("/clips/a.mp4", elsewhere, f'filesrc location="/clips/a.mp4" ! decodebin ! {FILE_SINK}'),
    ("gst://videotestsrc ! appsink", elsewhere, "videotestsrc ! appsink"),
]


@pytest.mark.parametrize(
    ("uri", "has_element", "expected"),
    CASES,
    ids=[f"{uri}-{has.__name__}" for uri, has, _ in CASES],
)
def test_pipeline_text(uri, has_element, expected):
    assert pipeline_for(parse_source_uri(uri), has_element) == expected


def test_csi_without_argus_names_the_missing_elements():
    with pytest.raises(JetkitError, match="csi://0 needs nvarguscamerasrc and nvvidconv"):
        pipeline_for(parse_source_uri("csi://0"), elsewhere)


def test_synthetic_and_still_sources_have_no_pipeline():
    with pytest.raises(ValueError, match="not read through GStreamer"):
        pipeline_for(parse_source_uri("test://"), elsewhere)


def test_framerates_are_fractions():
    assert [caps_framerate(fps) for fps in (30, 7.5, 29.97)] == ["30/1", "15/2", "2997/100"]


@pytest.mark.parametrize(
    "uri", ["v4l2:///dev/video0?format=mjpg&fps=15", "rtsp://u:p@cam/s?a=1&b=2"]
)
def test_software_pipelines_are_valid_gst_launch_text(uri):
    gst, _, _ = gst_modules()
    pipeline = gst.parse_launch(pipeline_for(parse_source_uri(uri), elsewhere))
    assert pipeline.get_by_name("sink").get_property("drop") is True


def test_quoted_paths_reach_the_element_unchanged():
    gst, _, _ = gst_modules()
    path = '/tmp/odd "name" \\ with ! and spaces.mp4'
    pipeline = gst.parse_launch(f"filesrc name=src location={quote(path)} ! fakesink")
    assert pipeline.get_by_name("src").get_property("location") == path
