"""Fuzzing the daemon's config: any YAML data and any file given as `--config` is a valid
ServiceConfig or a JetkitError naming the key (ConfigError) or the file, never a traceback."""

from __future__ import annotations

import math
from pathlib import Path

import fuzz
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from edge.service.config import ConfigError, ServiceConfig, config_from_dict, load_config

VALID = {
    "model": "models/current",
    "backend": "onnxruntime",
    "threads": 2,
    "streams": [{"uri": "csi://0", "id": "door"}, "rtsp://cam.local/stream?latency=200"],
    "sinks": ["jsonl:///var/log/jetkit.jsonl"],
    "thresholds": {"conf": 0.3, "iou": 0.5},
    "batching": {"max_batch": 4, "max_wait_ms": 8},
    "http": {"listen": "0.0.0.0:9100", "token": "Tok3n-x", "read_timeout_s": 10},
    "log_interval_s": 10,
    "watch_model_s": 1,
    "stale_after_s": 3,
    "summary": "/var/lib/jetkit/summary.json",
}
TOP_KEYS = st.sampled_from(sorted(VALID) + ["thresholds"])
LISTEN = ["h:²", "[::1]:8080", ":80", "h:", "h:65536", "h:-1", "a:b:9"]
config_values = st.one_of(
    fuzz.yaml_values, fuzz.any_of(LISTEN), fuzz.LONG_DIGITS.map(lambda d: f"h:{d}")
)


def _assert_valid(config: ServiceConfig) -> None:
    assert isinstance(config.model, Path) and config.streams
    assert all(isinstance(s.uri, str) and s.uri for s in config.streams)
    assert all(isinstance(s, str) for s in config.sinks)
    numbers = [config.max_wait_ms, config.log_interval_s, config.watch_model_s]
    numbers += [config.stale_after_s, config.http.read_timeout_s]
    numbers += [n for n in (config.conf, config.iou) if n is not None]
    assert all(isinstance(n, float) and math.isfinite(n) for n in numbers), numbers
    assert 0 <= config.http.port <= 65535 and isinstance(config.http.host, str)
    assert config.backend in (None, "onnxruntime", "tensorrt")


@settings(max_examples=fuzz.examples(600))
@given(fuzz.mutated(VALID, config_values, keys=fuzz.hashable_scalars | TOP_KEYS, max_changes=3))
@example({**VALID, 1: "x", "unknown": "y"})  # sorted() of int and str keys: TypeError
@example({**VALID, "thresholds": {"conf": float("nan")}})  # NaN passed every bound
@example({**VALID, "log_interval_s": float("inf")})
@example({**VALID, "log_interval_s": 10**400})  # float() overflowed
@example({**VALID, "backend": 16**4000})  # repr() of 4300+ digits in the message: ValueError
@example({**VALID, "threads": -(16**4000)})
@example({**VALID, "http": {"listen": "h:²"}})  # "²".isdigit(), int("²"): ValueError
@example({**VALID, "http": {"listen": "h:" + "1" * 5000}})
def test_any_change_to_a_valid_config_is_a_config_or_a_config_error(data):
    config = fuzz.user_error_or(lambda: config_from_dict(data, "jetkit.yaml"))
    if config is not None:
        _assert_valid(config)


@settings(max_examples=fuzz.examples(300))
@given(fuzz.yaml_values)
def test_any_yaml_data_is_a_config_or_a_config_error(data):
    try:
        _assert_valid(config_from_dict(data))
    except ConfigError as error:
        assert "config key" in str(error)


@settings(max_examples=fuzz.examples(300))
@given(fuzz.mutated(VALID, config_values), st.text(alphabet="!-~abc0123456789", min_size=6))
def test_the_http_token_never_shows_in_an_error(data, secret):
    data = data if isinstance(data, dict) else {}
    http = data.get("http") if isinstance(data.get("http"), dict) else {}
    data = {**data, "http": {**http, "token": f"Tk{secret}"}}
    config = fuzz.user_error_or(lambda: config_from_dict(data, "jetkit.yaml"))
    if config is None:
        try:
            config_from_dict(data, "jetkit.yaml")
        except ConfigError as error:
            assert f"Tk{secret}" not in str(error)
    else:
        assert f"Tk{secret}" not in repr(config)


VALID_YAML = yaml.safe_dump(VALID, sort_keys=False)
YAML_TRAPS = [
    "model: m\nstreams: [x]\nsummary: 2020-13-01\n",  # a date that is none: ValueError
    "model: !!int abc\nstreams: [x]\n",  # ValueError
    "model: m\nstreams: [x]\nthreads: !!float x\n",
    "model: m\nstreams: [x]\nthreads: 0x" + "f" * 4000 + "\n",
    "model: m\nstreams: [x]\nthreads: -0x" + "f" * 4000 + "\n",
    "model: m\nstreams: [x]\nlog_interval_s: 1" + ":00" * 3000 + "\n",  # base 60: 60**3000
    "model: m\nstreams: [x]\nthreads: " + "1" * 5000 + "\n",
    "model: m\nstreams: [x]\nthresholds: {conf: .nan}\n",
    fuzz.deep_nesting("{a: ", "}", 3000),
    "a: &a [*a]\n",
    "model: !!python/object:os.system x\n",
    "? [a, b]\n: c\n",
    "model: m\nstreams: [x]\n{1: a, b: c}: d\n",
    "\ufeffmodel: m\nstreams: [x]\n",
    "model: m\nstreams: [x]\n" + "x: 1\n" * 2,
]
yaml_text = st.one_of(
    fuzz.any_of(YAML_TRAPS),
    fuzz.mutated(VALID).map(lambda d: yaml.safe_dump(d, allow_unicode=True)),
    st.text(max_size=200),
    # The valid file with some of its text replaced.
    st.tuples(st.integers(0, len(VALID_YAML)), st.integers(0, 20), fuzz.tricky_text).map(
        lambda t: VALID_YAML[: t[0]] + t[2] + VALID_YAML[t[0] + t[1] :]
    ),
)


@settings(
    max_examples=fuzz.examples(400),
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(yaml_text.map(lambda t: t.encode("utf-8", "surrogatepass")) | st.binary(max_size=100))
@example(YAML_TRAPS[0].encode())
@example(YAML_TRAPS[1].encode())
@example(YAML_TRAPS[3].encode())
@example(YAML_TRAPS[6].encode())
@example(fuzz.deep_nesting("[", "]").encode())  # RecursionError (0.6 s: not in the strategy)
@example(b"model: m\xff\n")
def test_any_file_is_a_config_or_a_jetkit_error(tmp_path, data):
    path = tmp_path / "jetkit.yaml"
    path.write_bytes(data)
    config = fuzz.user_error_or(lambda: load_config(path))
    if config is not None:
        _assert_valid(config)
