"""The daemon's HTTP endpoints, on the configured address (127.0.0.1 unless told otherwise):
`GET /healthz` (200 while every stream delivers or reconnects, else 503), `GET /metrics`
(Prometheus), `GET /status` (JSON), `POST /reload`. Every answer closes its connection.

What a client cannot do to the daemon:

- hold its threads: one event-loop thread reads every connection, and only a complete request
  goes to one of `WORKERS` threads. A request must arrive in full within `http.read_timeout_s`,
  else its connection is closed unanswered; beyond `MAX_CONNECTIONS` open connections a new one
  gets 503. An idle or trickling client costs a socket, not a thread, and /healthz answers on.
- reach it through DNS rebinding: a `Host` other than the listen address, `localhost`,
  `127.0.0.1` or `[::1]` (any port) gets 421. On a wildcard address (0.0.0.0, ::) any Host is
  taken: the names of the machine are not known there, and the token guards the reload.
- reload it from a web page: a POST whose `Origin` is not this very address gets 403.
- reload it without the token: with `http.token` set, POST /reload needs
  `Authorization: Bearer <token>` (else 401); without a token it is refused (403) unless the
  daemon listens on loopback only.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from edge.errors import JetkitError
from edge.service.config import TOKEN_ENV, HttpConfig

WORKERS = 16  # requests answered at once; more wait for a worker while the event loop reads on
# Each open connection costs a socket and a few KiB, no thread; this keeps the daemon well
# inside systemd's default limit of 1024 open files.
MAX_CONNECTIONS = 512
MAX_HEAD_BYTES = 16 * 1024
MAX_BODY_BYTES = 64 * 1024
LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Given twice, these would leave it open which one counts.
_SINGLE_HEADERS = frozenset({"host", "origin", "authorization", "content-length"})


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # without the query
    headers: dict[str, str]  # names in lower case
    content_length: int = 0


@dataclass(frozen=True)
class Response:
    status: HTTPStatus
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


def json_response(
    status: HTTPStatus, body: dict[str, Any], headers: tuple[tuple[str, str], ...] = ()
) -> Response:
    return Response(status, json.dumps(body).encode(), "application/json", headers)


def parse_head(head: bytes) -> Request:
    """The request line and headers of an HTTP/1.x request head (through its blank line).
    ValueError says what is malformed."""
    line, _, rest = head.partition(b"\r\n")
    parts = line.decode("latin-1").split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise ValueError("malformed request line; expected METHOD PATH HTTP/1.1")
    headers: dict[str, str] = {}
    for raw in rest.decode("latin-1").split("\r\n"):
        if not raw:
            continue
        name, colon, value = raw.partition(":")
        if not colon or not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"malformed header line {raw[:40]!r}")
        name = name.lower()
        if name in headers and name in _SINGLE_HEADERS:
            raise ValueError(f"more than one {name} header")
        headers[name] = value.strip()
    if "transfer-encoding" in headers:
        raise ValueError("send a Content-Length, not Transfer-Encoding")
    length = headers.get("content-length", "0")
    if not length.isdigit():
        raise ValueError(f"bad Content-Length {length[:20]!r}")
    return Request(parts[0], parts[1].partition("?")[0], headers, int(length))


def _host_name(host_header: str) -> str:
    """`[::1]:8080` → `::1`, `LocalHost.:8080` → `localhost`."""
    text = host_header.strip().lower()
    if text.startswith("["):
        return text[1:].partition("]")[0]
    return text.partition(":")[0].rstrip(".")


def host_allowed(host_header: str | None, http: HttpConfig) -> bool:
    """Whether the Host a request names is this daemon: the listen address, localhost,
    127.0.0.1 or [::1], with any port (an SSH tunnel forwards from another one). A page on a
    DNS name rebound to this machine sends its own name, and is refused. On a wildcard address
    any Host. A request without one (HTTP/1.0) comes from no browser, and is taken."""
    if host_header is None or http.wildcard:
        return True
    name = _host_name(host_header)
    return name in LOCAL_NAMES or name == http.host.lower()


def origin_allowed(origin: str | None, host_header: str | None) -> bool:
    """Whether a POST comes from a page of this very address, or from no page: browsers send
    `Origin` with every cross-site POST, other clients none."""
    if origin is None:
        return True
    return host_header is not None and origin.strip().lower() == f"http://{host_header.lower()}"


def token_ok(authorization: str | None, token: str) -> bool:
    """Whether an Authorization header is `Bearer <token>`, compared in constant time."""
    scheme, _, credentials = (authorization or "").strip().partition(" ")
    given = credentials.strip().encode()
    return scheme.lower() == "bearer" and hmac.compare_digest(given, token.encode())


def reload_refusal(authorization: str | None, http: HttpConfig) -> Response | None:
    """The answer that refuses a POST /reload, or None to go ahead."""
    if http.token is not None:
        if token_ok(authorization, http.token):
            return None
        return json_response(
            HTTPStatus.UNAUTHORIZED,
            {"error": "POST /reload needs the header Authorization: Bearer <http.token>"},
            (("WWW-Authenticate", 'Bearer realm="jetkit"'),),
        )
    if http.loopback:
        return None
    return json_response(
        HTTPStatus.FORBIDDEN,
        {
            "error": f"POST /reload is refused: the daemon listens on {http.host}, beyond this "
            f"machine, without a token; set http.token in the config (or {TOKEN_ENV})"
        },
    )


def encode(response: Response) -> bytes:
    lines = [
        f"HTTP/1.1 {response.status.value} {response.status.phrase}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in response.headers),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body


class _Refused(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__(response.status.phrase)
        self.response = response


async def read_request(reader: asyncio.StreamReader) -> Request:
    """One request from `reader`, its body read and dropped: no endpoint takes one, and bytes
    left unread would reset the connection before the client has the answer."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        request = parse_head(head)
    except asyncio.LimitOverrunError:
        raise _Refused(
            json_response(
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                {"error": f"request head over {MAX_HEAD_BYTES} bytes"},
            )
        ) from None
    except ValueError as exc:
        raise _Refused(json_response(HTTPStatus.BAD_REQUEST, {"error": str(exc)})) from None
    if request.content_length > MAX_BODY_BYTES:
        raise _Refused(
            json_response(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                {"error": f"request body over {MAX_BODY_BYTES} bytes"},
            )
        )
    await reader.readexactly(request.content_length)
    return request


