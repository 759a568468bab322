"""Fuzzing the device state (`state.json` on the Jetson, which a crash, a full disk or a hand edit
may leave in any shape): any content is a DeviceState the agent's release rules work on, or a
JetkitError that names the file, never a traceback."""

from __future__ import annotations

import json

import fuzz
from hypothesis import example, given, settings
from hypothesis import strategies as st

from deploy.device import (
    STATE_SCHEMA,
    DeviceState,
    Layout,
    in_flight_releases,
    load_state,
    releases_to_remove,
)

VALID = {
    "schema": STATE_SCHEMA,
    "active": {"name": "blob", "version": "1.1.0", "precision": "fp16", "model": "m.onnx"},
    "history": [
        {"event": "activated", "unix_s": 1.0, "name": "blob", "version": "1.0.0"},
        {"event": "activated", "unix_s": 2.0, "name": "blob", "version": "1.1.0"},
        {"event": "failed", "unix_s": 3.0, "name": "blob", "version": "1.2.0"},
    ],
}
states = fuzz.mutated(VALID, max_changes=3) | fuzz.json_values
# Found by the fuzzer: a name that is not a string made the pruning rules raise TypeError.
UNHASHABLE_NAME = {**VALID, "history": [{"event": "activated", "name": [], "version": "1"}]}


def _use(state: DeviceState) -> None:
    """What the agent does with a loaded state: `jetkit device status`, rollback, cleanup."""
    state.activations()
    state.previous()
    installed = [("blob", "1.0.0"), ("blob", "1.1.0"), ("other", "2")]
    releases_to_remove(installed, state, keep=1)
    in_flight_releases(dict.fromkeys(installed, 1.0), state, grace_s=60.0)
    json.dumps(state.to_dict())


def test_the_valid_state_is_a_state():
    _use(DeviceState.from_dict(VALID, "state.json"))


@settings(max_examples=fuzz.examples(500))
@given(states)
def test_any_json_is_a_device_state_or_a_jetkit_error(data):
    state = fuzz.user_error_or(lambda: DeviceState.from_dict(data, "state.json"))
    if state is not None:
        assert state.active is None or {"name", "version"} <= set(state.active)
        assert all(isinstance(event, dict) for event in state.history)
        text = json.dumps(state.to_dict())  # compared as text: NaN is not NaN
        assert json.dumps(DeviceState.from_dict(json.loads(text), "again").to_dict()) == text


@settings(max_examples=fuzz.examples(500))
@given(states)
@example(UNHASHABLE_NAME)
def test_the_release_rules_work_on_any_loaded_state(data):
    state = fuzz.user_error_or(lambda: DeviceState.from_dict(data, "state.json"))
    if state is not None:
        _use(state)


state_files = st.one_of(
    st.binary(max_size=200),
    states.map(lambda d: json.dumps(d).encode()),
    st.tuples(st.just(json.dumps(VALID)), st.integers(0, 400), fuzz.tricky_text).map(
        lambda t: (t[0][: t[1]] + t[2] + t[0][t[1] + 1 :]).encode("utf-8", "surrogatepass")
    ),
)


@settings(max_examples=fuzz.examples(200))
@given(state_files)
@example(b"\xff")
@example(b'{"schema": ' + b"1" * 5000 + b"}")
@example(fuzz.deep_nesting("[", "]", 100_000).encode())
def test_any_state_file_loads_or_raises_a_jetkit_error(tmp_path_factory, data):
    layout = Layout(tmp_path_factory.mktemp("root"))
    layout.state.write_bytes(data)
    state = fuzz.user_error_or(lambda: load_state(layout))
    if state is not None:
        _use(state)
