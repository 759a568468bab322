"""systemd: readiness notifications (`Type=notify`) and the unit file `jetkit service install`
writes."""

from __future__ import annotations

import os
import shlex
import socket
from pathlib import Path

UNIT_NAME = "jetkit.service"


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


def unit_text(executable: str, config_path: Path, user: str | None = None) -> str:
    """The unit: `Type=notify` (ready once the streams run), SIGHUP reloads the model, restarts
    after a failure with a pause, and stops within the drain time."""
    command = shlex.join([executable, "serve", "--config", str(config_path)])
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
    ]
    if user:
        lines.append(f"User={user}")
    lines += ["", "[Install]", "WantedBy=multi-user.target", ""]
    return "\n".join(lines)
