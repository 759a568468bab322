"""The daemon's HTTP rules as pure functions: which Host and Origin are this daemon's, the token,
when a reload is refused, and how a request head is read. The real server is in test_serve.py."""

from http import HTTPStatus

import pytest

from edge.service.config import HttpConfig
from edge.service.http import (
    encode,
    host_allowed,
    json_response,
    origin_allowed,
    parse_head,
    reload_refusal,
    token_ok,
)

LOCAL = HttpConfig("127.0.0.1", 8080)
LAN = HttpConfig("192.168.1.20", 8080)
ANY = HttpConfig("0.0.0.0", 8080)


@pytest.mark.parametrize(
    ("host", "http", "allowed"),
    [
        ("127.0.0.1:8080", LOCAL, True),
        ("localhost", LOCAL, True),
        ("LocalHost.:9000", LOCAL, True),  # any port: an SSH tunnel forwards from another
        ("[::1]:8080", LOCAL, True),
        (None, LOCAL, True),  # HTTP/1.0 without Host: no browser
        ("evil.example:8080", LOCAL, False),  # a DNS name rebound to 127.0.0.1
        ("127.0.0.1.evil.example", LOCAL, False),
        ("", LOCAL, False),
        ("192.168.1.20:8080", LAN, True),
        ("jetson.local:8080", LAN, False),
        ("jetson.local:8080", ANY, True),  # a wildcard address has no names to check against
    ],
)
def test_host_allowed(host, http, allowed):
    assert host_allowed(host, http) is allowed


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        (None, "127.0.0.1:8080", True),  # curl, the deploy agent: no page, no Origin
        ("http://127.0.0.1:8080", "127.0.0.1:8080", True),
        ("http://LOCALHOST:8080", "localhost:8080", True),
        ("http://evil.example", "127.0.0.1:8080", False),
        ("http://localhost:3000", "localhost:8080", False),  # another local site
        ("null", "127.0.0.1:8080", False),  # a sandboxed page or a file
        ("http://127.0.0.1:8080", None, False),
    ],
)
def test_origin_allowed(origin, host, allowed):
    assert origin_allowed(origin, host) is allowed


def test_token_ok():
    assert token_ok("Bearer s3cret", "s3cret")
    assert token_ok("bearer  s3cret ", "s3cret")  # the scheme is case-insensitive
    for header in (None, "", "Bearer", "Bearer s3cre", "Bearer s3cretX", "Basic s3cret",
                   "s3cret", "Bearer s3cr\xe9t"):  # fmt: skip
        assert not token_ok(header, "s3cret"), header


def test_reload_refusal():
    token = HttpConfig("0.0.0.0", 8080, token="s3cret")
    assert reload_refusal("Bearer s3cret", token) is None
    refused = reload_refusal("Bearer nope", token)
    assert refused is not None and refused.status == HTTPStatus.UNAUTHORIZED
    assert ("WWW-Authenticate", 'Bearer realm="jetkit"') in refused.headers
    assert reload_refusal(None, HttpConfig("127.0.0.1", 8080, token="s3cret")).status == 401
    assert reload_refusal(None, LOCAL) is None  # loopback without a token: as before
    refused = reload_refusal("Bearer anything", LAN)
    assert refused is not None and refused.status == HTTPStatus.FORBIDDEN
    assert b"set http.token" in refused.body


def test_parse_head():
    request = parse_head(
        b"POST /reload?x=1 HTTP/1.1\r\nHost: localhost:8080\r\nAuthorization: Bearer t\r\n"
        b"Content-Length: 2\r\n\r\n"
    )
    assert (request.method, request.path, request.content_length) == ("POST", "/reload", 2)
    assert request.headers == {
        "host": "localhost:8080",
        "authorization": "Bearer t",
        "content-length": "2",
    }
    for head, problem in [
        (b"GET /\r\n\r\n", "request line"),
        (b"GET / HTTP/2\r\n\r\n", "request line"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "more than one host"),
        (b"GET / HTTP/1.1\r\n folded: x\r\n\r\n", "malformed header"),
        (b"GET / HTTP/1.1\r\nNo colon\r\n\r\n", "malformed header"),
        (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "Content-Length"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", "Transfer-Encoding"),
    ]:
        with pytest.raises(ValueError, match=problem):
            parse_head(head)


def test_encode_closes_the_connection():
    data = encode(json_response(HTTPStatus.OK, {"ok": True}))
    assert data == (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n"
        b'Connection: close\r\n\r\n{"ok": true}'
    )
