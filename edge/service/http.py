"""The daemon's HTTP endpoints, on the configured address (127.0.0.1 unless told otherwise):
`GET /healthz` (200 while every stream delivers or reconnects, else 503), `GET /metrics`
(Prometheus), `GET /status` (JSON), `POST /reload`."""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from edge.errors import JetkitError
from edge.service.config import HttpConfig


def serve_http(config: HttpConfig, service: Any) -> ThreadingHTTPServer:
    """Start the endpoints in a daemon thread; `shutdown()` the returned server to stop."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    from edge.metrics import register_prometheus

    registry = CollectorRegistry()
    register_prometheus(service.metrics, registry)

    class Handler(BaseHTTPRequestHandler):
        server_version = "jetkit"

        def do_GET(self) -> None:  # noqa: N802 (the http.server API)
            if self.path == "/healthz":
                healthy, streams = service.health()
                body = {"healthy": healthy, "streams": [s.__dict__ for s in streams]}
                self._json(HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE, body)
            elif self.path == "/metrics":
                self._send(HTTPStatus.OK, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif self.path == "/status":
                self._json(HTTPStatus.OK, service.status())
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint {self.path}"})

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/reload":
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint {self.path}"})
                return
            result = service.reload("POST /reload")
            status = HTTPStatus.OK if result["ok"] else HTTPStatus.INTERNAL_SERVER_ERROR
            self._json(status, result)

        def _json(self, status: HTTPStatus, body: dict[str, Any]) -> None:
            self._send(status, json.dumps(body).encode(), "application/json")

        def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return None  # scrapes every few seconds would drown the daemon's own log

    try:
        server = ThreadingHTTPServer((config.host, config.port), Handler)
    except OSError as exc:
        raise JetkitError(
            f"cannot listen on {config.host}:{config.port} ({exc.strerror}); choose another "
            "http.listen address in the config"
        ) from None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="jetkit-http", daemon=True).start()
    return server