def endpoints(http: HttpConfig, service: Any) -> Callable[[Request], Response]:
    """The answer to each request, computed in a worker thread."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    from edge.metrics import register_prometheus

    registry = CollectorRegistry()
    register_prometheus(service.metrics, registry)
    not_found = HTTPStatus.NOT_FOUND

    def handle(request: Request) -> Response:
        host = request.headers.get("host")
        if not host_allowed(host, http):
            return json_response(
                HTTPStatus.MISDIRECTED_REQUEST,
                {"error": f"Host {host!r} is not this daemon; ask for localhost or {http.host}"},
            )
        if request.method == "GET":
            if request.path == "/healthz":
                healthy, streams = service.health()
                body = {"healthy": healthy, "streams": [s.__dict__ for s in streams]}
                return json_response(
                    HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE, body
                )
            if request.path == "/metrics":
                return Response(HTTPStatus.OK, generate_latest(registry), CONTENT_TYPE_LATEST)
            if request.path == "/status":
                return json_response(HTTPStatus.OK, service.status())
            return json_response(not_found, {"error": f"no such endpoint {request.path}"})
        if request.method == "POST":
            if not origin_allowed(request.headers.get("origin"), host):
                return json_response(
                    HTTPStatus.FORBIDDEN, {"error": "a POST from another site's page is refused"}
                )
            if request.path != "/reload":
                return json_response(not_found, {"error": f"no such endpoint {request.path}"})
            refusal = reload_refusal(request.headers.get("authorization"), http)
            if refusal is not None:
                return refusal
            result = service.reload("POST /reload")
            status = HTTPStatus.OK if result["ok"] else HTTPStatus.INTERNAL_SERVER_ERROR
            return json_response(status, result)
        return json_response(
            HTTPStatus.METHOD_NOT_ALLOWED,
            {"error": f"{request.method[:20]} is not served; use GET or POST"},
            (("Allow", "GET, POST"),),
        )

    return handle


class HttpServer:
    """Connections read by an event loop in a thread of its own, requests answered by a pool of
    `WORKERS` threads; `close()` stops both."""

    def __init__(self, http: HttpConfig, handle: Callable[[Request], Response]) -> None:
        self._http = http
        self._handle = handle
        self._open = 0  # connections; touched in the event loop's thread only
        self._loop = asyncio.new_event_loop()
        try:
            self._server = self._loop.run_until_complete(
                asyncio.start_server(
                    self._connection,
                    http.host,
                    http.port,
                    limit=MAX_HEAD_BYTES,
                    backlog=MAX_CONNECTIONS,
                )
            )
        except OSError as exc:
            self._loop.close()
            raise JetkitError(
                f"cannot listen on {http.host}:{http.port} ({exc.strerror}); choose another "
                "http.listen address in the config"
            ) from None
        self.server_address = self._server.sockets[0].getsockname()
        self._workers = ThreadPoolExecutor(WORKERS, thread_name_prefix="jetkit-http-worker")
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="jetkit-http", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop listening and cut open connections; a request being answered finishes unheard."""
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        self._workers.shutdown(wait=False, cancel_futures=True)

    async def _stop(self) -> None:
        self._server.close()
        connections = asyncio.all_tasks() - {asyncio.current_task()}
        for task in connections:
            task.cancel()
        await asyncio.gather(*connections, return_exceptions=True)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open += 1
        timeout_s = self._http.read_timeout_s
        try:
            response = await self._respond(reader)
            if response is not None:
                writer.write(encode(response))
                await asyncio.wait_for(writer.drain(), timeout_s)
            writer.close()
            # A client that reads nothing would keep the socket on the bytes not sent yet.
            await asyncio.wait_for(writer.wait_closed(), timeout_s)
        except (asyncio.TimeoutError, OSError):
            pass  # too slow, or gone: the socket is cut below either way
        finally:
            writer.transport.abort()  # nothing if closed already; else now, cancelled included
            self._open -= 1

    async def _respond(self, reader: asyncio.StreamReader) -> Response | None:
        """The answer, or None to close the connection unanswered."""
        if self._open > MAX_CONNECTIONS:
            return json_response(
                HTTPStatus.SERVICE_UNAVAILABLE,
                {"error": f"more than {MAX_CONNECTIONS} open connections; try again later"},
            )
        try:
            request = await asyncio.wait_for(read_request(reader), self._http.read_timeout_s)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, OSError):
            return None  # idle, trickling or gone
        except _Refused as refused:
            return refused.response
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._workers, self._answer, request)

    def _answer(self, request: Request) -> Response:
        try:
            return self._handle(request)
        except Exception as exc:  # the service failed this one request; the client hears why
            return json_response(
                HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(exc).__name__}: {exc}"}
            )


def serve_http(http: HttpConfig, service: Any) -> HttpServer:
    """Start the endpoints in threads of their own; `close()` the returned server to stop."""
    return HttpServer(http, endpoints(http, service))
