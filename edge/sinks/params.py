"""Sink URIs split into scheme, location and query params, and typed reads of those params: pure
functions, no I/O. Errors name the param and say how to write it; the caller adds the URI."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import unquote

from edge.errors import JetkitError

Number = TypeVar("Number", int, float)
_FLAGS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


@dataclass(frozen=True)
class SinkUri:
    """`scheme://location?name=value&…`; `location` as written (not percent-decoded)."""

    uri: str
    scheme: str
    location: str
    params: Mapping[str, str]


def split_sink_uri(uri: str, allowed: Sequence[str]) -> SinkUri:
    """`uri` split at `://` and `?`, with its params percent-decoded; JetkitError for a param
    not in `allowed`, one given twice, or one without a value."""
    scheme, _, rest = uri.partition("://")
    location, _, query = rest.partition("?")
    params: dict[str, str] = {}
    for piece in filter(None, query.split("&")):
        name, equals, value = piece.partition("=")
        if name not in allowed:
            use = ", ".join(allowed) if allowed else "none"
            raise JetkitError(f"unknown param {name!r} for {scheme}://; params: {use}")
        if not equals:
            raise JetkitError(f"param {name!r} needs a value ({name}=VALUE)")
        if name in params:
            raise JetkitError(f"param {name!r} is given twice")
        params[name] = unquote(value)
    return SinkUri(uri, scheme, location, params)


def number_param(params: Mapping[str, str], name: str, kind: type[Number]) -> Number | None:
    """The param as an int or float (`kind`); None where it is not given."""
    text = params.get(name)
    if text is None:
        return None
    try:
        return kind(text)
    except ValueError:
        noun = "an integer" if kind is int else "a number"
        raise JetkitError(f"param {name!r} must be {noun}, got {text!r}") from None


def flag_param(params: Mapping[str, str], name: str, default: bool = False) -> bool:
    text = params.get(name)
    if text is None:
        return default
    if text.lower() not in _FLAGS:
        raise JetkitError(f"param {name!r} must be 1 or 0, got {text!r}")
    return _FLAGS[text.lower()]
