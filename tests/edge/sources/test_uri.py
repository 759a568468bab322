"""Source URIs → specs: every scheme, its params and defaults, and errors that say what to fix."""

import pytest

from edge.errors import JetkitError
from edge.sources.uri import (
    CsiParams,
    RtspParams,
    SourceSpec,
    SyntheticParams,
    V4l2Params,
    parse_source_uri,
    parse_source_uris,
)

GOOD = [
    (
        "csi://0",
        ("csi", "0", "s0", True, CsiParams()),
    ),
    (
        "csi://1?width=1920&height=1080&fps=60&flip=2&id=front",
        ("csi", "1", "front", True, CsiParams((1920, 1080), 60.0, 2)),
    ),
    (
        "v4l2:///dev/video0",
        ("v4l2", "/dev/video0", "s0", True, V4l2Params()),
    ),
    (
        "v4l2:///dev/video2?width=640&height=480&fps=15&format=mjpg",
        ("v4l2", "/dev/video2", "s0", True, V4l2Params((640, 480), 15.0, "mjpg")),
    ),
    ("/dev/video1", ("v4l2", "/dev/video1", "s0", True, V4l2Params())),
    (
        "rtsp://admin:pw@10.0.0.5:554/live?channel=1&latency=50&id=door&subtype=0",
        (
            "rtsp",
            "rtsp://admin:pw@10.0.0.5:554/live?channel=1&subtype=0",
            "door",
            True,
            RtspParams(50),
        ),
    ),
    ("rtsp://cam/s?codec=h265", ("rtsp", "rtsp://cam/s", "s0", True, RtspParams(100, "h265"))),
    ("file:///clips/a%20b.mp4?id=x", ("file", "/clips/a b.mp4", "x", False, None)),
    ("clips/a b.mp4", ("file", "clips/a b.mp4", "s0", False, None)),
    ("shots/one.PNG", ("images", "shots/one.PNG", "s0", False, None)),
    ("file:///shots/one.jpg", ("images", "/shots/one.jpg", "s0", False, None)),
    ("images://shots", ("images", "shots", "s0", False, None)),
    ("images:///data/shots?id=cam9", ("images", "/data/shots", "cam9", False, None)),
    ("test://", ("test", "", "s0", True, SyntheticParams())),
    (
        "test://?size=64x48&fps=12.5&pattern=noise&count=3&seed=7",
        ("test", "", "s0", True, SyntheticParams((64, 48), 12.5, "noise", 3, 7)),
    ),
    (
        "gst://videotestsrc ! videoconvert ! appsink name=sink",
        ("gst", "videotestsrc ! videoconvert ! appsink name=sink", "s0", True, None),
    ),
    (
        "gst://filesrc location=a.mp4 ! decodebin ! videoconvert ! appsink",
        ("gst", "filesrc location=a.mp4 ! decodebin ! videoconvert ! appsink", "s0", False, None),
    ),
]


@pytest.mark.parametrize(("uri", "expected"), GOOD, ids=[uri for uri, _ in GOOD])
def test_parses(uri, expected):
    spec = parse_source_uri(uri)
    assert (spec.kind, spec.location, spec.stream_id, spec.live, spec.params) == expected
    assert spec.uri == uri


BAD = [
    ("", "is empty"),
    ("http://cam/video", "unknown scheme 'http://'; use csi://, v4l2://"),
    ("test://?size=12x", "param 'size' must be WIDTHxHEIGHT like 1280x720, got '12x'"),
    ("test://?size=8x8", "size must be at least 16x16, got 8x8"),
    ("test://?fps=0", "fps must be > 0 and finite, got 0"),
    ("test://?fps=inf", "fps must be > 0 and finite, got inf"),
    ("test://?count=2.5", "param 'count' must be an integer, got '2.5'"),
    ("test://?fps=fast", "param 'fps' must be a number, got 'fast'"),
    (
        "test://?fsp=30",
        "unknown param 'fsp' for test://; use size, fps, pattern, count, seed, objects, gt, moving, id",
    ),
    ("test://?count=0", "count must be >= 1, got 0"),
    ("test://?count", "param 'count' needs a value (count=VALUE)"),
    ("test://?fps=1&fps=2", "param 'fps' is given twice"),
    (
        "test://?pattern=stripes",
        "pattern must be one of blobs, noise, gradient, moving, got 'stripes'",
    ),
    ("test://?seed=-1", "seed must be >= 0, got -1"),
    ("test://cam", "test:// takes only params"),
    ("test://?id=a b", "id must be 1-64 letters, digits"),
    ("csi://front", "csi:// takes a sensor number like csi://0, got 'front'"),
    ("csi://0?width=640", "params 'width' and 'height' go together"),
    ("csi://0?flip=9", "flip must be an nvvidconv flip-method 0..7, got 9"),
    ("csi://0?size=640x480", "unknown param 'size' for csi://"),
    ("v4l2:///dev/sda", "v4l2:// takes a device like v4l2:///dev/video0"),
    ("v4l2:///dev/video0?format=h264", "format must be one of raw, mjpg, got 'h264'"),
    ("rtsp://cam/s?latency=-5", "latency must be >= 0 ms, got -5"),
    ("rtsp://", "rtsp:// needs a host"),
    ("file://", "file:// needs a path"),
    ("file:///a.mp4?loop=1", "unknown param 'loop' for file://; use id"),
    ("gst://videotestsrc ! autovideosink", "a gst:// pipeline must end in appsink"),
]


