"""Fleet rollouts through real Ansible (ansible-core's ansible-playbook) to three device roots
behind the same real sshd, the second made to fail: with batches that tolerate one failure the
third host is still flashed; with no tolerance the rollout stops before it. The playbook runs by
itself too, as people who already use Ansible would run it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import assert_user_error, jetkit

from deploy.device import Layout, current_release
from deploy.fleet import PLAYBOOK, FleetSettings
from edge.errors import JetkitError


def _inventory(sshd, tmp_path):
    """device1 and device3 are fine; device2's root lies under a file, so its flash fails."""
    (tmp_path / "not-a-folder").write_text("")
    roots = {
        "device1": tmp_path / "device1",
        "device2": tmp_path / "not-a-folder" / "device2",
        "device3": tmp_path / "device3",
    }
    hosts = {
        name: {
            "ansible_host": "127.0.0.1",
            "ansible_port": sshd.port,
            "ansible_user": sshd.user,
            "jetkit_root": str(root),
            "jetkit_remote": sshd.remote_jetkit,
        }
        for name, root in roots.items()
    }
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(json.dumps({"all": {"hosts": hosts}}))  # YAML is a superset of JSON
    return inventory, roots


def _rollout(bundle, inventory, config, *options):
    return jetkit(
        "flash", bundle, "--inventory", inventory, "--ssh-config", config, "--daemon",
        "http://127.0.0.1:9", "--health-timeout", "10", *options, timeout=300,
    )  # fmt: skip


def _table(stdout):
    rows = {}
    for line in stdout.strip().splitlines()[1:]:
        host, rest = line.split(maxsplit=1)
        rows[host] = rest
    return rows


def test_a_rollout_goes_on_past_a_failure_its_batch_tolerates(sshd, bundles, tmp_path):
    inventory, roots = _inventory(sshd, tmp_path)
    config = sshd.client_config("fleet")
    result = _rollout(
        bundles("1.0.0"), inventory, config, "--canary", "1", "--batch", "2", "--max-fail", "50%",
        "--ssh-option", "ConnectionAttempts=2",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    rows = _table(result.stdout)
    assert rows["device1"].startswith("ok") and "blob-1.0.0" in rows["device1"]
    assert rows["device2"].startswith("failed") and "Not a directory" in rows["device2"]
    assert rows["device3"].startswith("ok")
    assert "canary 1, then batches of 2" in result.stderr
    for name in ("device1", "device3"):
        assert current_release(Layout(roots[name])) == ("blob", "1.0.0")


def test_a_rollout_stops_once_a_batch_fails_more_than_allowed(sshd, bundles, tmp_path):
    inventory, roots = _inventory(sshd, tmp_path)
    config = sshd.client_config("fleet")
    result = _rollout(
        bundles("1.0.0"), inventory, config, "--canary", "1", "--batch", "1", "--max-fail", "0%"
    )
    assert result.returncode == 1, result.stderr
    rows = _table(result.stdout)
    assert rows["device1"].startswith("ok")
    assert rows["device2"].startswith("failed")
    assert rows["device3"] == "not attempted  the rollout stopped"
    assert not roots["device3"].exists()


def test_the_playbook_runs_with_ansible_playbook_directly(sshd, bundles, tmp_path):
    inventory, roots = _inventory(sshd, tmp_path)
    config = sshd.client_config("fleet")
    command = [
        str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory),
        str(PLAYBOOK), "--limit", "device1,device3",
        "-e", f"jetkit_bundle={bundles('1.0.0')}", "-e", f"jetkit_ssh_config={config}",
        "-e", f"jetkit_command={Path(sys.executable).with_name('jetkit')}",
        "-e", "jetkit_daemon=http://127.0.0.1:9",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "failed=0" in result.stdout
    for name in ("device1", "device3"):
        assert current_release(Layout(roots[name])) == ("blob", "1.0.0")


def test_fleet_settings_are_checked_before_anything_runs(bundles, tmp_path):
    assert FleetSettings(canary=2, batch="25%").serial() == [2, "25%"]
    assert FleetSettings(batch="5").serial() == [1, 5]
    for bad, message in [
        ({"canary": 0}, "--canary must be >= 1"),
        ({"batch": "0%"}, "--batch must be more than 0%"),
        ({"batch": "many"}, "expected a host count"),
        ({"max_fail": "10"}, "expected a percentage"),
    ]:
        with pytest.raises(JetkitError, match=message):
            FleetSettings(**bad)
    assert_user_error(
        jetkit("flash", bundles("1.0.0"), "--inventory", tmp_path / "none.yml"),
        "inventory",
        "no such file",
    )
