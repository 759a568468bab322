"""Real components for the sink tests: results from the blob sample model, a mosquitto broker on
a free local port (started, stopped and restarted by the test), and a paho subscriber."""

from __future__ import annotations

import getpass
import queue
import shutil
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from net_helpers import free_port

from edge.detector import Detector
from edge.samples import draw_blob_scene
from edge.sinks import Result
from edge.sources.base import Frame

SCENE_SIZE_WH = (320, 240)
RED_BOX = (40, 48, 200, 168)
# Generous bounds on waits for something that happens within milliseconds to a second or two.
WAIT_S = 15.0


@pytest.fixture(scope="session")
def detector(blob_onnx):
    found = Detector.open(blob_onnx, backend_options={"threads": 1})
    yield found
    found.close()


@pytest.fixture(scope="session")
def make_results(detector):
    """`make_results(count, stream_id="s0", start_s=0.0, period_s=1/30)`: real results of the
    blob model on scenes with a red box, their capture times `period_s` apart."""

    def make(count: int, stream_id: str = "s0", start_s: float = 0.0, period_s: float = 1 / 30):
        results = []
        for index in range(count):
            image = draw_blob_scene(SCENE_SIZE_WH, {"red": RED_BOX}, seed=index)
            capture_s = start_s + index * period_s
            frame = Frame(stream_id, index, capture_s, 1.7e9 + capture_s, image)
            results.append(Result(frame, detector(image), time.time()))
        return results

    return make


def assert_shows_annotations(decoded_bgr: np.ndarray, result: Result) -> None:
    """`decoded_bgr` (a frame back from a lossy codec) shows the label drawn above the red box:
    near the annotated frame there, far from the raw one."""
    x0, y0, _, _ = RED_BOX
    caption = (slice(y0 - 12, y0), slice(x0, x0 + 40))
    decoded = decoded_bgr.astype(int)[caption]
    annotated = result.annotated_bgr().astype(int)[caption]
    raw = result.frame.image_bgr.astype(int)[caption]
    assert np.abs(decoded - annotated).mean() * 3 < np.abs(decoded - raw).mean()


def wait_until(condition, timeout_s: float = WAIT_S, what: str = "the condition") -> None:
    deadline_s = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline_s:
            raise AssertionError(f"{what} did not happen within {timeout_s:g} s")
        time.sleep(0.02)


class Broker:
    """A mosquitto on 127.0.0.1:`port`, its sessions saved across restarts (so that a
    subscriber's QoS 1 subscription keeps collecting while the subscriber is away)."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.port = port
        self.extra_config = "allow_anonymous true\n"
        self._process: subprocess.Popen | None = None

    def require_password(self, user: str, password: str) -> None:
        """Takes effect at the next start()."""
        password_file = self.directory / "passwords"
        password_file.unlink(missing_ok=True)
        subprocess.run(
            ["mosquitto_passwd", "-b", "-c", str(password_file), user, password],
            check=True,
            capture_output=True,
        )
        password_file.chmod(0o644)
        self.extra_config = f"allow_anonymous false\npassword_file {password_file}\n"

    def start(self) -> None:
        config = self.directory / "mosquitto.conf"
        config.write_text(
            f"listener {self.port} 127.0.0.1\n{self.extra_config}"
            f"persistence true\npersistence_location {self.directory}/\n"
            # Run as root, mosquitto would switch to its own user and lose the directory.
            f"user {getpass.getuser()}\n"
        )
        log = open(self.directory / "mosquitto.log", "ab")  # noqa: SIM115
        self._process = subprocess.Popen(
            ["mosquitto", "-c", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        wait_until(self._listening, what=f"mosquitto listening on {self.port}")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(WAIT_S)
            self._process = None

    def _listening(self) -> bool:
        assert self._process is not None
        if self._process.poll() is not None:
            log = (self.directory / "mosquitto.log").read_text(errors="replace")
            raise AssertionError(f"mosquitto exited: {log[-2000:]}")
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.port)) == 0


@pytest.fixture
def broker(tmp_path):
    if shutil.which("mosquitto") is None:
        pytest.skip("mosquitto is not installed (scripts/setup.sh installs it)")
    directory = tmp_path / "broker"
    directory.mkdir()
    running = Broker(directory, free_port())
    running.start()
    yield running
    running.stop()


class Subscriber:
    """A paho client subscribed with QoS 1 to `topic` on a persistent session: what the broker
    queues for it while it is away arrives when it is back."""

    def __init__(self, port: int, topic: str, username=None, password=None) -> None:
        from paho.mqtt.client import CallbackAPIVersion, Client

        self.messages: queue.Queue = queue.Queue()
        self._topic = topic
        self._client = Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"test-subscriber-{port}",
            clean_session=False,
        )
        if username:
            self._client.username_pw_set(username, password)
        self._client.reconnect_delay_set(1, 1)
        self._client.on_connect = self._on_connect
        self._client.on_message = lambda client, userdata, message: self.messages.put(message)
        self._subscribed = queue.Queue()
        self._client.on_subscribe = lambda *args: self._subscribed.put(True)
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        self._subscribed.get(timeout=WAIT_S)

    def take(self, count: int) -> list:
        return [self.messages.get(timeout=WAIT_S) for _ in range(count)]

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        client.subscribe(self._topic, qos=1)
