"""Sink URI params: split, typed and validated (their credentials masked: tests/edge/test_redact.py)."""

from __future__ import annotations

import pytest

from edge.errors import JetkitError
from edge.sinks.params import flag_param, number_param, split_sink_uri


def test_split_decodes_params_and_keeps_the_location_as_written():
    parts = split_sink_uri("video://a%20b/c.mp4?fps=2%2E5", ("fps",))
    assert (parts.scheme, parts.location, dict(parts.params)) == (
        "video",
        "a%20b/c.mp4",
        {"fps": "2.5"},
    )


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("fps", "param 'fps' needs a value"),
        ("fps=1&fps=2", "param 'fps' is given twice"),
        ("speed=2", "unknown param 'speed' for video://; params: fps"),
    ],
)
def test_split_refuses_malformed_params(query, message):
    with pytest.raises(JetkitError, match=message):
        split_sink_uri(f"video://a.mp4?{query}", ("fps",))


def test_typed_reads_name_the_param():
    assert number_param({}, "qos", int) is None and number_param({"qos": "2"}, "qos", int) == 2
    assert number_param({"fps": "7.5"}, "fps", float) == 7.5
    assert flag_param({"tls": "1"}, "tls") and not flag_param({"tls": "false"}, "tls", True)
    with pytest.raises(JetkitError, match="param 'qos' must be an integer, got 'high'"):
        number_param({"qos": "high"}, "qos", int)
    with pytest.raises(JetkitError, match="param 'tls' must be 1 or 0, got 'on'"):
        flag_param({"tls": "on"}, "tls")
