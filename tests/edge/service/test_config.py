"""The daemon's YAML config: what a valid one gives, and errors that name the key and file."""

from pathlib import Path

import pytest

from edge.errors import JetkitError
from edge.service.config import HttpConfig, config_from_dict, load_config, parse_listen

FULL = """
model: models/current
backend: onnxruntime
threads: 2
streams:
  - uri: csi://0
    id: door
  - rtsp://cam.local/stream?latency=200
sinks: [jsonl:///var/log/jetkit.jsonl]
thresholds: {conf: 0.3, iou: 0.5}
batching: {max_batch: 4, max_wait_ms: 8}
http: {listen: "0.0.0.0:9100"}
log_interval_s: 10
watch_model_s: 1
stale_after_s: 3
summary: /var/lib/jetkit/summary.json
"""


def test_a_full_config(tmp_path):
    path = tmp_path / "jetkit.yaml"
    path.write_text(FULL)
    config = load_config(path)
    assert config.model == tmp_path / "models/current"  # relative to the config file
    assert config.stream_uris == ["csi://0?id=door", "rtsp://cam.local/stream?latency=200"]
    assert config.sinks == ("jsonl:///var/log/jetkit.jsonl",)
    assert (config.conf, config.iou, config.max_batch, config.max_wait_ms) == (0.3, 0.5, 4, 8.0)
    assert config.http == HttpConfig("0.0.0.0", 9100)
    assert (config.threads, config.backend, config.stale_after_s) == (2, "onnxruntime", 3.0)
    assert config.summary == Path("/var/lib/jetkit/summary.json")


def test_defaults_listen_on_localhost_only():
    config = config_from_dict({"model": "/m.onnx", "streams": ["test://"]})
    assert config.http == HttpConfig("127.0.0.1", 8080)
    assert config.sinks == () and config.max_batch is None


@pytest.mark.parametrize(
    ("data", "key", "problem"),
    [
        ({"streams": ["test://"]}, "model", "required"),
        ({"model": "m.onnx"}, "streams", "required"),
        ({"model": "m.onnx", "streams": []}, "streams", "non-empty list"),
        ({"model": "m.onnx", "streams": ["test://", {"urii": "x"}]}, "streams[1].urii", "unknown"),
        ({"model": "m.onnx", "streams": [{"id": "a"}]}, "streams[0].uri", "required"),
        ({"model": "m.onnx", "streams": ["t://"], "batching": {"max_batch": "4"}},
         "batching.max_batch", "integer"),
        ({"model": "m.onnx", "streams": ["t://"], "thresholds": {"conf": 2}}, "thresholds.conf",
         "in [0.0, 1.0]"),
        ({"model": "m.onnx", "streams": ["t://"], "http": {"listen": "localhost"}}, "http.listen",
         "HOST:PORT"),
        ({"model": "m.onnx", "streams": ["t://"], "backend": "openvino"}, "backend", "onnxruntime"),
        ({"model": "m.onnx", "streams": ["t://"], "sink": []}, "sink", "unknown key"),
        ({"model": "m.onnx", "streams": ["t://"], "sinks": "jsonl://-"}, "sinks", "list"),
        ({"model": "m.onnx", "streams": ["t://"], "stale_after_s": 0}, "stale_after_s", ">= 0.1"),
    ],
)  # fmt: skip
def test_errors_name_the_key_path(data, key, problem):
    with pytest.raises(JetkitError) as error:
        config_from_dict(data, "jetkit.yaml")
    message = str(error.value)
    assert message.startswith(f"config key '{key}' in jetkit.yaml:"), message
    assert problem in message


def test_file_errors_name_the_file_and_line(tmp_path):
    with pytest.raises(JetkitError, match="does not exist"):
        load_config(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: m.onnx\nstreams: [test://\n  oops: {\n")
    with pytest.raises(JetkitError, match=r"broken.yaml is not valid YAML at line \d"):
        load_config(broken)


def test_listen_addresses():
    assert parse_listen("[::1]:8080") == HttpConfig("::1", 8080)
    assert parse_listen("127.0.0.1:0") == HttpConfig("127.0.0.1", 0)
    with pytest.raises(JetkitError, match="must be in"):
        parse_listen("127.0.0.1:70000")
