"""Hypothesis strategies shared by the parser fuzzers (`tests/**/test_*_fuzz.py`).

Every parser of outside input keeps one contract: it returns a valid value or raises the kit's
user error (`JetkitError` or a subclass), never another exception. The strategies here make
both hostile data (JSON-like values with NaN, huge integers and odd keys; URI-ish text with
non-ASCII digits and reserved characters) and small mutations of a valid document, so that the
fuzzers get past the first check and reach the deep code.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import event
from hypothesis import strategies as st

from edge.errors import JetkitError

T = TypeVar("T")


def examples(count: int) -> int:
    """A fuzzer's examples per run: `count` (sized so that all fuzzers together add under a
    minute to `make test` on 2 cores) times JETKIT_FUZZ_SCALE (e.g. 20 for a long hunt)."""
    return max(1, round(count * float(os.environ.get("JETKIT_FUZZ_SCALE", "1"))))


# Integers that break naive code: beyond 64 bits, beyond float range (float() overflows), and
# (YAML's hex and base-60 integers can be) beyond the 4300 digits repr() converts (ValueError).
# (Made by a map: a strategy's repr shows a sampled value in full.)
HUGE_INTS = st.sampled_from([2**64, -(2**63) - 1]) | st.sampled_from([1, -1]).map(
    lambda sign: sign * 10**400
)
HUGER_INTS = st.sampled_from([1, -1]).map(lambda sign: sign * 16**4000)
SPECIAL_FLOATS = st.sampled_from([float("nan"), float("inf"), float("-inf"), -0.0, 1e308, 5e-324])
# Characters that mean something to the parsers, and look-alikes that fool str.isdigit().
TRICKY_CHARS = "://?&=@%#[]!.,-_+x \t\n\x00²³¹٣٤０１\u00a0é€😀\\\"'{}"

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    HUGE_INTS,
    st.floats(allow_nan=True, allow_infinity=True),
    SPECIAL_FLOATS,
    st.text(max_size=20),
    st.text(alphabet=TRICKY_CHARS, max_size=12),
)

# What json.loads can give: dicts with string keys, lists, and the scalars (JSON has NaN and
# Infinity too, and integers of any length up to Python's limit).
json_values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=10), children, max_size=4),
    ),
    max_leaves=12,
)

# What yaml.safe_load can give beyond JSON: keys of any scalar type (`1: x`, `null: x`, `true: x`)
# mixed in one mapping.
hashable_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)
)
yaml_values: st.SearchStrategy[Any] = st.recursive(
    scalars | HUGER_INTS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(hashable_scalars | HUGER_INTS, children, max_size=4),
    ),
    max_leaves=12,
)

# "111…1": too many digits for int(); made by a map so that no strategy repr shows them all.
LONG_DIGITS = st.just(5000).map(lambda n: "1" * n)

# Text that is nearly a number, a list or a URI part more often than random text would be.
tricky_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=TRICKY_CHARS + "0123456789abcAZ", max_size=30),
    st.integers().map(str),
    st.floats().map(repr),
    st.sampled_from(["", " ", "0", "-1", "1e400", "nan", "inf", "0x10", "²", "٣"]),
    LONG_DIGITS,
)


# A password as it may stand in a URI unencoded (RFC 3986 unreserved characters).
passwords = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~",
    min_size=4,
    max_size=12,
)


def any_of(values: list[T]) -> st.SearchStrategy[T]:
    """`st.sampled_from(values)`, but its repr (in statistics and failure reports) names no
    value: some are thousands of characters long."""
    return st.integers(0, len(values) - 1).map(values.__getitem__)


def deep_nesting(open_: str, close: str, depth: int = 5000) -> str:
    """`[[[…]]]`: deep enough to exhaust a recursive parser's stack."""
    return open_ * depth + close * depth


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside nested dicts and lists (the root is `()`)."""
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for k, child in enumerate(value):
            found += _paths(child, (*prefix, k))
    return found


@st.composite
def mutated(
    draw: st.DrawFn,
    valid: Any,
    values: st.SearchStrategy[Any] | None = None,
    keys: st.SearchStrategy[Any] | None = None,
    max_changes: int = 2,
) -> Any:
    """`valid` (a nested dict/list document) with 1..max_changes changes, each at a random path:
    the value there replaced by one from `values` (default: a JSON scalar or value, the scalars
    twice as often), its key dropped, or an unknown key added."""
    values = values if values is not None else st.one_of(scalars, scalars, json_values)
    document = copy.deepcopy(valid)
    for _ in range(draw(st.integers(1, max_changes))):
        paths = _paths(document)
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "replace", "drop", "add"]))
        if not path:
            if action == "replace":
                document = draw(values)
            elif action == "add" and isinstance(document, dict):
                document[draw(keys if keys is not None else st.text(max_size=8))] = draw(values)
            continue
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        if action == "replace":
            parent[last] = draw(values)
        elif action == "drop":
            del parent[last]
        elif isinstance(parent[last], dict):
            key = draw(keys if keys is not None else st.text(max_size=8))
            parent[last][key] = draw(values)
        elif isinstance(parent[last], list):
            parent[last].append(draw(values))
        else:
            parent[last] = draw(values)
    return document


def query_params(
    names: list[str], values: st.SearchStrategy[str] = tricky_text
) -> st.SearchStrategy[str]:
    """`a=1&b=x`: params named from `names` (the parser's own, mostly) or anything, with tricky
    values; sometimes a piece without `=`, or one given twice."""
    name = st.one_of(st.sampled_from(names), st.text(alphabet=TRICKY_CHARS + "abc", max_size=6))
    piece = st.one_of(
        st.tuples(name, values).map(lambda nv: f"{nv[0]}={nv[1]}"),
        name,
    )
    return st.lists(piece, max_size=5).map("&".join)


def user_error_or(call: Callable[[], T], error: type[JetkitError] = JetkitError) -> T | None:
    """The value `call` returns, or None where it raised `error` (the kit's user error, or one
    kind of it): any other exception escapes and fails the test."""
    try:
        value = call()
    except error:
        event("JetkitError")
        return None
    event("a valid value")
    return value
