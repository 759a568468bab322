"""systemd: readiness notifications (`Type=notify`) and the unit file `jetkit service install`
writes.

The unit runs the daemon as a user of its own (`jetkit` unless told otherwise; create it with
`sudo useradd --system --groups video jetkit`), with the file system read-only but for the
folders the config writes in. Every path in it is escaped by systemd's rules, so that a `%`, `$`,
quote or space in a path stays that path, and a newline is refused.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from edge.errors import JetkitError

if TYPE_CHECKING:
    from edge.service.config import ServiceConfig

UNIT_NAME = "jetkit.service"
DEFAULT_USER = "jetkit"
CREATE_USER = f"sudo useradd --system --groups video {DEFAULT_USER}"
MAX_USER_CHARS = 32
_USER = re.compile(r"[a-z_][a-z0-9_-]*\$?")
CACHE_DIR = Path("/var/cache/jetkit")
# Folders systemd creates for a service, owned by its user (systemd.exec(5), "RuntimeDirectory=").
_MANAGED_DIRS = (
    ("StateDirectory", Path("/var/lib")),
    ("LogsDirectory", Path("/var/log")),
    ("CacheDirectory", Path("/var/cache")),
)
# What such a setting takes without quoting; anything else goes to ReadWritePaths=.
_PLAIN = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*")


def notify(state: str, socket_path: str | None = None) -> bool:
    """Send `state` (e.g. `READY=1`, `STOPPING=1`) to systemd's notify socket; False where there
    is none (not started by systemd). An address starting with `@` is an abstract socket."""
    address = socket_path if socket_path is not None else os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(state.encode(), address)
    return True


def check_user(name: str) -> str:
    """`name` if it is a POSIX-style user name (what `useradd` takes; a trailing `$` marks a
    machine account), else JetkitError: it goes into the unit verbatim, so a newline in it
    would add directives."""
    if len(name) > MAX_USER_CHARS or not _USER.fullmatch(name):
        raise JetkitError(
            f"--user {name!r} is not a user name: lower-case letters, digits, _ and -, starting "
            f"with a letter or _, at most {MAX_USER_CHARS} characters (e.g. {DEFAULT_USER})"
        )
    return name


def _one_line(text: str, what: str) -> str:
    if any(ord(c) < 32 or c == "\x7f" for c in text):
        raise JetkitError(
            f"{what} {text!r} holds a control character (a newline?), which a unit file "
            "cannot carry; rename it"
        )
    return text


def _quoted(text: str) -> str:
    """Inside double quotes systemd takes `\\` escapes (systemd.syntax(7), "Quoting"), so `\\`
    and `"` are escaped; `%` starts a specifier in every setting used here (systemd.unit(5),
    "Specifiers")."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'"{escaped}"'


def exec_executable(path: str) -> str:
    """The executable of `ExecStart=`. systemd refuses one that holds a quote or backslash
    ("Executable name contains special characters"), and expands no `$VARIABLE` in it."""
    _one_line(path, "the jetkit executable")
    if any(c in path for c in "\"'\\"):
        raise JetkitError(
            f"systemd will not run an executable whose path holds a quote or backslash "
            f"({path!r}); install jetkit under another path"
        )
    return _quoted(path)


def exec_argument(text: str, what: str) -> str:
    """A word after the executable in `ExecStart=`: there systemd also expands `$VARIABLE`,
    and `$$` is a literal `$` (systemd.service(5), "Command lines")."""
    return _quoted(_one_line(text, what)).replace("$", "$$")


def _sink_file(uri: str) -> Path | None:
    """The file a sink writes, for the sinks that write files."""
    from edge.sinks.video_uri import parse_video_uri

    scheme, _, rest = uri.partition("://")
    if scheme == "jsonl" and rest not in ("", "-"):
        return Path(rest)
    if scheme == "video":
        try:
            return parse_video_uri(uri).path
        except JetkitError as exc:
            raise JetkitError(f"sink {uri!r}: {exc}") from None
    return None


def writable_dirs(config: ServiceConfig) -> list[Path]:
    """The folders the daemon writes in: those of its file sinks and of its summary, each once,
    in the config's order. Pure: nothing is looked up on disk. The model is only read: deploy
    switches releases from outside the unit, so its folder stays read-only."""
    dirs: list[Path] = []
    for file in [_sink_file(uri) for uri in config.sinks] + [config.summary]:
        if file is None:
            continue
        if not file.is_absolute():
            raise JetkitError(
                f"the daemon writes {file}, a relative path: a service runs in /, so give it "
                "as an absolute path in the config"
            )
        folder = Path(os.path.normpath(file.parent))
        if folder not in dirs:
            dirs.append(folder)
    return dirs


def writable_settings(dirs: list[Path]) -> list[str]:
    """Folders under /var/lib, /var/log and /var/cache become `StateDirectory=` and the like:
    systemd creates them, owned by the service's user, and makes them writable. Any other
    becomes `ReadWritePaths=`; it must exist and be writable by the user (`-`: a missing one
    does not stop the start, the sink that needs it reports it)."""
    named: dict[str, list[str]] = {setting: [] for setting, _ in _MANAGED_DIRS}
    paths: list[str] = []
    for folder in dict.fromkeys(dirs):
        for setting, base in _MANAGED_DIRS:
            inside = folder.relative_to(base).as_posix() if folder.is_relative_to(base) else ""
            if inside not in ("", ".") and _PLAIN.fullmatch(inside):
                named[setting].append(inside)
                break
        else:
            paths.append(_quoted("-" + _one_line(str(folder), "the folder")))
    lines = [f"{setting}={' '.join(names)}" for setting, names in named.items() if names]
    return lines + ([f"ReadWritePaths={' '.join(paths)}"] if paths else [])


def _uses_argus(config: ServiceConfig) -> bool:
    return any(
        s.uri.startswith("csi://") or (s.uri.startswith("gst://") and "nvarguscamerasrc" in s.uri)
        for s in config.streams
    )


def unit_text(
    executable: str, config_path: Path, config: ServiceConfig, user: str = DEFAULT_USER
) -> str:
    """The unit: `Type=notify` (ready once the streams run), SIGHUP reloads the model, restarts
    after a failure with a pause, and stops within the drain time. Runs as `user` with the
    file system read-only but for the folders `config` writes in; cameras and the GPU stay
    reachable. Pure; JetkitError for a user or path a unit cannot carry."""
    arguments = ["serve", "--config", str(config_path)]
    command = " ".join(
        [exec_executable(executable)] + [exec_argument(a, "the config path") for a in arguments]
    )
    lines = [
        "[Unit]",
        "Description=jetkit streaming detection daemon",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        f"ExecStart={command}",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "RestartSec=5",
        "TimeoutStopSec=30",
        f"User={check_user(user)}",
        "# Cameras (/dev/video*) and the GPU (/dev/nvhost-*, /dev/nvmap) belong to the video",
        "# group; PrivateDevices= would hide them, so it is not set.",
        "SupplementaryGroups=video",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "# Read-only rather than hidden: a virtualenv, config or model under /home still works.",
        "ProtectHome=read-only",
    ]
    if _uses_argus(config):
        lines.append(
            "# No PrivateTmp=: nvarguscamerasrc reaches nvargus-daemon by /tmp/argus_socket."
        )
    else:
        lines.append("PrivateTmp=yes")
    lines += [
        "# GStreamer's plugin registry and other caches: the user's home is read-only.",
        f"Environment=XDG_CACHE_HOME={CACHE_DIR}",
        *writable_settings([CACHE_DIR, *writable_dirs(config)]),
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ]
    return "\n".join(lines)
