"""`mqtt://` and `mqtts://`: each result as JSON to an MQTT broker through paho-mqtt, without ever
holding up inference.

`write()` only appends to a bounded outbox (when full, the oldest result makes room and is
counted as dropped); a sender thread hands the outbox to paho while the broker is connected, and
paho's network thread reconnects with exponential backoff after an outage, when the outbox
empties in order. A slow or absent broker costs `write()` a lock and a deque append.

At open, a broker host that does not resolve, TLS files that do not load, a failed TLS handshake
and a refusal of the credentials are errors (exit 2: retrying cannot fix them); a broker that is
down or unreachable is a warning, and the sink keeps trying in the background.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge.errors import JetkitError
from edge.sinks.base import Result
from edge.sinks.mqtt_uri import PASSWORD_ENV, MqttConfig

OUTBOX_LIMIT = 1000
# The first connection at open (TCP, TLS, CONNACK), and each later attempt's TCP/TLS part.
CONNECT_TIMEOUT_S = 5.0
# How long close() waits for the outbox to go out and the broker to acknowledge it.
CLOSE_TIMEOUT_S = 5.0
# A dead connection (a pulled cable sends no FIN) is noticed after about 1.5x this.
KEEPALIVE_S = 15
RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 30
# How long the sender waits before handing paho a result it just turned away (its queue full).
RETRY_WAIT_S = 0.05
# paho's MQTT 5 codes for MQTT 3.1.1's CONNACK 4 (bad user name or password) and 5 (not
# authorised): a refusal that retrying cannot fix.
_AUTH_REFUSALS = (134, 135)


@dataclass(frozen=True)
class MqttStats:
    """`published`: acknowledged by the broker (QoS 1, 2) or written to the socket (QoS 0);
    `queued`: in the outbox; `dropped`: pushed out of a full outbox, or still unsent at close;
    `disconnects`: connections lost after they were up; `failed_connects`: attempts the broker
    refused or that did not reach it; `last_error`: the latest of those, for a status page."""

    connected: bool
    published: int
    queued: int
    dropped: int
    disconnects: int
    failed_connects: int
    last_error: str | None


def tls_context(config: MqttConfig) -> ssl.SSLContext:
    """The TLS settings `config` asks for: the system's CAs or `ca_path`, a client certificate
    where given, and no verification at all with `insecure`."""
    try:
        context = ssl.create_default_context(cafile=str(config.ca_path) if config.ca_path else None)
        if config.cert_path is not None:
            context.load_cert_chain(
                str(config.cert_path), str(config.key_path) if config.key_path else None
            )
    except (OSError, ssl.SSLError) as error:
        names = ", ".join(
            f"{name}={path}"
            for name, path in (
                ("ca", config.ca_path),
                ("cert", config.cert_path),
                ("key", config.key_path),
            )
            if path
        )
        raise JetkitError(f"cannot load the TLS files ({names}): {error}") from None
    if config.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class MqttSink:
    """Publishes each result to `config.topic_for(stream id)`; `stats()` for metrics.

    `log` gets one line per change of state (connection lost, back, refused, outbox full), not
    one per retry.
    """

    def __init__(
        self, config: MqttConfig, log: Callable[[str], None], outbox_limit: int = OUTBOX_LIMIT
    ) -> None:
        self.uri = config.safe_uri
        self.config = config
        self._log = log
        self._outbox_limit = outbox_limit
        self._outbox: deque[tuple[str, bytes]] = deque()
        # Guards everything below; paho's callbacks take it too, so paho is never called with it
        # held (paho calls the callbacks with its own locks held).
        self._cond = threading.Condition()
        self._connected = False
        self._closing = False
        self._overflowing = False
        self._handed = 0
        self._published = 0
        self._dropped = 0
        self._disconnects = 0
        self._failed_connects = 0
        self._last_error: str | None = None
        # Until open() has reported how the first connection went, the callbacks log nothing.
        self._announce = False
        self._answered = threading.Event()
        self._first_refusal: Any = None
        self._client: Any = None
        self._sender: threading.Thread | None = None

    def open(self) -> None:
        client = self._new_client()
        config = self.config
        address = f"{config.host}:{config.port}"
        reached = False
        try:
            client.connect(config.host, config.port, KEEPALIVE_S)
            reached = True
        except socket.gaierror:
            raise JetkitError(
                f"cannot resolve the broker host {config.host!r}; check the name"
            ) from None
        except ssl.SSLError as error:
            raise JetkitError(
                f"TLS with {address} failed: {error.reason or error}; check ca=, cert=, key= "
                "(insecure=1 skips the checks)"
            ) from None
        except OSError as error:
            # connect() leaves paho set up to connect: its network thread retries from here.
            self._note_failure(f"cannot reach {address}")
            self._log(
                f"sink {self.uri}: cannot reach {address} ({error.strerror or error}); "
                "retrying in the background"
            )
        self._client = client
        client.loop_start()
        self._sender = threading.Thread(target=self._send_loop, name="mqtt-sink", daemon=True)
        self._sender.start()
        if reached:
            self._await_first_answer(address)
        self._announce = True

    def _await_first_answer(self, address: str) -> None:
        if not self._answered.wait(CONNECT_TIMEOUT_S):
            self._log(f"sink {self.uri}: no answer from {address}; retrying in the background")
            return
        refusal = self._first_refusal
        if refusal is None:
            return
        if refusal.value in _AUTH_REFUSALS:
            self._stop_client()
            config = self.config
            who = f"user {config.username!r}" if config.username else "anonymous clients"
            raise JetkitError(
                f"the broker at {address} refused {who} ({refusal}); check username= and the "
                f"password (in {PASSWORD_ENV} or password=)"
            )
        self._log(f"sink {self.uri}: {self._last_error}; retrying in the background")

    def write(self, result: Result) -> None:
        """The result to its topic, and each of its analytics events on its own to the
        stream's events topic, where automations subscribe."""
        stream_id = result.frame.stream_id
        messages = [(self.config.topic_for(stream_id), result.to_dict())]
        messages += [(self.config.events_topic_for(stream_id), event) for event in result.events]
        first_overflow = False
        with self._cond:
            for topic, message in messages:
                if len(self._outbox) >= self._outbox_limit:
                    self._outbox.popleft()
                    self._dropped += 1
                    first_overflow, self._overflowing = not self._overflowing, True
                payload = json.dumps(message, separators=(",", ":")).encode("utf-8")
                self._outbox.append((topic, payload))
            self._cond.notify_all()
        if first_overflow:
            self._log(
                f"sink {self.uri}: {self._outbox_limit} results wait for the broker; dropping "
                "the oldest"
            )

    def stats(self) -> MqttStats:
        with self._cond:
            return MqttStats(
                connected=self._connected,
                published=self._published,
                queued=len(self._outbox),
                dropped=self._dropped,
                disconnects=self._disconnects,
                failed_connects=self._failed_connects,
                last_error=self._last_error,
            )

    def close(self) -> None:
        """Sends what is queued while the broker is connected, for up to CLOSE_TIMEOUT_S, then
        disconnects; what did not go out is counted as dropped and logged."""
        if self._client is None:
            return
        deadline_s = time.monotonic() + CLOSE_TIMEOUT_S
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            while self._connected and (self._outbox or self._published < self._handed):
                if not self._cond.wait(deadline_s - time.monotonic()):
                    break
        self._stop_client()
        with self._cond:
            unsent = len(self._outbox) + max(0, self._handed - self._published)
            self._outbox.clear()
            self._dropped += unsent
        if unsent:
            self._log(f"sink {self.uri}: {unsent} results were not delivered before close")

    # --- paho ------------------------------------------------------------------------------------

    def _new_client(self) -> Any:
        from paho.mqtt.client import CallbackAPIVersion, Client

        config = self.config
        client = Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=config.client_id
        )
        if config.username is not None:
            client.username_pw_set(config.username, config.password)
        if config.tls:
            client.tls_set_context(tls_context(config))
        client.connect_timeout = CONNECT_TIMEOUT_S
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        # paho's own queue (QoS 1, 2 while unacknowledged) bounded like ours.
        client.max_queued_messages_set(self._outbox_limit)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    def _stop_client(self) -> None:
        client, self._client = self._client, None
        client.disconnect()
        client.loop_stop()
        with self._cond:
            self._connected = False
            self._closing = True
            self._cond.notify_all()
        if self._sender is not None:
            self._sender.join()

    def _send_loop(self) -> None:
        from paho.mqtt.client import MQTTErrorCode

        qos, retain = self.config.qos, self.config.retain
        while True:
            with self._cond:
                while not self._closing and not (self._connected and self._outbox):
                    self._cond.wait()
                client = self._client
                if client is None or not (self._connected and self._outbox):
                    return
                topic, payload = self._outbox.popleft()
            rc = client.publish(topic, payload, qos, retain).rc
            # A QoS 1/2 message that meets a lost connection stays with paho, which sends it on
            # reconnect; turned away (paho's queue full, or QoS 0 with no connection) it is ours.
            turned_away = rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE or (
                rc == MQTTErrorCode.MQTT_ERR_NO_CONN and qos == 0
            )
            with self._cond:
                if turned_away:
                    self._outbox.appendleft((topic, payload))
                    self._cond.wait(RETRY_WAIT_S)
                else:
                    self._handed += 1

    def _note_failure(self, error: str) -> None:
        with self._cond:
            self._failed_connects += 1
            changed, self._last_error = error != self._last_error, error
        if changed and self._announce:
            self._log(f"sink {self.uri}: {error}; retrying")

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            if not self._answered.is_set():
                self._first_refusal = reason
            self._note_failure(f"the broker refused the connection ({reason})")
        else:
            with self._cond:
                again = self._disconnects > 0 or self._failed_connects > 0
                self._connected, self._overflowing = True, False
                queued = len(self._outbox)
                self._cond.notify_all()
            if again and self._announce:
                self._log(f"sink {self.uri}: connected; sending {queued} queued results")
        self._answered.set()

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        self._note_failure(f"cannot reach {self.config.host}:{self.config.port}")

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        with self._cond:
            lost = self._connected and not self._closing
            self._connected = False
            self._disconnects += lost
        if lost:
            self._log(
                f"sink {self.uri}: connection lost ({reason}); retrying, keeping up to "
                f"{self._outbox_limit} results"
            )

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._cond:
            self._published += 1
            self._cond.notify_all()
