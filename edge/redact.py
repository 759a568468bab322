"""Credentials masked out of text before it reaches a log, an error, `/status`, a metric label or
a summary file: the one redaction every source, sink and message uses. Pure, no I/O.

Masked wherever they stand in the text (a URI, a GStreamer pipeline, a message quoting either):
- the password of a URI's `user:password@` (up to the authority's last `@`, so a password
  holding an `@` is masked whole);
- the value of a credential param or GStreamer property: `password=`, `passwd=`, `pwd=`,
  `token=`, `access_token=`, `key=`, `api_key=`, `apikey=`, `secret=`, `client_secret=`,
  `user-pw=`, `proxy-pw=` (any case; a quoted value whole).
"""

from __future__ import annotations

import re

MASK = "***"

# The user part stops at the first `:`; the password runs to the authority's last `@` (a path,
# query, fragment, space or quote ends the authority).
_USERINFO_PASSWORD = re.compile(
    r"""(?P<head>\b[a-z][a-z0-9+.-]*://[^/?#@:\s"']*:)[^/?#\s"']*@""", re.IGNORECASE
)
_CREDENTIAL_NAMES = (
    "password", "passwd", "pwd", "token", "access_token", "key", "api_key", "apikey", "secret",
    "client_secret", "user-pw", "proxy-pw",
)  # fmt: skip
# A name counts only as a whole word: `key=` but not `monkey=` or `ssh-key=`.
_CREDENTIAL_VALUE = re.compile(
    r"(?P<head>(?<![\w-])(?:"
    + "|".join(re.escape(name) for name in _CREDENTIAL_NAMES)
    + r""")=)(?P<value>"[^"]*"|'[^']*'|[^&#\s"']+)""",
    re.IGNORECASE,
)


def _mask_value(match: re.Match[str]) -> str:
    value = match.group("value")
    quote = value[0] if value[0] in "\"'" else ""
    return f"{match.group('head')}{quote}{MASK}{quote}"


def redact(text: str) -> str:
    """`text` with every credential it holds replaced by `***`:
    `rtsp://admin:p@ss@cam/s?token=t` → `rtsp://admin:***@cam/s?token=***`."""
    text = _USERINFO_PASSWORD.sub(rf"\g<head>{MASK}@", text)
    return _CREDENTIAL_VALUE.sub(_mask_value, text)
