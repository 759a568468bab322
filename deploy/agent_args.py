"""The arguments of `jetkit agent OP --args JSON`, checked before the operation touches the device.

They come from the host over SSH, so they are input like any other: names become folder names,
numbers become timeouts and offsets. Each operation's keys are declared here with their checks;
a missing, unknown-typed or unsafe value is a JetkitError naming the key. Pure.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from deploy.bundle_index import check_release_name
from deploy.plan import PRECISIONS, ModelPlan
from edge.errors import JetkitError

DEFAULT_DAEMON_URL = "http://127.0.0.1:8080"
MAX_HEALTH_TIMEOUT_S = 3600.0
# An upload's staging name: the release and 16 hex digits of its index (deploy.flash.upload_name).
_UPLOAD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,200}-[0-9a-f]{16}")


def _name(value: object, key: str) -> str:
    if not isinstance(value, str):
        raise JetkitError(f"expected a string, got {type(value).__name__}")
    check_release_name(value, key)
    return value


def _upload(value: object, key: str) -> str:
    if not isinstance(value, str) or not _UPLOAD_NAME.fullmatch(value):
        raise JetkitError(f"expected an upload name NAME-VERSION-<16 hex digits>, got {value!r}")
    return value


def _count(low: int) -> Callable[[object, str], int]:
    def check(value: object, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise JetkitError(f"expected an integer >= {low}, got {value!r}")
        return value

    return check


def _seconds(value: object, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise JetkitError(f"expected a number of seconds, got {value!r}")
    if not (0 < value <= MAX_HEALTH_TIMEOUT_S and math.isfinite(value)):  # no float(10**400)
        raise JetkitError(f"expected seconds in (0, {MAX_HEALTH_TIMEOUT_S:g}], got {value!r}")
    return float(value)


def _url(value: object, key: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"https?://[^\s/?#]+", value):
        raise JetkitError(f"expected http://HOST:PORT, got {value!r}")
    return value


def _precision(value: object, key: str) -> str:
    if value not in PRECISIONS:
        raise JetkitError(f"expected one of {', '.join(PRECISIONS)}, got {value!r}")
    return str(value)


def _workspace(value: object, key: str) -> str:
    from calibration.engine import parse_size_bytes

    if not isinstance(value, str):
        raise JetkitError(f"expected a size such as 1G, got {value!r}")
    parse_size_bytes(value)
    return value


def _plan(value: object, key: str) -> ModelPlan:
    return ModelPlan.from_dict(value)


def _optional(check: Callable[[object, str], Any]) -> Callable[[object, str], Any]:
    def optional(value: object, key: str) -> Any:
        return None if value is None else check(value, key)

    return optional


# Per operation: key → (check, default). No default (`...`): the key is required.
_DAEMON = {"daemon_url": (_url, DEFAULT_DAEMON_URL)}
SPECS: dict[str, dict[str, tuple[Callable[[object, str], Any], Any]]] = {
    "facts": _DAEMON,
    "upload-offset": {"release": (_upload, ...)},
    "receive": {"release": (_upload, ...), "offset": (_count(0), ...)},
    "install": {"release": (_upload, ...), "as_version": (_optional(_name), None)},
    "prepare": {
        "name": (_name, ...),
        "version": (_name, ...),
        "plan": (_plan, ...),
        "workspace": (_workspace, "1G"),
    },
    "commit": {
        "name": (_name, ...),
        "version": (_name, ...),
        "precision": (_precision, ...),
        "health_timeout_s": (_seconds, ...),
        "keep": (_count(1), ...),
        **_DAEMON,
    },
    "rollback": {
        "to": (_optional(_name), None),
        "health_timeout_s": (_seconds, ...),
        **_DAEMON,
    },
    "status": _DAEMON,
}


def parse_agent_args(op: str, args: object) -> dict[str, Any]:
    """`args` of operation `op`, checked, with defaults filled in; keys it does not know are
    ignored (a newer host may send more)."""
    if op not in SPECS:
        raise JetkitError(f"unknown agent operation {op!r}; update jetkit on the device")
    if not isinstance(args, dict):
        raise JetkitError(f"agent {op}: --args must be a JSON object")
    parsed = {}
    for key, (check, default) in SPECS[op].items():
        if key not in args:
            if default is ...:
                raise JetkitError(
                    f"agent {op}: argument {key!r} is missing; use the same jetkit version on "
                    "the host and the device"
                )
            parsed[key] = default
            continue
        try:
            parsed[key] = check(args[key], key)
        except JetkitError as exc:
            raise JetkitError(f"agent {op}: argument {key!r}: {exc}") from None
    return parsed
