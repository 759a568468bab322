"""Fuzzing source URIs: any text given as `--source` is a valid SourceSpec or a JetkitError that
names it (camera password masked), never a traceback."""

from __future__ import annotations

import fuzz
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from edge.errors import JetkitError
from edge.sources.uri import (
    _STREAM_ID,
    PATTERNS,
    RTSP_CODECS,
    SCHEMES,
    V4L2_FORMATS,
    CsiParams,
    RtspParams,
    SourceSpec,
    SyntheticParams,
    V4l2Params,
    parse_source_uri,
)

PARAMS = {
    "csi": ["width", "height", "fps", "flip", "id"],
    "v4l2": ["width", "height", "fps", "format", "id"],
    "rtsp": ["latency", "codec", "id", "channel", "subtype"],
    "file": ["id"],
    "images": ["id"],
    "test": ["size", "fps", "pattern", "count", "seed", "id"],
    "gst": ["id"],
}
# Per scheme: locations it takes (the first ones valid), and valid values of each param.
LOCATIONS = {
    "csi": ["0", "1", "²", "٣", "-1", ""],
    "v4l2": ["/dev/video0", "0", "/dev/video²", "/dev/video", "/dev/sda"],
    "rtsp": ["cam.local/stream", "admin:pw@10.0.0.5:554/live", "", "[::1]/s", "h:99999999/x"],
    "file": ["/clips/a.mp4", "clips/a%20b.mp4", "a.png", "", "%ff%fe"],
    "images": ["stills/", "", "/x"],
    "test": [""],
    "gst": ["videotestsrc ! appsink", "filesrc location=a ! appsink ?x=1", "", "! appsink !"],
}
VALID = {
    "width": ["1280", "640"],
    "height": ["720", "480"],
    "fps": ["30", "15.5"],
    "flip": ["0", "2"],
    "format": list(V4L2_FORMATS),
    "latency": ["0", "100"],
    "codec": list(RTSP_CODECS),
    "size": ["1280x720", "16x16"],
    "pattern": list(PATTERNS),
    "count": ["1", "100"],
    "seed": ["0", "7"],
    "id": ["door", "cam_1"],
    "channel": ["1"],
    "subtype": ["0"],
}
NEAR = ["15x15", "0", "-5", "nan", "inf", "1e400", "a b", "%20", "²", "٣٤", ""]
param_value = st.sampled_from(NEAR) | fuzz.tricky_text


@st.composite
def source_uris(draw: st.DrawFn) -> str:
    """`scheme://location?params`: a known scheme with a location it takes and valid values of
    its own params, then (mostly) one part changed: the location, a value, a param name."""
    scheme = draw(st.sampled_from(SCHEMES))
    locations = LOCATIONS[scheme]
    location = draw(st.sampled_from(locations[:1] if draw(st.booleans()) else locations))
    names = draw(st.lists(st.sampled_from(list(PARAMS[scheme])), unique=True, max_size=4))
    params = [[name, draw(st.sampled_from(VALID[name]))] for name in names]
    change = draw(st.sampled_from(["none", "location", "value", "name", "scheme", "separator"]))
    separator = "?"
    if change == "location":
        location = draw(fuzz.tricky_text)
    elif change == "value" and params:
        draw(st.sampled_from(params))[1] = draw(param_value)
    elif change == "name":
        params.append([draw(st.text(alphabet=fuzz.TRICKY_CHARS + "idx", max_size=6)), "1"])
    elif change == "scheme":
        scheme = draw(st.sampled_from(["RTSP", "http", "", "csi:", "CSI", "te st"]))
    elif change == "separator":
        separator = draw(st.sampled_from(["", "&", "??", "#", "?&"]))
    query = "&".join(f"{name}={value}" for name, value in params)
    return f"{scheme}://{location}{separator}{query}"


uris = st.one_of(
    source_uris(),
    source_uris(),
    source_uris(),
    st.tuples(st.sampled_from(SCHEMES), fuzz.query_params(list(VALID), param_value)).map(
        lambda sq: f"{sq[0]}://?{sq[1]}"
    ),
    fuzz.tricky_text,
    st.sampled_from(["/dev/video0", "/dev/video٣", "clip.mp4", "  ", "://", "a://b://c"]),
)


def _assert_valid(spec: SourceSpec) -> None:
    assert spec.kind in SCHEMES
    assert _STREAM_ID.fullmatch(spec.stream_id)
    params = spec.params
    if isinstance(params, CsiParams):
        assert min(params.size_wh) >= 16 and 0 < params.fps < float("inf")
        assert spec.location.isdigit() and 0 <= params.flip <= 7
    elif isinstance(params, V4l2Params):
        assert params.format in V4L2_FORMATS
    elif isinstance(params, RtspParams):
        assert params.codec in RTSP_CODECS and params.latency_ms >= 0
    elif isinstance(params, SyntheticParams):
        assert params.pattern in PATTERNS and params.seed >= 0


@settings(max_examples=fuzz.examples(1500))
@given(uris, st.integers(0, 99))
@example("csi://²", 0)  # "²".isdigit(), but int("²") raised ValueError
@example("csi://" + "1" * 5000, 0)  # int() of 4300+ digits raised ValueError
@example("test://?size=" + "1" * 5000 + "x16", 0)
@example("v4l2:///dev/video0?width=" + "1" * 5000 + "&height=1", 0)
def test_any_text_is_a_source_or_a_jetkit_error(uri, index):
    spec = fuzz.user_error_or(lambda: parse_source_uri(uri, index))
    if spec is not None:
        event(f"a {spec.kind} source")
        _assert_valid(spec)


@settings(max_examples=fuzz.examples(500))
@given(
    fuzz.passwords,
    st.sampled_from(LOCATIONS["rtsp"][:2]),
    fuzz.query_params(PARAMS["rtsp"], param_value),
)
def test_a_camera_password_never_shows_in_an_error(secret, where, query):
    uri = f"rtsp://admin:Pw{secret}@{where.split('@')[-1]}?{query}"
    try:
        spec = parse_source_uri(uri)
    except JetkitError as error:
        assert f"Pw{secret}" not in str(error)
    else:
        _assert_valid(spec)
        assert f"Pw{secret}" not in spec.safe_uri
