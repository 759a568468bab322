"""The one exception type the command line turns into `jetkit: error: …` (exit status 2)."""

from __future__ import annotations


class JetkitError(Exception):
    """A user-facing error: the message names the thing that is wrong and how to fix it."""


class ManifestError(JetkitError):
    """A manifest field is missing or has a bad value; the message names the field and the file."""

    def __init__(self, field: str, problem: str, source: str | None = None) -> None:
        self.field = field
        self.problem = problem
        self.source = source
        where = f" in {source}" if source else ""
        super().__init__(f"manifest field '{field}'{where}: {problem}")
