"""The real daemon in a real process: HTTP scrapes of /healthz, /metrics and /status, a new
release behind the model pointer swapped in without stopping the streams, a broken release that
leaves the old model running, SIGHUP and POST /reload, and SIGTERM draining to exit 0."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cli_helpers import assert_user_error, jetkit
from prometheus_client.parser import text_string_to_metric_families

from edge.samples import build_blob_detector


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


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _post(url: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


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
http: {{listen: "127.0.0.1:0"}}
watch_model_s: 0.2
summary: {tmp_path / "summary.json"}
"""
    )
    script = Path(sys.executable).with_name("jetkit")
    process = subprocess.Popen(
        [script, "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "HTTP on" not in line:
            line = process.stderr.readline()
            assert line or process.poll() is None, "the daemon exited at start-up"
        url = re.search(r"http://[\d.]+:\d+", line).group(0)
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
    code, body = _post(f"{url}/reload")
    assert code == 500 and not body["ok"]

    # Back to a good release: POST /reload and SIGHUP both reload.
    _point(root, root / "releases" / "v1")
    _until(lambda: json.loads(_get(f"{url}/status")[1])["model"]["path"].endswith("v1/model.onnx"))
    reloads = json.loads(_get(f"{url}/status")[1])["model"]["reloads"]
    code, body = _post(f"{url}/reload")
    assert code == 200 and body["ok"]
    process.send_signal(signal.SIGHUP)
    _until(lambda: json.loads(_get(f"{url}/status")[1])["model"]["reloads"] == reloads + 2)

    # SIGTERM: drain, flush the sinks, write the summary, exit 0.
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    delivered = sum(s["frames"] for s in summary["streams"].values())
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(lines) == delivered and json.loads(lines[-1])["stream"] in ("cam0", "cam1")


def test_a_stream_that_stalls_makes_healthz_fail(tmp_path, blob_onnx):
    config = tmp_path / "jetkit.yaml"
    config.write_text(
        f"model: {blob_onnx}\nstreams: ['test://?fps=20&count=10']\n"
        "http: {listen: '127.0.0.1:0'}\nstale_after_s: 0.5\n"
    )
    script = Path(sys.executable).with_name("jetkit")
    process = subprocess.Popen(
        [script, "serve", "--config", str(config)], stderr=subprocess.PIPE, text=True
    )
    try:
        line = ""
        while "HTTP on" not in line:
            line = process.stderr.readline()
            assert line, "the daemon exited at start-up"
        url = re.search(r"http://[\d.]+:\d+", line).group(0)
        code, body = _until(lambda: (r := _get(f"{url}/healthz"))[0] == 503 and r)
        assert json.loads(body)["streams"][0]["state"] == "stalled"
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_start_up_errors_are_one_line(tmp_path, blob_onnx):
    config = tmp_path / "jetkit.yaml"
    config.write_text(f"model: {blob_onnx}\nstreams: [{{uri: 'test://', idd: x}}]\n")
    assert_user_error(jetkit("serve", "--config", config), "config key 'streams[0].idd'")
    config.write_text(f"model: {tmp_path / 'none.onnx'}\nstreams: ['test://']\n")
    assert_user_error(jetkit("serve", "--config", config), "none.onnx does not exist")
    config.write_text(f"model: {blob_onnx}\nstreams: ['v4l2:///dev/video9']\n")
    assert_user_error(jetkit("serve", "--config", config), "/dev/video9")
