"""Credentials in source and sink URIs never reach what jetkit prints or exports: its errors and
logs, the daemon's /metrics and /status, and the summary file."""

from __future__ import annotations

import json
import signal
import time
import urllib.request

import pytest
from cli_helpers import assert_user_error, jetkit
from daemon_helpers import start_daemon
from net_helpers import free_port

from edge.sources import gstreamer_available

SECRETS = ("hunter2", "hunter3", "p@ss", "ss@")


def _assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, text


@pytest.mark.skipif(not gstreamer_available(), reason="GStreamer's Python bindings are missing")
def test_a_cameras_credentials_stay_out_of_its_start_up_error(blob_onnx):
    result = jetkit("run", "rtsp://admin:p@ss@127.0.0.1:1/s?token=hunter2", "--model", blob_onnx)
    assert_user_error(result, "source 'rtsp://admin:***@127.0.0.1:1/s?token=***'")
    _assert_no_secret(result.stderr)


def test_credentials_stay_out_of_the_daemons_log_metrics_status_and_summary(blob_onnx, tmp_path):
    broker = f"127.0.0.1:{free_port()}"  # refused: the sink says so, with its URI
    http_out = (
        "gst://appsrc name=src ! videoconvert ! jpegenc ! souphttpclientsink "
        f"location=http://admin:p@ss@{broker}/up user-id=admin user-pw=hunter3"
    )
    sinks = [f"mqtt://{broker}/dets?username=admin&password=hunter2"]
    if gstreamer_available():
        sinks.append(http_out)
    config = tmp_path / "jetkit.yaml"
    config.write_text(
        json.dumps(
            {
                "model": str(blob_onnx),
                "streams": [{"uri": "test://?fps=20&size=320x240", "id": "cam"}],
                "sinks": sinks,
                "http": {"listen": "127.0.0.1:0"},
                "summary": str(tmp_path / "summary.json"),
            }
        )
    )
    process, url, log = start_daemon(config)
    try:
        time.sleep(1.0)  # results flow to the sinks
        with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
            metrics = response.read().decode()
        with urllib.request.urlopen(f"{url}/status", timeout=10) as response:
            status = response.read().decode()
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, log + rest
    assert "password=***" in log and "password=***" in metrics  # the MQTT sink, named masked
    summary = (tmp_path / "summary.json").read_text()
    for text in (log + rest, metrics, status, summary):
        _assert_no_secret(text)
