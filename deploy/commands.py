"""`jetkit flash`, `jetkit rollback`, `jetkit status` (host side) and `jetkit agent` (the device
side they run). Only argparse at import time."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from edge.cli import stderr_log
from edge.errors import JetkitError

DEFAULT_DAEMON_URL = "http://127.0.0.1:8080"


def _add_target_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target", help="ssh://[user@]host[:port][/root] or file:///path (a device root)"
    )
    parser.add_argument(
        "--accept-new-host-key",
        action="store_true",
        help="accept the host key of a device seen for the first time (else it must be known)",
    )
    parser.add_argument("--ssh-config", metavar="FILE", help="an ssh_config file for ssh -F")
    parser.add_argument(
        "--ssh-option", action="append", default=[], metavar="KEY=VALUE", help="more ssh -o"
    )
    parser.add_argument(
        "--remote-jetkit",
        metavar="CMD",
        help="jetkit on the device (default: jetkit; for a fleet, the inventory's jetkit_remote)",
    )
    parser.add_argument(
        "--daemon",
        metavar="URL",
        help=f"the daemon's HTTP address as seen on the device (default {DEFAULT_DAEMON_URL}; "
        "for a fleet, the inventory's jetkit_daemon)",
    )
    parser.add_argument(
        "--health-timeout", type=float, default=60.0, metavar="S", help="seconds to become healthy"
    )


def _transport(args: argparse.Namespace) -> Any:
    from deploy.transport import AgentTransport, SshOptions, parse_target

    if not args.target:
        raise JetkitError("--target is required: ssh://[user@]host[:port][/root] or file:///path")
    ssh = SshOptions(
        accept_new_host_key=args.accept_new_host_key,
        config=args.ssh_config,
        options=tuple(args.ssh_option),
        remote_jetkit=args.remote_jetkit or "jetkit",
    )
    return AgentTransport(parse_target(args.target), ssh, log=stderr_log)


def _flash(args: argparse.Namespace) -> int:
    from deploy.flash import FlashSettings, RolledBack, flash

    settings = FlashSettings(
        precision=args.precision,
        keep=args.keep,
        health_timeout_s=args.health_timeout,
        daemon_url=args.daemon or DEFAULT_DAEMON_URL,
        workspace=args.workspace,
        force=args.force,
    )
    if args.inventory:
        from deploy.fleet import FleetSettings, rollout

        fleet = FleetSettings(canary=args.canary, batch=args.batch, max_fail=args.max_fail)
        return rollout(Path(args.bundle), Path(args.inventory), settings, fleet, args, stderr_log)
    transport = _transport(args)
    try:
        result = flash(Path(args.bundle), transport, settings, stderr_log)
    except RolledBack as exc:
        print(f"jetkit: {exc}", file=sys.stderr)
        _write_result(args.result_json, {"ok": False, "rolled_back": True, "reason": str(exc)})
        return 1
    except JetkitError as exc:
        _write_result(args.result_json, {"ok": False, "rolled_back": False, "reason": str(exc)})
        raise
    _write_result(args.result_json, result.to_dict())
    removed = f"; removed {', '.join(result.removed)}" if result.removed else ""
    checked = (
        "already active, nothing changed"
        if not result.changed
        else "healthy"
        if result.daemon
        else "active (no daemon running to check)"
    )
    print(f"{transport.target.name}: {result.release} {checked}{removed}")
    return 0


def _write_result(path: str | None, result: dict[str, Any]) -> None:
    if path:
        from edge.atomic import write_text_atomic

        write_text_atomic(Path(path), json.dumps(result, indent=2) + "\n")


def _rollback(args: argparse.Namespace) -> int:
    transport = _transport(args)
    result = transport.call(
        "rollback",
        {
            "to": args.to,
            "daemon_url": args.daemon or DEFAULT_DAEMON_URL,
            "health_timeout_s": args.health_timeout,
        },
    )
    if not result.get("ok"):
        print(
            f"jetkit: rollback to {result.get('release')} failed its check and was undone: "
            f"{result.get('reason')}",
            file=sys.stderr,
        )
        return 1
    print(f"{transport.target.name}: {result['release']} active")
    return 0


def format_status(status: dict[str, Any]) -> str:
    active = status["active"]
    daemon = status["daemon"]
    lines = [
        f"device root  {status['root']}",
        "active       "
        + (
            f"{active['name']}-{active['version']} ({active.get('precision')}, {active.get('model')})"
            if active
            else "none"
        ),
        "installed    " + (", ".join(status["installed"]) or "none"),
        "daemon       "
        + (
            f"{'healthy' if daemon['healthy'] else 'UNHEALTHY'} at {daemon['url']}, serving "
            f"{daemon['model']}"
            if daemon["running"]
            else f"not running at {daemon['url']}"
        ),
        "engine cache " + (", ".join(e["key"] for e in status["engines"]) or "empty"),
        "history:",
    ]
    for event in status["history"]:
        release = f"{event.get('name')}-{event.get('version')}" if event.get("name") else ""
        reason = f"  ({event['reason']})" if event.get("reason") else ""
        lines.append(f"  {event['unix_s']:.0f}  {event['event']:<12} {release}{reason}")
    return "\n".join(lines)


def _status(args: argparse.Namespace) -> int:
    status = _transport(args).call("status", {"daemon_url": args.daemon or DEFAULT_DAEMON_URL})
    print(json.dumps(status, indent=2) if args.json else format_status(status))
    return 0


def _agent(args: argparse.Namespace) -> int:
    from deploy.agent import run_op

    try:
        op_args = json.loads(args.args)
    except (ValueError, RecursionError) as exc:
        raise JetkitError(f"--args is not JSON ({exc})") from None
    result = run_op(args.op, Path(args.root).expanduser(), op_args, sys.stdin.buffer)
    print(json.dumps(result))
    return 0


def register_flash(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "flash",
        help="put a bundle on a Jetson (or a fleet) and make it the daemon's model",
        description="Preflight, upload (resumable), verify, engine from the bundle, the device "
        "cache or built on the device, atomic activation, daemon reload and health check, and "
        "rollback on failure. With --inventory, a rollout through Ansible: a canary, then "
        "batches, stopping past --max-fail.",
    )
    parser.add_argument("bundle", help="the bundle, NAME-VERSION.jkb")
    _add_target_arguments(parser)
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "fp16", "int8"),
        default="auto",
        help="auto (default): FP16 where TensorRT is; on ONNX Runtime's CPU the INT8 ONNX where "
        "it passed its accuracy gate, else FP32. The preflight says which and why",
    )
    parser.add_argument("--keep", type=int, default=3, help="releases kept on the device")
    parser.add_argument(
        "--force",
        action="store_true",
        help="a release of this name and version with other files is on the device: install "
        "this one beside it as VERSION+<digest> and activate it (health-checked as always)",
    )
    parser.add_argument("--workspace", default="1G", help="TensorRT build workspace limit")
    parser.add_argument("--result-json", metavar="FILE", help="also write the outcome as JSON")
    parser.add_argument("--inventory", metavar="HOSTS", help="Ansible inventory: flash a fleet")
    parser.add_argument("--canary", type=int, default=1, help="hosts in the first batch")
    parser.add_argument("--batch", default="20%", help="hosts per later batch (N or N%%)")
    parser.add_argument(
        "--max-fail", default="10%", help="stop once more hosts than this fail (N or N%%)"
    )
    parser.set_defaults(handler=_flash)


def register_rollback(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "rollback",
        help="make the previous (or a given) release active again on a device",
        description="Switches `current` back, reloads the daemon and checks its health.",
    )
    _add_target_arguments(parser)
    parser.add_argument("--to", metavar="VERSION", help="the version to return to")
    parser.set_defaults(handler=_rollback)


def register_status(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "status",
        help="what a device runs: active release, history, daemon health, engine cache",
    )
    _add_target_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=_status)


def register_agent(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "agent",
        help="(run by flash/rollback/status on the device) one device operation, JSON out",
    )
    parser.add_argument(
        "op", help="facts, upload-offset, receive, install, prepare, commit, rollback, status"
    )
    parser.add_argument("--root", required=True, help="the device root")
    parser.add_argument("--args", default="{}", help="the operation's arguments as JSON")
    parser.set_defaults(handler=_agent)
