"""`mqtt://HOST[:PORT]/TOPIC?…` (`mqtts://` for TLS) parsed into a validated `MqttConfig`: pure,
no network.

Params: `qos=0|1|2` (default 1: the broker acknowledges each result), `client_id=NAME` (default:
the broker assigns one), `username=NAME`, `password=SECRET` (or the environment variable
JETKIT_MQTT_PASSWORD, which keeps it off command lines and out of `ps`), `tls=1` (what
`mqtts://` means), `ca=PATH`, `cert=PATH`, `key=PATH`, `insecure=1` (no certificate checks),
`retain=0|1`, `topic_per_stream=1` (publish to `TOPIC/<stream id>`). With tracking, each
analytics event (edge.analytics.events) is also published on its own to `TOPIC/events/<stream
id>`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from edge.errors import JetkitError
from edge.redact import redact
from edge.sinks.params import flag_param, number_param, split_sink_uri

PASSWORD_ENV = "JETKIT_MQTT_PASSWORD"
PARAMS = (
    "qos",
    "client_id",
    "username",
    "password",
    "tls",
    "ca",
    "cert",
    "key",
    "insecure",
    "retain",
    "topic_per_stream",
)
PLAIN_PORT = 1883
TLS_PORT = 8883
_TLS_ONLY = ("ca", "cert", "key", "insecure")


@dataclass(frozen=True)
class MqttConfig:
    """Where and how to publish. `safe_uri` is the URI with the password masked: the one to
    show in messages."""

    safe_uri: str
    host: str
    port: int
    topic: str
    qos: int = 1
    client_id: str = ""
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_path: Path | None = None
    cert_path: Path | None = None
    key_path: Path | None = None
    insecure: bool = False
    retain: bool = False
    topic_per_stream: bool = False

    def __post_init__(self) -> None:
        if not self.host:
            raise JetkitError("no broker host; write mqtt://HOST:PORT/TOPIC")
        if not 0 < self.port < 65536:
            raise JetkitError(f"port must be 1..65535, got {self.port}")
        if not self.topic:
            raise JetkitError("no topic; write mqtt://HOST:PORT/TOPIC")
        if "+" in self.topic or "#" in self.topic:
            raise JetkitError(
                f"the topic {self.topic!r} has a wildcard (+ or #); publish to a plain topic"
            )
        if self.qos not in (0, 1, 2):
            raise JetkitError(f"param 'qos' must be 0, 1 or 2, got {self.qos}")
        if self.password is not None and self.username is None:
            raise JetkitError("a password needs a user name: add username=NAME")
        if self.key_path is not None and self.cert_path is None:
            raise JetkitError("param 'key' needs 'cert' (the client certificate it belongs to)")
        tls_only = (self.ca_path, self.cert_path, self.key_path, self.insecure or None)
        for name, value in zip(_TLS_ONLY, tls_only, strict=True):
            if value is not None and not self.tls:
                raise JetkitError(f"param {name!r} is for TLS: use mqtts:// or add tls=1")

    def topic_for(self, stream_id: str) -> str:
        return f"{self.topic}/{stream_id}" if self.topic_per_stream else self.topic

    def events_topic_for(self, stream_id: str) -> str:
        """Where a stream's analytics events go (always one topic per stream)."""
        return f"{self.topic}/events/{stream_id}"


def _path(params: Mapping[str, str], name: str) -> Path | None:
    return Path(params[name]) if name in params else None


def parse_mqtt_uri(uri: str, environ: Mapping[str, str]) -> MqttConfig:
    """`uri` → MqttConfig; the password from `password=` or else from `environ` (only where a
    user name is given). Raises JetkitError naming the bad part."""
    parts = split_sink_uri(uri, PARAMS)
    if parts.scheme not in ("mqtt", "mqtts"):
        raise JetkitError(f"not an MQTT URI: {parts.scheme}://")
    netloc, _, topic = parts.location.partition("/")
    try:
        address = urlsplit(f"//{netloc}")
        port = address.port
    except ValueError as error:
        raise JetkitError(f"bad broker address {netloc!r} ({error})") from None
    if address.username is not None:
        raise JetkitError(
            f"give the user as username=NAME and the password in {PASSWORD_ENV}, not in the address"
        )
    params = parts.params
    tls = parts.scheme == "mqtts" or flag_param(params, "tls")
    username = params.get("username")
    password = params.get("password", environ.get(PASSWORD_ENV) if username else None)
    qos = number_param(params, "qos", int)
    return MqttConfig(
        safe_uri=redact(uri),
        host=address.hostname or "",
        port=port or (TLS_PORT if tls else PLAIN_PORT),
        topic=unquote(topic),
        qos=MqttConfig.qos if qos is None else qos,
        client_id=params.get("client_id", ""),
        username=username,
        password=password,
        tls=tls,
        ca_path=_path(params, "ca"),
        cert_path=_path(params, "cert"),
        key_path=_path(params, "key"),
        insecure=flag_param(params, "insecure"),
        retain=flag_param(params, "retain"),
        topic_per_stream=flag_param(params, "topic_per_stream"),
    )
