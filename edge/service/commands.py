"""`jetkit serve --config FILE` (the daemon) and `jetkit service install` (its systemd unit).

Signals: SIGTERM and SIGINT stop capture, drain what is in flight, flush the sinks and exit 0;
SIGHUP reloads the model and the config's analytics. Only argparse at import time.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

from edge.cli import stderr_log

# What a stop may take: the frames in flight finish, the sinks flush (systemd waits 30 s).
DRAIN_TIMEOUT_S = 20.0


def _serve(args: argparse.Namespace) -> int:
    from edge.atomic import write_text_atomic
    from edge.service.config import TOKEN_ENV, load_config
    from edge.service.daemon import Service
    from edge.service.http import serve_http
    from edge.service.systemd import notify

    config = load_config(args.config)
    service = Service(config, config_path=Path(args.config))
    stop, reload = threading.Event(), threading.Event()
    previous = {
        signum: signal.signal(signum, handler)
        for signum, handler in (
            (signal.SIGTERM, lambda *_: stop.set()),
            (signal.SIGINT, lambda *_: stop.set()),
            (signal.SIGHUP, lambda *_: reload.set()),
        )
    }
    try:
        service.start()
        try:
            server = serve_http(config.http, service)
        except BaseException:
            service.stop()
            raise
        host, port = server.server_address[:2]
        if config.http.token is None and not config.http.loopback:
            stderr_log(
                f"warning: HTTP listens on {config.http.host}, beyond this machine, without a "
                f"token: POST /reload is refused until http.token (or {TOKEN_ENV}) is set"
            )
        address = f"[{host}]" if ":" in host else host
        stderr_log(f"HTTP on http://{address}:{port} (/healthz, /metrics, /status, POST /reload)")
        notify("READY=1")
        _loop(service, stop, reload)
        notify("STOPPING=1")
        stderr_log("stopping: finishing the frames in flight")
        drained = service.stop(DRAIN_TIMEOUT_S)
        server.close()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if config.summary is not None:
        summary = service.metrics.summary()
        write_text_atomic(config.summary, json.dumps(summary, indent=2) + "\n")
    stderr_log(service.metrics.format_table())
    if not drained:
        stderr_log(f"frames still in flight after {DRAIN_TIMEOUT_S:.0f} s were abandoned")
    return 0


def _loop(service: Any, stop: threading.Event, reload: threading.Event) -> None:
    """Until SIGTERM/SIGINT: reload on SIGHUP, check the model pointer, log every interval.
    Signal handlers only set flags: the work happens here, outside the handler."""
    config = service.config
    next_watch = next_log = time.monotonic()
    while not stop.wait(0.1):
        now = time.monotonic()
        if reload.is_set():
            reload.clear()
            service.reload("SIGHUP")
        if now >= next_watch:
            service.check_model_pointer()
            next_watch = now + config.watch_model_s
        if now >= next_log + config.log_interval_s:
            for line in service.metrics.log_lines():
                stderr_log(line)
            next_log = now


def _install(args: argparse.Namespace) -> int:
    import shutil
    import sys

    from edge.atomic import write_text_atomic
    from edge.errors import JetkitError
    from edge.service.config import load_config
    from edge.service.systemd import CREATE_USER, UNIT_NAME, unit_text

    config_path = Path(args.config).resolve()
    config = load_config(config_path)  # a broken config fails here, not at the next boot
    executable = shutil.which("jetkit") or str(Path(sys.executable).with_name("jetkit"))
    text = unit_text(executable, config_path, config, args.user)
    if not _user_exists(args.user):
        missing = (
            f"user {args.user!r} does not exist here; create it ({CREATE_USER}) or pass --user"
        )
        if args.enable:  # the unit would fail at once
            raise JetkitError(missing)
        stderr_log(f"warning: {missing}")
    unit_path = Path(args.unit_dir) / UNIT_NAME
    write_text_atomic(unit_path, text)
    print(unit_path)
    if args.enable:
        import subprocess

        systemctl = shutil.which("systemctl")
        if systemctl is None:
            raise JetkitError("systemctl is not here; enable the unit by hand, or drop --enable")
        for command in (["daemon-reload"], ["enable", "--now", UNIT_NAME]):
            subprocess.run([systemctl, *command], check=True)
    return 0


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def register_serve(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="the streaming daemon (config file, HTTP health/metrics, reload without stopping)",
        description="Runs the streams of a YAML config through the model with HTTP /healthz, "
        "/metrics, /status and POST /reload on the configured address (127.0.0.1:8080 unless "
        "told otherwise). SIGHUP, POST /reload or a new model behind the model pointer reload "
        "the model without stopping the streams; SIGTERM drains and exits 0.",
    )
    parser.add_argument("--config", required=True, help="the daemon's YAML configuration")
    parser.set_defaults(handler=_serve)


def register_service(subparsers: Any) -> None:
    parser = subparsers.add_parser("service", help="install the daemon as a systemd service")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    install = actions.add_parser("install", help="write jetkit.service (Type=notify)")
    install.add_argument("--config", required=True, help="the daemon's YAML configuration")
    install.add_argument(
        "--unit-dir", default="/etc/systemd/system", help="where the unit goes (default: system)"
    )
    install.add_argument(
        "--user",
        default="jetkit",
        help="run the daemon as this user (default: jetkit, which must exist: sudo useradd "
        "--system --groups video jetkit); --user root runs it as root",
    )
    install.add_argument(
        "--enable", action="store_true", help="also systemctl daemon-reload and enable --now"
    )
    install.set_defaults(handler=_install)
