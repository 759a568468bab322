"""The daemon's YAML config: what a valid one gives, and errors that name the key and file."""

from pathlib import Path

import pytest

from edge.errors import JetkitError
from edge.service.config import (
    TOKEN_ENV,
    HttpConfig,
    config_from_dict,
    load_config,
    parse_listen,
)

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
    assert config.stream_uris == [
        ("csi://0", "door"),
        ("rtsp://cam.local/stream?latency=200", None),
    ]
    assert config.sinks == ("jsonl:///var/log/jetkit.jsonl",)
    assert (config.conf, config.iou, config.max_batch, config.max_wait_ms) == (0.3, 0.5, 4, 8.0)
    assert config.http == HttpConfig("0.0.0.0", 9100)
    assert (config.threads, config.backend, config.stale_after_s) == (2, "onnxruntime", 3.0)
    assert config.summary == Path("/var/lib/jetkit/summary.json")


def test_defaults_listen_on_localhost_only():
    config = config_from_dict({"model": "/m.onnx", "streams": ["test://"]})
    assert config.http == HttpConfig("127.0.0.1", 8080)
    assert config.sinks == () and config.max_batch is None


def test_a_streams_id_names_paths_file_uris_and_pipelines_too():
    from edge.sources import parse_source_uris

    streams = [
        {"uri": "/clips/door.mp4", "id": "door"},
        {"uri": "file:///clips/yard%20cam.mp4", "id": "yard"},
        {"uri": "gst://videotestsrc ! videoconvert ! appsink", "id": "synthetic"},
        {"uri": "test://?fps=5"},
    ]
    config = config_from_dict({"model": "/m.onnx", "streams": streams})
    specs = parse_source_uris(config.stream_uris)
    assert [(spec.kind, spec.location, spec.stream_id) for spec in specs] == [
        ("file", "/clips/door.mp4", "door"),
        ("file", "/clips/yard cam.mp4", "yard"),
        ("gst", "videotestsrc ! videoconvert ! appsink", "synthetic"),
        ("test", "", "s3"),
    ]


@pytest.mark.parametrize("stream_id", ["a&fps=1000", "../etc", "-x", "a" * 65, 7])
def test_a_stream_id_that_could_carry_params_or_paths_is_refused(stream_id):
    with pytest.raises(JetkitError) as error:
        config_from_dict({"model": "/m.onnx", "streams": [{"uri": "test://", "id": stream_id}]})
    assert str(error.value).startswith("config key 'streams[0].id': must be 1-64 letters")


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
        ({"model": "m.onnx", "streams": [{"uri": "t://", "motion": "no"}], "tracker": {},
          "motion": {}}, "streams[0].motion", "true or false"),
        ({"model": "m.onnx", "streams": [{"uri": "t://", "motion": True}], "tracker": {}},
         "streams[0].motion", "needs the top-level motion"),
    ],
)  # fmt: skip
def test_errors_name_the_key_path(data, key, problem):
    with pytest.raises(JetkitError) as error:
        config_from_dict(data, "jetkit.yaml")
    message = str(error.value)
    assert message.startswith(f"config key '{key}' in jetkit.yaml:"), message
    assert problem in message


def test_motion_gating_covers_every_stream_unless_one_opts_out():
    config = config_from_dict({"model": "m.onnx", "tracker": {}, "motion": {"full_every_s": 2},
                               "streams": ["test://", {"uri": "csi://0", "motion": False}]})  # fmt: skip
    assert [s.motion for s in config.streams] == [True, False]
    assert config.analytics.motion.full_every_s == 2


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


def test_http_token_and_read_timeout():
    http = config_from_dict(
        {"model": "/m.onnx", "streams": ["test://"],
         "http": {"listen": "0.0.0.0:9100", "token": "s3cret-token", "read_timeout_s": 2}}
    ).http  # fmt: skip
    assert (http.token, http.read_timeout_s, http.wildcard) == ("s3cret-token", 2.0, True)
    assert "s3cret" not in repr(http)  # a config in a log line or traceback keeps the secret
    assert config_from_dict({"model": "/m.onnx", "streams": ["t://"]}).http.read_timeout_s == 10


@pytest.mark.parametrize(
    ("http", "key", "problem"),
    [
        ({"token": "two words"}, "http.token", "printable ASCII without spaces"),
        ({"token": 12345}, "http.token", "printable ASCII without spaces"),
        ({"read_timeout_s": 0}, "http.read_timeout_s", "[0.1, 3600]"),
        ({"tokn": "x"}, "http.tokn", "unknown key"),
    ],
)
def test_http_errors_name_the_key(http, key, problem):
    with pytest.raises(JetkitError) as error:
        config_from_dict({"model": "/m.onnx", "streams": ["t://"], "http": http}, "jetkit.yaml")
    assert str(error.value).startswith(f"config key '{key}' in jetkit.yaml:")
    assert problem in str(error.value) and "two words" not in str(error.value)


@pytest.mark.parametrize("threads", [0, -4, 100_000])
def test_threads_are_bounded_where_onnx_runtime_would_hang(threads):
    with pytest.raises(JetkitError, match=r"config key 'threads'.*must be in \[1, 256\]"):
        config_from_dict({"model": "/m.onnx", "streams": ["t://"], "threads": threads})


def test_the_token_may_come_from_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "jetkit.yaml"
    path.write_text("model: m.onnx\nstreams: ['test://']\n")
    monkeypatch.setenv(TOKEN_ENV, "from-the-environment")
    assert load_config(path).http.token == "from-the-environment"
    path.write_text("model: m.onnx\nstreams: ['test://']\nhttp: {token: from-the-file}\n")
    assert load_config(path).http.token == "from-the-file"  # the file's wins
    monkeypatch.setenv(TOKEN_ENV, "two words")
    path.write_text("model: m.onnx\nstreams: ['test://']\n")
    with pytest.raises(JetkitError, match=f"config key 'http.token' in {TOKEN_ENV}: must be"):
        load_config(path)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.3.4", True), ("::1", True), ("localhost", True),
     ("0.0.0.0", False), ("::", False), ("192.168.1.5", False), ("jetson.local", False)],
)  # fmt: skip
def test_loopback_listen_addresses(host, loopback):
    assert HttpConfig(host).loopback is loopback
