"""`jetkit flash BUNDLE --inventory hosts.yml`: a fleet rollout through Ansible (the playbook in
`deploy/ansible/`, which people who use Ansible can also run themselves). A canary batch, then
rolling batches (Ansible's `serial`), the play stopping once more than `--max-fail` of a batch
failed (Ansible's `max_fail_percentage`, which counts per batch). Each host runs the single-device
flash from this machine over SSH and writes its outcome; the table at the end has a row per host,
`not attempted` for those the rollout stopped before.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.flash import FlashSettings
from edge.errors import JetkitError

Log = Callable[[str], None]
PLAYBOOK = Path(__file__).parent / "ansible" / "flash.yml"


def _percent(text: str, option: str) -> int:
    match = re.fullmatch(r"(\d+)%", text.strip())
    if not match or int(match.group(1)) > 100:
        raise JetkitError(f"{option} {text}: expected a percentage such as 10%")
    return int(match.group(1))


@dataclass(frozen=True)
class FleetSettings:
    """`canary`: hosts in the first batch; `batch`: hosts per later batch, N or N%; `max_fail`:
    the share of a batch that may fail before the rollout stops, N%."""

    canary: int = 1
    batch: str = "20%"
    max_fail: str = "10%"

    def __post_init__(self) -> None:
        if self.canary < 1:
            raise JetkitError(f"--canary must be >= 1, got {self.canary}")
        if self.batch.endswith("%"):
            if _percent(self.batch, "--batch") == 0:
                raise JetkitError("--batch must be more than 0%")
        elif not self.batch.isdigit() or int(self.batch) < 1:
            raise JetkitError(f"--batch {self.batch}: expected a host count (5) or a share (20%)")
        _percent(self.max_fail, "--max-fail")

    def serial(self) -> list[int | str]:
        """Ansible's `serial`: the canary batch, then batches of `batch` (repeated to the end)."""
        return [self.canary, self.batch if self.batch.endswith("%") else int(self.batch)]

    @property
    def max_fail_percentage(self) -> int:
        return _percent(self.max_fail, "--max-fail")


def playbook_vars(
    bundle: Path, settings: FlashSettings, fleet: FleetSettings, args: argparse.Namespace,
    results_dir: Path,
) -> dict[str, Any]:  # fmt: skip
    """The playbook's extra vars for this rollout. The daemon address and the device's jetkit
    only when given on the command line: otherwise each host's inventory value (or the role's
    default) holds, as extra vars would override it. Pure."""
    per_host = {"jetkit_daemon": args.daemon, "jetkit_remote": args.remote_jetkit}
    return {
        **{key: value for key, value in per_host.items() if value is not None},
        "jetkit_bundle": str(bundle.resolve()),
        "jetkit_serial": fleet.serial(),
        "jetkit_max_fail_percentage": fleet.max_fail_percentage,
        "jetkit_precision": settings.precision,
        "jetkit_keep": settings.keep,
        "jetkit_health_timeout": settings.health_timeout_s,
        "jetkit_workspace": settings.workspace,
        "jetkit_force": settings.force,
        "jetkit_command": str(Path(sys.executable).with_name("jetkit")),
        "jetkit_ssh_config": str(Path(args.ssh_config).resolve()) if args.ssh_config else "",
        "jetkit_ssh_options": list(args.ssh_option),
        "jetkit_accept_new_host_key": bool(args.accept_new_host_key),
        "jetkit_results_dir": str(results_dir),
    }


def list_hosts(ansible_playbook: str, inventory: Path, env: dict[str, str]) -> list[str]:
    """The inventory's hosts the playbook targets, in its order (`--list-hosts`)."""
    result = subprocess.run(
        [ansible_playbook, "-i", str(inventory), str(PLAYBOOK), "--list-hosts"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        last = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:]
        raise JetkitError(f"inventory {inventory}: Ansible cannot read it ({' '.join(last)})")
    hosts, listing = [], False
    for line in result.stdout.splitlines():
        if re.match(r"\s+hosts \(\d+\):", line):
            listing = True
        elif listing and line.strip():
            hosts.append(line.strip())
    if not hosts:
        raise JetkitError(f"inventory {inventory} lists no hosts")
    return hosts


def host_rows(hosts: list[str], results_dir: Path) -> list[dict[str, Any]]:
    """One row per host from the outcome files the flashes wrote. Pure but for reading them."""
    rows = []
    for host in hosts:
        path = results_dir / f"{host}.json"
        if not path.is_file():
            rows.append({"host": host, "result": "not attempted", "detail": "the rollout stopped"})
            continue
        outcome = json.loads(path.read_text())
        if outcome.get("ok"):
            rows.append({"host": host, "result": "ok", "detail": outcome.get("release", "")})
        else:
            result = "rolled back" if outcome.get("rolled_back") else "failed"
            rows.append({"host": host, "result": result, "detail": outcome.get("reason", "")})
    return rows


def format_rows(rows: list[dict[str, Any]]) -> str:
    width = max(len("host"), *(len(r["host"]) for r in rows))
    lines = [f"{'host':<{width}}  {'result':<13}  detail"]
    lines += [f"{r['host']:<{width}}  {r['result']:<13}  {r['detail']}" for r in rows]
    return "\n".join(lines)


def rollout(
    bundle: Path,
    inventory: Path,
    settings: FlashSettings,
    fleet: FleetSettings,
    args: argparse.Namespace,
    log: Log,
) -> int:
    """Run the playbook; 0 when every host flashed, else 1 (after the table)."""
    from deploy.bundle import verify_bundle

    if args.target:
        raise JetkitError("give --target (one device) or --inventory (a fleet), not both")
    if not inventory.is_file():
        raise JetkitError(f"inventory {inventory}: no such file")
    ansible_playbook = shutil.which("ansible-playbook") or str(
        Path(sys.executable).with_name("ansible-playbook")
    )
    if not Path(ansible_playbook).exists():
        raise JetkitError("ansible-playbook is not installed; pip install 'jetkit[deploy]'")
    index = verify_bundle(bundle)  # once here, not once per host
    with tempfile.TemporaryDirectory(prefix="jetkit-rollout-") as work:
        env = {
            **os.environ,
            "ANSIBLE_LOCALHOST_WARNING": "false",
            "ANSIBLE_HOME": str(Path(work) / "ansible"),
            "ANSIBLE_RETRY_FILES_ENABLED": "false",
        }
        hosts = list_hosts(ansible_playbook, inventory, env)
        results_dir = Path(work) / "results"
        results_dir.mkdir()
        extra = Path(work) / "vars.json"
        extra.write_text(json.dumps(playbook_vars(bundle, settings, fleet, args, results_dir)))
        log(
            f"rolling {index.release} out to {len(hosts)} host(s): canary {fleet.canary}, then "
            f"batches of {fleet.batch}, stopping when more than {fleet.max_fail} of a batch fails"
        )
        command = [ansible_playbook, "-i", str(inventory), str(PLAYBOOK), "-e", f"@{extra}"]
        played = subprocess.run(command, env=env, stdout=sys.stderr, check=False)
        rows = host_rows(hosts, results_dir)
    print(format_rows(rows))
    if played.returncode not in (0, 2, 4):  # 2: hosts failed, 4: unreachable
        raise JetkitError(f"ansible-playbook exited {played.returncode}; its output is above")
    return 0 if all(r["result"] == "ok" for r in rows) else 1
