"""Fuzzing sink URIs (the pure parse, no sink opened): any text given as `--sink` or in a config's
`sinks:` is a valid config or a JetkitError, never a traceback; an MQTT password never shows."""

from __future__ import annotations

import math

import fuzz
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from edge.errors import JetkitError
from edge.sinks.gst_uri import parse_gst_out_uri
from edge.sinks.mqtt_uri import PARAMS as MQTT_PARAMS
from edge.sinks.mqtt_uri import parse_mqtt_uri
from edge.sinks.params import flag_param, number_param, split_sink_uri
from edge.sinks.rtsp_uri import parse_rtsp_out_uri
from edge.sinks.video_uri import FOURCC_BY_SUFFIX, parse_video_uri

VALID = {
    "qos": ["0", "1", "2"],
    "client_id": ["edge-1"],
    "username": ["jetson"],
    "password": ["s3cret"],
    "tls": ["1", "yes"],
    "ca": ["/etc/ca.pem"],
    "cert": ["/etc/c.pem"],
    "key": ["/etc/k.pem"],
    "insecure": ["1", "false"],
    "retain": ["0", "true"],
    "topic_per_stream": ["1"],
    "fps": ["30", "12.5"],
}
NEAR = ["3", "-1", "nan", "inf", "1e400", "", "²", "٣", "%zz", "%00", "on", "TRUE"]
param_value = st.sampled_from(NEAR) | fuzz.tricky_text
LOCATIONS = {
    "mqtt": ["broker.local:1883/jetkit/results", "10.0.0.2/t", "[::1]:8883/t", "h:0/t"],
    "mqtts": ["broker.local/t", "h:99999/t", "u:p@h/t", "[::1/t", "h:²/t", "/t", "h/a+b"],
    "video": ["out/run.mp4", "/tmp/a%20b.MKV", "x.avi", "x.mov", "", ".mp4", "%ff.mp4"],
    "rtsp": ["0.0.0.0:8554/live", ":8554/live", "h/live", "h:²/live"],
    "gst": ["appsrc name=src ! fakesink", "appsrc ! fakesink", " appsrc name=src", "! x"],
}


@st.composite
def sink_uris(draw: st.DrawFn, scheme: str) -> str:
    """A URI of `scheme` with a location it takes and valid params, then (mostly) one part
    changed: the location, a value or a param name."""
    locations = LOCATIONS[scheme]
    location = draw(st.sampled_from(locations[:1] if draw(st.booleans()) else locations))
    allowed = (
        list(MQTT_PARAMS) if scheme.startswith("mqtt") else ["fps"] if scheme == "video" else []
    )
    names = draw(st.lists(st.sampled_from(allowed), unique=True, max_size=5)) if allowed else []
    # The params that go together: a password with a user, a key with its certificate, the TLS
    # files with TLS.
    for needs, needed in (("password", "username"), ("key", "cert"), ("cert", "tls")):
        if needs in names and needed not in names:
            names.append(needed)
    if scheme == "mqtt" and {"ca", "insecure"} & set(names) and "tls" not in names:
        names.append("tls")
    params = [[name, draw(st.sampled_from(VALID[name]))] for name in names]
    change = draw(st.sampled_from(["none", "none", "location", "value", "name", "query"]))
    if change == "location":
        location = draw(fuzz.tricky_text)
    elif change == "value" and params:
        draw(st.sampled_from(params))[1] = draw(param_value)
    elif change == "name":
        params.append([draw(st.text(alphabet=fuzz.TRICKY_CHARS + "qos", max_size=6)), "1"])
    query = "&".join(f"{name}={value}" for name, value in params)
    if change == "query":
        query = draw(fuzz.query_params(allowed or ["x"], param_value))
    return f"{scheme}://{location}" + (f"?{query}" if query or change == "query" else "")


def _mqtt_uris():
    return st.one_of(sink_uris("mqtt"), sink_uris("mqtts"), fuzz.tricky_text)


@settings(max_examples=fuzz.examples(1000))
@given(_mqtt_uris(), st.sampled_from([{}, {"JETKIT_MQTT_PASSWORD": "from-env"}]))
@example("mqtt://h:²/t", {})
def test_any_text_is_an_mqtt_config_or_a_jetkit_error(uri, environ):
    config = fuzz.user_error_or(lambda: parse_mqtt_uri(uri, environ))
    if config is not None:
        event(f"mqtt qos {config.qos}, tls {config.tls}")
        assert config.host and config.topic and 0 < config.port < 65536
        assert config.qos in (0, 1, 2) and "+" not in config.topic and "#" not in config.topic
        assert config.password is None or config.username is not None


@settings(max_examples=fuzz.examples(300))
@given(fuzz.passwords, sink_uris("mqtt"))
def test_an_mqtt_password_never_shows_in_the_safe_uri_or_an_error(secret, uri):
    uri += ("&" if "?" in uri else "?") + f"username=u&password=Pw{secret}"
    try:
        config = parse_mqtt_uri(uri, {})
    except JetkitError as error:
        assert f"Pw{secret}" not in str(error)
    else:
        assert f"Pw{secret}" not in config.safe_uri and f"Pw{secret}" not in repr(config)


@settings(max_examples=fuzz.examples(500))
@given(st.one_of(sink_uris("video"), fuzz.tricky_text.map(lambda t: f"video://{t}")))
def test_any_text_is_a_video_config_or_a_jetkit_error(uri):
    config = fuzz.user_error_or(lambda: parse_video_uri(uri))
    if config is not None:
        assert config.path.suffix.lower() in FOURCC_BY_SUFFIX
        assert config.fps is None or 0 < config.fps < math.inf


@settings(max_examples=fuzz.examples(500))
@given(st.one_of(sink_uris("rtsp"), fuzz.tricky_text.map(lambda t: f"rtsp://{t}")))
@example("rtsp://0.0.0.0:²/live")  # "²".isdigit(), but int("²") raised ValueError
@example("rtsp://0.0.0.0:" + "9" * 5000 + "/live")  # int() of 4300+ digits: ValueError
def test_any_text_is_an_rtsp_out_config_or_a_jetkit_error(uri):
    config = fuzz.user_error_or(lambda: parse_rtsp_out_uri(uri))
    if config is not None:
        assert 0 < config.port < 65536 and config.path and config.host


@settings(max_examples=fuzz.examples(300))
@given(st.one_of(sink_uris("gst"), fuzz.tricky_text.map(lambda t: f"gst://{t}")))
def test_any_text_is_a_gst_out_config_or_a_jetkit_error(uri):
    config = fuzz.user_error_or(lambda: parse_gst_out_uri(uri))
    if config is not None:
        assert config.pipeline.split()[0] == "appsrc"


@settings(max_examples=fuzz.examples(1000))
@given(
    fuzz.tricky_text,
    st.lists(st.sampled_from(list(VALID)) | st.text(max_size=4), max_size=4),
    st.sampled_from(list(VALID)),
)
def test_any_params_split_and_read_or_raise_a_jetkit_error(uri, allowed, name):
    parts = fuzz.user_error_or(lambda: split_sink_uri(uri, allowed))
    if parts is None:
        return
    assert set(parts.params) <= set(allowed)
    number = fuzz.user_error_or(lambda: number_param(parts.params, name, int))
    assert number is None or isinstance(number, int)
    real = fuzz.user_error_or(lambda: number_param(parts.params, name, float))
    assert real is None or isinstance(real, float)
    flag = fuzz.user_error_or(lambda: flag_param(parts.params, name))
    assert flag is None or isinstance(flag, bool)
