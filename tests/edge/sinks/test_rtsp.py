"""rtsp:// out: the URI and the encoder choice, a real player (rtspsrc in a GStreamer source)
that sees the annotated frames, and the package to install where the server is missing."""

from __future__ import annotations

import threading

import pytest
from net_helpers import free_port

from edge.errors import JetkitError
from edge.sinks import open_sink
from edge.sinks.rtsp_uri import RtspOutConfig, parse_rtsp_out_uri, rtsp_launch
from edge.sources.gst import GstSource, gstreamer_available
from edge.sources.uri import parse_source_uri

from .conftest import SCENE_SIZE_WH, assert_shows_annotations


def test_uri_gives_address_and_path():
    assert parse_rtsp_out_uri("rtsp://:8600/live") == RtspOutConfig("0.0.0.0", 8600, "live")
    config = parse_rtsp_out_uri("rtsp://127.0.0.1/cams")
    assert config == RtspOutConfig("127.0.0.1", 8554, "cams")
    assert config.mount_for("door") == "/cams/door"
    for uri, message in [
        ("rtsp://h:x/live", "port must be a number"),
        ("rtsp://h:1/", "give one path name"),
        ("rtsp://h:1/a/b", "give one path name"),
        ("rtsp://h:1/a?latency=1", "unknown param 'latency'"),
    ]:
        with pytest.raises(JetkitError, match=message):
            parse_rtsp_out_uri(uri)


def test_the_best_encoder_there_is_is_chosen():
    jetson = rtsp_launch("video/x-raw", lambda name: True)
    assert "nvv4l2h264enc" in jetson and "rtph264pay name=pay0" in jetson
    desktop = rtsp_launch("video/x-raw", lambda name: name != "nvv4l2h264enc")
    assert "x264enc" in desktop
    assert "rtpjpegpay" in rtsp_launch("video/x-raw", lambda name: name == "jpegenc")
    with pytest.raises(JetkitError, match="no video encoder"):
        rtsp_launch("video/x-raw", lambda name: False)


@pytest.fixture
def served(make_results):
    """The kit's rtsp:// sink on a free local port, fed one annotated result 30 times a second:
    `(stream URL, the result, what the sink logged)`."""
    from edge.sinks.rtsp import rtsp_server_available

    if not gstreamer_available() or not rtsp_server_available():
        pytest.skip("GStreamer's RTSP server bindings are missing (gir1.2-gst-rtsp-server-1.0)")
    port = free_port()
    logged: list[str] = []
    sink = open_sink(f"rtsp://127.0.0.1:{port}/live", logged.append)
    result = make_results(1, "door")[0]
    sink.write(result)  # mounts the stream
    stop = threading.Event()

    def keep_writing() -> None:
        while not stop.wait(1 / 30):
            sink.write(result)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        yield f"rtsp://127.0.0.1:{port}/live/door", result, logged
    finally:
        stop.set()
        writer.join()
        sink.close()


def test_a_player_sees_the_annotated_frames(served):
    url, result, logged = served
    port = url.split(":")[2].split("/")[0]
    assert logged == [f"sink rtsp://127.0.0.1:{port}/live: stream door at {url}"]
    player = GstSource(
        parse_source_uri(
            # decodebin: the stream is H.264 where x264enc is installed, Motion JPEG elsewhere.
            f"gst://rtspsrc location={url} latency=0 ! "
            "decodebin ! videoconvert ! video/x-raw,format=BGR ! appsink"
        )
    )
    try:
        player.open()
        image = player.read()
    finally:
        player.close()
    assert image is not None and image.shape == (SCENE_SIZE_WH[1], SCENE_SIZE_WH[0], 3)
    assert_shows_annotations(image, result)


def test_jetkit_data_frames_records_a_live_stream(served, tmp_path):
    """The frame extractor on a real RTSP stream: every N-th frame up to a count, a still
    stream (the same picture 30 times a second, through a lossy codec) as one frame, and a
    stream that is down as an error that leaves the output as it was."""
    import cv2

    from edge.footage import FramesConfig, extract_frames

    url, result, _ = served
    report = extract_frames([url], tmp_path / "frames", FramesConfig(every=3, max_frames=4))
    assert [p.name for p in report.written] == [f"door_{i:07d}.jpg" for i in (0, 3, 6, 9)]
    image = cv2.imread(str(report.written[-1]))
    assert image.shape == (SCENE_SIZE_WH[1], SCENE_SIZE_WH[0], 3)
    assert_shows_annotations(image, result)
    still = extract_frames([url], tmp_path / "still", FramesConfig(dedupe=True, duration_s=2.0))
    assert len(still.written) == 1 and still.duplicates[url] >= 5
    # A stream that is not up fails the whole run, and the frames there before stay as they were.
    down = f"rtsp://127.0.0.1:{free_port()}/live/gate"
    with pytest.raises(JetkitError, match=f"source '{down}' cannot be opened"):
        extract_frames([url, down], tmp_path / "frames", FramesConfig(max_frames=2))
    assert sorted((tmp_path / "frames").iterdir()) == report.written


def test_without_the_server_bindings_the_error_names_the_package(monkeypatch):
    if not gstreamer_available():
        pytest.skip("GStreamer's Python bindings are missing")
    import edge.sinks.rtsp as rtsp

    monkeypatch.setattr(rtsp, "rtsp_server_available", lambda: False)
    with pytest.raises(JetkitError, match="Debian package gir1.2-gst-rtsp-server-1.0"):
        open_sink("rtsp://0.0.0.0:8554/live")