@pytest.mark.parametrize(("uri", "message"), BAD, ids=[uri or "empty" for uri, _ in BAD])
def test_rejects_with_the_uri_and_the_fix(uri, message):
    with pytest.raises(JetkitError) as caught:
        parse_source_uri(uri)
    text = str(caught.value)
    assert text.startswith(f"source {uri!r}") and message in text
    assert "\n" not in text


def test_stream_ids_default_to_the_position():
    specs = parse_source_uris(["test://", "test://?id=door", "clip.mp4"])
    assert [spec.stream_id for spec in specs] == ["s0", "door", "s2"]


def test_two_sources_with_one_stream_id_are_refused():
    with pytest.raises(JetkitError, match="share stream id 's1'; give each its own"):
        parse_source_uris(["test://?id=s1", "test://"])


def test_passwords_stay_out_of_messages():
    uri = "rtsp://admin:hunter2@cam/s?latency=-1"
    with pytest.raises(JetkitError) as caught:
        parse_source_uri(uri)
    assert "hunter2" not in str(caught.value) and "admin:***@cam" in str(caught.value)
    assert parse_source_uri("rtsp://admin:hunter2@cam/s").safe_uri == "rtsp://admin:***@cam/s"
    assert parse_source_uri("rtsp://admin:p@ss@cam/s?token=t0k").safe_uri == (
        "rtsp://admin:***@cam/s?token=***"
    )
    gst = parse_source_uri("gst://rtspsrc location=rtsp://cam/s user-pw=hunter2 ! appsink")
    assert "hunter2" not in gst.safe_uri and "user-pw=***" in gst.safe_uri


def test_an_id_beside_the_uri_names_every_kind_of_source():
    """The daemon config's `{uri, id}`: a path and a gst:// pipeline take no `?id=`, and an id
    spliced into a URI could carry params of its own."""
    sources = [
        ("/clips/door cam.mp4", "door"),
        ("file:///clips/yard%20cam.mp4", "yard"),
        ("gst://videotestsrc ! videoconvert ! appsink", "synthetic"),
        ("test://?fps=5&id=lab", "lab"),
        ("test://?fps=5", None),
    ]
    specs = parse_source_uris(sources)
    assert [spec.stream_id for spec in specs] == ["door", "yard", "synthetic", "lab", "s4"]
    assert [spec.location for spec in specs[:2]] == ["/clips/door cam.mp4", "/clips/yard cam.mp4"]
    assert specs[2].location == "videotestsrc ! videoconvert ! appsink"
    assert specs[4].params == SyntheticParams(fps=5.0)


@pytest.mark.parametrize(
    ("uri", "stream_id", "message"),
    [
        ("test://", "a&fps=1000", "id must be 1-64 letters, digits"),
        ("clip.mp4", "../up", "id must be 1-64 letters, digits"),
        ("test://", "", "id must be 1-64 letters, digits"),
        ("test://?id=door", "yard", "id=door contradicts the id 'yard' given beside it"),
    ],
)
def test_an_id_beside_the_uri_is_checked(uri, stream_id, message):
    with pytest.raises(JetkitError, match=message):
        parse_source_uris([(uri, stream_id)])


def test_sizes_are_bounded():
    with pytest.raises(JetkitError, match="size must be at most 8192x8192, got 100000x100000"):
        parse_source_uri("test://?size=100000x100000")
    with pytest.raises(JetkitError, match="size must be at most 8192x8192, got 640x9000"):
        parse_source_uri("csi://0?width=640&height=9000")
    assert parse_source_uri("test://?size=8192x8192").params == SyntheticParams((8192, 8192))


def test_spec_checks_its_own_fields():
    with pytest.raises(JetkitError, match="params of a test source must be SyntheticParams"):
        SourceSpec("test://", "test", "", "s0", None)
    with pytest.raises(JetkitError, match="kind must be one of"):
        SourceSpec("x://", "x", "", "s0")  # type: ignore[arg-type]
