"""The one redaction: every credential form a source, sink or GStreamer pipeline carries is masked,
and nothing else changes."""

from __future__ import annotations

import pytest

from edge.redact import redact

MASKED = [
    ("rtsp://admin:hunter2@cam/s", "rtsp://admin:***@cam/s"),
    # A password holding `@`: masked up to the authority's last `@`.
    ("rtsp://admin:p@ss@cam/s", "rtsp://admin:***@cam/s"),
    ("rtsp://admin:p@ss:w@rd@cam:554/live", "rtsp://admin:***@cam:554/live"),
    ("rtsp://admin:pw@cam/s?note=a@b", "rtsp://admin:***@cam/s?note=a@b"),
    ("mqtt://h/t?username=u&password=s3cret&qos=1", "mqtt://h/t?username=u&password=***&qos=1"),
    ("http://h/x?pwd=1&passwd=2&PASSWORD=3", "http://h/x?pwd=***&passwd=***&PASSWORD=***"),
    ("http://h/x?token=abc", "http://h/x?token=***"),
    ("http://h/x?access_token=abc&x=1", "http://h/x?access_token=***&x=1"),
    ("http://h/x?key=k1&api_key=k2&apikey=k3", "http://h/x?key=***&api_key=***&apikey=***"),
    ("http://h/x?secret=s&client_secret=c", "http://h/x?secret=***&client_secret=***"),
    (
        "rtspsrc location=rtsp://cam/s user-id=admin user-pw=hunter2 ! appsink",
        "rtspsrc location=rtsp://cam/s user-id=admin user-pw=*** ! appsink",
    ),
    (
        'souphttpsrc location="http://u:pw@h/x" proxy-pw="two words" ! appsink',
        'souphttpsrc location="http://u:***@h/x" proxy-pw="***" ! appsink',
    ),
    (
        "sources 'rtsp://a:b@h1/s' and 'rtsp://c:d@h2/s' share stream id 's0'",
        "sources 'rtsp://a:***@h1/s' and 'rtsp://c:***@h2/s' share stream id 's0'",
    ),
]
UNCHANGED = [
    "rtsp://cam.local:554/stream?latency=200",
    "rtsp://admin@cam/s",
    "images:///data/a@b",
    "test://?size=1280x720&fps=30",
    "monkey=1 ssh-key=x",
    "check ca=, cert=, key= (insecure=1 skips the checks)",
    "config key 'streams[0].id': must be 1-64 letters",
]


@pytest.mark.parametrize(("text", "expected"), MASKED)
def test_every_credential_form_is_masked(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize("text", UNCHANGED)
def test_text_without_credentials_is_left_alone(text):
    assert redact(text) == text


def test_masking_twice_changes_nothing():
    for _, expected in MASKED:
        assert redact(expected) == expected
