"""gst:// out through real GStreamer pipelines (appsrc → videoconvert → jpegenc → multifilesink):
every annotated frame becomes a JPEG, `{stream}` gives each stream its own pipeline, failures
at open are JetkitErrors and at run time SinkErrors. rtsp:// without the RTSP server bindings
says which package brings them."""

from __future__ import annotations

import numpy as np
import pytest

from edge.errors import JetkitError
from edge.sinks import SinkError, open_sink
from edge.sinks.gst_uri import GstOutConfig, appsrc_caps, parse_gst_out_uri
from edge.sources.gst import element_exists, gstreamer_available

from .conftest import SCENE_SIZE_WH, assert_shows_annotations, wait_until

JPEG_OUT = "gst://appsrc name=src ! videoconvert ! jpegenc ! multifilesink location={}"


@pytest.fixture(scope="module", autouse=True)
def _needs_gstreamer():
    if not gstreamer_available():
        pytest.skip("GStreamer's Python bindings are not importable (scripts/setup.sh)")
    missing = [
        e for e in ("appsrc", "videoconvert", "jpegenc", "multifilesink") if not element_exists(e)
    ]
    if missing:
        pytest.skip(f"GStreamer elements missing: {', '.join(missing)} (gstreamer1.0-plugins-good)")


def _jpegs(directory) -> list[np.ndarray]:
    import cv2

    return [cv2.imread(str(path)) for path in sorted(directory.iterdir())]


def test_the_uri_is_the_pipeline_and_stream_placeholders_are_filled():
    config = parse_gst_out_uri("gst://appsrc name=src ! fakesink location=a?b")
    assert config == GstOutConfig("appsrc name=src ! fakesink location=a?b")
    assert not config.per_stream
    per_stream = GstOutConfig("appsrc name=src ! filesink location=/out/{stream}.raw")
    assert per_stream.per_stream and per_stream.pipeline_for("door").endswith("/out/door.raw")
    assert appsrc_caps((321, 240), 29.97) == (
        "video/x-raw,format=BGR,width=321,height=240,framerate=2997/100"
    )


@pytest.mark.parametrize(
    "pipeline",
    ["videotestsrc ! autovideosink", "appsrc ! fakesink", "appsrc name=other ! fakesink"],
)
def test_a_pipeline_not_starting_with_the_named_appsrc_is_refused(pipeline):
    with pytest.raises(JetkitError, match="starts with `appsrc name=src`"):
        parse_gst_out_uri(f"gst://{pipeline}")


def test_every_annotated_frame_reaches_the_pipeline(tmp_path, make_results):
    sink = open_sink(JPEG_OUT.format(tmp_path / "%03d.jpg"))
    results = make_results(5)
    for result in results:
        sink.write(result)
    sink.close()

    images = _jpegs(tmp_path)
    assert len(images) == 5 and sink.dropped == 0
    for image, result in zip(images, results, strict=True):
        assert image.shape == (SCENE_SIZE_WH[1], SCENE_SIZE_WH[0], 3)
        assert_shows_annotations(image, result)


def test_stream_placeholder_gives_each_stream_its_pipeline(tmp_path, make_results):
    sink = open_sink(JPEG_OUT.format(tmp_path / "{stream}-%03d.jpg"))
    for result in make_results(2, "door") + make_results(3, "yard"):
        sink.write(result)
    sink.close()
    names = sorted(path.name for path in tmp_path.iterdir())
    assert names == ["door-000.jpg", "door-001.jpg", "yard-000.jpg", "yard-001.jpg", "yard-002.jpg"]


def test_without_placeholder_only_the_first_stream_is_shown(tmp_path, make_results):
    logged: list[str] = []
    sink = open_sink(JPEG_OUT.format(tmp_path / "%03d.jpg"), logged.append)
    for result in make_results(2, "door") + make_results(3, "yard"):
        sink.write(result)
    sink.close()
    assert len(list(tmp_path.iterdir())) == 2 and sink.ignored == 3
    assert len(logged) == 1 and "shows stream door only, not yard" in logged[0]


def test_a_missing_element_fails_at_open():
    with pytest.raises(JetkitError, match="GStreamer cannot build .*no element .*nosuchencoder"):
        open_sink("gst://appsrc name=src ! nosuchencoder ! fakesink")


def test_a_failing_element_at_run_time_raises_from_write(tmp_path, make_results):
    sink = open_sink(JPEG_OUT.format(tmp_path / "gone" / "%03d.jpg"))
    result = make_results(1)[0]

    def write_fails() -> bool:
        try:
            sink.write(result)
        except SinkError as error:
            assert "multifilesink" in str(error)
            return True
        return False

    wait_until(write_fails, what="the pipeline's error reaching write()")
    sink.close()
