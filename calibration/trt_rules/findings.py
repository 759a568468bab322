"""What a check reports: one finding per broken rule and place, with the rule's source."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Rule:
    """One documented rule: `id` names it in reports (`qdq.int32-bias`), `source` is where
    NVIDIA (or the ONNX spec) states it."""

    id: str
    summary: str
    source: str
    severity: Severity = "error"


@dataclass(frozen=True)
class Finding:
    """`rule` broken at `node` (a node or tensor name; None for the whole model)."""

    rule: Rule
    node: str | None
    message: str

    @property
    def severity(self) -> Severity:
        return self.rule.severity

    def describe(self) -> str:
        where = f" at {self.node}" if self.node else ""
        return (
            f"{self.severity}: [{self.rule.id}]{where}: {self.message} "
            f"({self.rule.summary}; {self.rule.source})"
        )

    def to_dict(self) -> dict[str, str | None]:
        return {
            "severity": self.severity,
            "rule": self.rule.id,
            "node": self.node,
            "message": self.message,
            "summary": self.rule.summary,
            "source": self.rule.source,
        }


def errors(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == "error"]


def summarize(findings: Sequence[Finding], limit: int = 3) -> str:
    """The first `limit` errors (else warnings) on one line, for a `jetkit: error:` message."""
    shown = errors(findings) or list(findings)
    text = "; ".join(
        f"[{f.rule.id}]{f' at {f.node}' if f.node else ''}: {f.message}" for f in shown[:limit]
    )
    more = len(shown) - limit
    return text + (f"; and {more} more (`jetkit check` lists them)" if more > 0 else "")
