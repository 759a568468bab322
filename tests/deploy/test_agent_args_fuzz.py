"""Fuzzing the device agent's arguments (`jetkit agent OP --args JSON`, which reach the device
from whoever can run a command there): any JSON is the checked arguments of the operation, or a
JetkitError naming the argument, never a traceback; and no checked name or plan path leaves the
device root."""

from __future__ import annotations

from pathlib import PurePosixPath

import fuzz
from hypothesis import example, given, settings
from hypothesis import strategies as st

from deploy.agent_args import SPECS, parse_agent_args

PLAN = {
    "precision": "fp16",
    "runtime": "tensorrt",
    "model": "models/m.onnx",
    "key": {"name": "0123456789abcdef-fp16-b1-trt10.3.0-sm87-gpu"},
    "prebuilt": "engines/m.engine",
    "cached": False,
    "calib_cache": None,
}
VALID = {
    "facts": {"daemon_url": "http://127.0.0.1:8080"},
    "upload-offset": {"release": "det-1.0.0-0123456789abcdef"},
    "receive": {"release": "det-1.0.0-0123456789abcdef", "offset": 0},
    "install": {"release": "det-1.0.0-0123456789abcdef", "as_version": "1.0.0+abcdef012345"},
    "prepare": {"name": "det", "version": "1.0.0", "plan": PLAN, "workspace": "1G"},
    "commit": {
        "name": "det",
        "version": "1.0.0",
        "precision": "fp16",
        "keep": 3,
        "health_timeout_s": 60,
        "daemon_url": "http://127.0.0.1:8080",
    },
    "rollback": {"to": "0.9.0", "health_timeout_s": 60},
    "status": {},
}
assert set(VALID) == set(SPECS)
operations = st.sampled_from(sorted(SPECS))


def _stays_inside(path: str) -> bool:
    parts = PurePosixPath(path).parts
    return not path.startswith("/") and ".." not in parts and "\x00" not in path


@settings(max_examples=fuzz.examples(1500))
@example(("rollback", {"health_timeout_s": 10**400}))  # found: OverflowError in isfinite
@given(
    operations.flatmap(lambda op: st.tuples(st.just(op), fuzz.mutated(VALID[op], max_changes=3)))
)
def test_any_change_to_valid_arguments_is_checked_or_refused(case):
    op, args = case
    parsed = fuzz.user_error_or(lambda: parse_agent_args(op, args))
    if parsed is None:
        return
    for key in ("release", "name", "version", "to", "as_version"):
        if parsed.get(key) is not None:
            assert "/" not in parsed[key] and parsed[key] not in (".", "..")
    plan = parsed.get("plan")
    if plan is not None:
        for path in (plan.model, plan.prebuilt, plan.calib_cache):
            assert path is None or _stays_inside(path)
        assert plan.key is None or "/" not in plan.key["name"]


@settings(max_examples=fuzz.examples(500))
@given(st.text(max_size=20) | operations, fuzz.json_values)
def test_any_json_is_the_arguments_of_an_operation_or_a_user_error(op, args):
    fuzz.user_error_or(lambda: parse_agent_args(op, args))
