"""The real daemon in a real process: HTTP scrapes of /healthz, /metrics and /status, a new
release behind the model pointer swapped in without stopping the streams, a broken release that
leaves the old model running (and is not retried by the pointer watch), SIGHUP and POST /reload
(with the token, from this daemon's names only), and SIGTERM draining to exit 0. Idle
connections over real sockets: no thread each, closed after the read timeout."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cli_helpers import assert_user_error, jetkit
from daemon_helpers import serving, start_daemon
from prometheus_client.parser import text_string_to_metric_families

from edge.samples import build_blob_detector
from edge.service.http import MAX_CONNECTIONS, WORKERS

TOKEN = "test-token-5b1e0c"
READ_TIMEOUT_S = 2.0
WATCH_S = 0.2


def _release(root: Path, version: str, input_hw: tuple[int, int]) -> Path:
    release = root / "releases" / version
    release.mkdir(parents=True)
    build_blob_detector(release / "model.onnx", input_hw=input_hw, max_batch=4, dynamic_batch=True)
    (release / "release.json").write_text(json.dumps({"model": "model.onnx"}))
    return release


def _point(root: Path, release: Path) -> None:
    """Switch `current` the way deploy does: a new link renamed over the old."""
    link = root / "current.next"
    link.symlink_to(release)
    os.replace(link, root / "current")


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _post(url: str, token: str | None = None, **headers: str) -> tuple[int, dict]:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, method="POST", data=b"", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _model(url: str) -> dict:
    return json.loads(_get(f"{url}/status")[1])["model"]


def _until(condition, timeout_s=20.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


@pytest.fixture()
def daemon(tmp_path):
    root = tmp_path / "device"
    v1 = _release(root, "v1", (320, 320))
    _point(root, v1)
    config = tmp_path / "jetkit.yaml"
    config.write_text(
        f"""
model: {root / "current"}
streams:
  - {{uri: "test://?fps=20", id: cam0}}
  - {{uri: "test://?fps=10", id: cam1}}
sinks: ["jsonl://{tmp_path / "results.jsonl"}"]
http: {{listen: "127.0.0.1:0", token: {TOKEN}, read_timeout_s: {READ_TIMEOUT_S}}}
watch_model_s: {WATCH_S}
summary: {tmp_path / "summary.json"}
"""
    )
    process, url, _ = start_daemon(config)
    try:
        yield process, url, root, tmp_path
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def test_the_daemon_serves_health_metrics_status_and_reloads_without_stopping(daemon):
    process, url, root, tmp_path = daemon
    status = _until(lambda: (s := json.loads(_get(f"{url}/status")[1]))["healthy"] and s)
    assert [s["id"] for s in status["streams"]] == ["cam0", "cam1"]
    assert status["model"]["path"].endswith("releases/v1/model.onnx")
    assert _get(f"{url}/healthz")[0] == 200
    assert _get(f"{url}/nothing")[0] == 404

    # Only this daemon's names (DNS rebinding), only with the token, never from another site.
    assert _get(f"{url}/status", {"Host": "evil.example:8080"})[0] == 421
    assert _get(f"{url}/status", {"Host": "localhost:9999"})[0] == 200  # an SSH tunnel's port
    assert _post(f"{url}/reload")[0] == 401
    assert _post(f"{url}/reload", "wrong-token")[0] == 401
    assert _post(f"{url}/reload", TOKEN, Origin="http://evil.example")[0] == 403
    # The model that runs already is not loaded a second time.
    code, body = _post(f"{url}/reload", TOKEN)
    assert code == 200 and body["ok"] and body["changed"] is False
    assert _model(url)["reloads"] == 0

    families = {
        f.name: f for f in text_string_to_metric_families(_get(f"{url}/metrics")[1].decode())
    }
    frames = {s.labels["stream"]: s.value for s in families["jetkit_frames"].samples}
    assert frames["cam0"] > 0 and frames["cam1"] > 0
    assert "jetkit_stage_latency_seconds" in families

    # A new release behind the pointer: swapped in, the streams keep delivering, no drops.
    before = {s["id"]: s["frames"] for s in status["streams"]}
    _point(root, _release(root, "v2", (256, 256)))
    status = _until(
        lambda: (s := json.loads(_get(f"{url}/status")[1]))["model"]["reloads"] == 1 and s
    )
    assert status["model"]["path"].endswith("releases/v2/model.onnx")
    after = _until(
        lambda: (
            all(
                s["frames"] > before[s["id"]] + 5
                for s in json.loads(_get(f"{url}/status")[1])["streams"]
            )
            and json.loads(_get(f"{url}/status")[1])
        )
    )
    assert all(not s["errors"] for s in after["streams"])

    # A broken release: the reload fails, v2 keeps running, the daemon stays healthy.
    broken = root / "releases" / "v3"
    broken.mkdir()
    (broken / "model.onnx").write_bytes(b"not a model")
    _point(root, broken)
    status = _until(
        lambda: (s := json.loads(_get(f"{url}/status")[1]))["model"]["last_reload_error"] and s
    )
    assert "not a valid ONNX model" in status["model"]["last_reload_error"]
    assert status["model"]["path"].endswith("releases/v2/model.onnx")
    assert _get(f"{url}/healthz")[0] == 200
    # The pointer watch does not try the broken model again, however many checks pass.
    time.sleep(6 * WATCH_S)
    assert _model(url)["failed_reloads"] == 1
    # SIGHUP and POST /reload do try it again.
    process.send_signal(signal.SIGHUP)
    _until(lambda: _model(url)["failed_reloads"] == 2)
    code, body = _post(f"{url}/reload", TOKEN)
    assert code == 500 and not body["ok"] and _model(url)["failed_reloads"] == 3

    # Back to a good release: the pointer watch loads it; a reload then changes nothing.
    _point(root, root / "releases" / "v1")
    model = _until(lambda: (m := _model(url))["path"].endswith("v1/model.onnx") and m)
    assert (model["reloads"], model["failed_reloads"], model["last_reload_error"]) == (2, 3, None)
    code, body = _post(f"{url}/reload", TOKEN)
    assert code == 200 and body["changed"] is False and _model(url)["reloads"] == 2

    # SIGTERM: drain, flush the sinks, write the summary, exit 0.
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    delivered = sum(s["frames"] for s in summary["streams"].values())
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(lines) == delivered and json.loads(lines[-1])["stream"] in ("cam0", "cam1")


def _threads(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^Threads:\s*(\d+)", status, re.M).group(1))


def _closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True


def test_idle_connections_take_no_threads_and_are_closed_after_the_read_timeout(daemon):
    process, url, _, _ = daemon
    address = ("127.0.0.1", int(url.rsplit(":", 1)[1]))
    _until(lambda: _get(f"{url}/healthz")[0] == 200)
    before = _threads(process.pid)
    idle = []
    try:
        for _ in range(100):
            idle.append(socket.create_connection(address, timeout=10))
            idle[-1].sendall(b"GET /healthz HT")  # a request line never finished
        assert _get(f"{url}/healthz")[0] == 200  # answered while they wait
        assert _threads(process.pid) <= before + WORKERS, "a thread per idle connection"

        # Beyond MAX_CONNECTIONS open ones, a new connection is refused at once.
        for _ in range(MAX_CONNECTIONS - len(idle) + 1):
            idle.append(socket.create_connection(address, timeout=10))
        assert idle[-1].recv(100).startswith(b"HTTP/1.1 503 ")

        # The read timeout passes: the server closes every idle connection, unanswered (a
        # client waits up to its own 10 s socket timeout, five times the server's).
        assert all(_closed_by_server(sock) for sock in idle[:100])
    finally:
        for sock in idle:
            sock.close()
    assert _get(f"{url}/healthz")[0] == 200


def test_beyond_loopback_without_a_token_a_reload_is_refused(tmp_path, blob_onnx):
    config = tmp_path / "jetkit.yaml"
    config.write_text(
        f"model: {blob_onnx}\nstreams: ['test://?fps=5']\nhttp: {{listen: '0.0.0.0:0'}}\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "JETKIT_HTTP_TOKEN"}
    process, url, log = start_daemon(config, env)
    try:
        lines = log.splitlines()
        warnings = [line for line in lines if "warning:" in line]
        assert len(warnings) == 1 and "http.token" in warnings[0], lines
        url = url.replace("0.0.0.0", "127.0.0.1")
        code, body = _post(f"{url}/reload")
        assert code == 403 and "set http.token" in body["error"]
        # A wildcard address has no names to check a Host against; the token guards reloads.
        assert _get(f"{url}/status", {"Host": "jetson.local:8080"})[0] == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_a_tracking_daemon_counts_crossings_in_status_and_metrics(tmp_path, blob_onnx):
    """The synthetic camera's boxes slide left and right; a vertical line down the middle of
    the frame counts them both ways, in /status and as Prometheus counters."""
    config = tmp_path / "jetkit.yaml"
    config.write_text(
        f"model: {blob_onnx}\nstreams: ['test://?fps=30&size=640x480']\n"
        "http: {listen: '127.0.0.1:0'}\ntracker: {buffer_frames: 30}\n"
        "lines: [{name: middle, points: [[0.5, 0], [0.5, 1]], anchor: center}]\n"
        "zones: [{name: left, points: [[0, 0], [0.5, 0], [0.5, 1], [0, 1]], anchor: center}]\n"
    )
    with serving(config) as url:

        def crossed():
            status = json.loads(_get(f"{url}/status")[1])
            counts = status["analytics"]["s0"]["lines"].get("middle", {})
            return sum(sum(d.values()) for d in counts.values()) >= 2 and status

        status = _until(crossed, timeout_s=60)
        analytics = status["analytics"]["s0"]
        assert analytics["tracks"] == 3
        assert sum(analytics["zones"]["left"]["entered"].values()) >= 1
        families = {
            f.name: f for f in text_string_to_metric_families(_get(f"{url}/metrics")[1].decode())
        }
        crossings = families["jetkit_line_crossings"].samples
        assert {s.labels["line"] for s in crossings} == {"middle"}
        assert sum(s.value for s in crossings if s.name.endswith("_total")) >= 2
        assert "jetkit_zone_occupancy" in families and "jetkit_tracks" in families
        assert "track" in status["stages"]


def test_a_reload_takes_new_analytics_and_keeps_the_old_ones_when_they_are_wrong(
    tmp_path, blob_onnx
):
    config = tmp_path / "jetkit.yaml"
    head = (
        f"model: {blob_onnx}\nstreams: ['test://?fps=30&size=640x480']\n"
        f"http: {{listen: '127.0.0.1:0', token: {TOKEN}}}\ntracker: {{}}\n"
    )
    config.write_text(head + "lines: [{name: middle, points: [[0.5, 0], [0.5, 1]]}]\n")
    with serving(config) as url:

        def lines():
            return set(json.loads(_get(f"{url}/status")[1])["analytics"]["s0"]["lines"])

        config.write_text(head + "zones: [{name: flat, points: [[0, 0], [1, 0], [1, 0]]}]\n")
        code, body = _post(f"{url}/reload", TOKEN)
        assert code == 500 and not body["ok"]  # as for a model that fails to load
        assert "zones.flat.points enclose no area" in body["error"]
        assert "zones.flat" in _model(url)["last_reload_error"]
        assert lines() == {"middle"}  # the old line still runs
        config.write_text(head + "lines: [{name: door, points: [[0, 0.5], [1, 0.5]]}]\n")
        code, body = _post(f"{url}/reload", TOKEN)
        assert code == 200 and body["ok"], body
        assert lines() == {"door"}


def test_analytics_mistakes_are_start_up_errors_naming_the_key(tmp_path, blob_onnx):
    config = tmp_path / "jetkit.yaml"
    head = f"model: {blob_onnx}\nstreams: ['test://']\ntracker: {{}}\n"
    config.write_text(head + "zones: [{name: z, points: [[0, 0], [1, 1]]}]\n")
    assert_user_error(jetkit("serve", "--config", config), "config key 'zones[0]'", "3 points")
    config.write_text(head + "lines: [{name: l, points: [[0, 0], [1, 1]], classes: [bus]}]\n")
    assert_user_error(jetkit("serve", "--config", config), "lines.l.classes names bus")
    config.write_text(head.replace("tracker: {}", "tracker: {low: 0.9}"))
    assert_user_error(jetkit("serve", "--config", config), "config key 'tracker'", "tracker.low")


def test_a_stream_that_stalls_makes_healthz_fail(tmp_path, blob_onnx):
    config = tmp_path / "jetkit.yaml"
    config.write_text(
        f"model: {blob_onnx}\nstreams: ['test://?fps=20&count=10']\n"
        "http: {listen: '127.0.0.1:0'}\nstale_after_s: 0.5\n"
    )
    with serving(config) as url:
        code, body = _until(lambda: (r := _get(f"{url}/healthz"))[0] == 503 and r)
        assert json.loads(body)["streams"][0]["state"] == "stalled"


def test_start_up_errors_are_one_line(tmp_path, blob_onnx):
    config = tmp_path / "jetkit.yaml"
    config.write_text(f"model: {blob_onnx}\nstreams: [{{uri: 'test://', idd: x}}]\n")
    assert_user_error(jetkit("serve", "--config", config), "config key 'streams[0].idd'")
    config.write_text(f"model: {tmp_path / 'none.onnx'}\nstreams: ['test://']\n")
    assert_user_error(jetkit("serve", "--config", config), "none.onnx does not exist")
    config.write_text(f"model: {blob_onnx}\nstreams: ['v4l2:///dev/video9']\n")
    assert_user_error(jetkit("serve", "--config", config), "/dev/video9")
