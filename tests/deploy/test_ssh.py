"""Flashing over SSH through the system OpenSSH client to a real sshd on 127.0.0.1: the bundle
streamed through ssh to the device agent, host keys verified (an unknown key refused unless
--accept-new-host-key), and an unknown host key, a refused key, a closed port or a device
without jetkit each reported as one line naming the host and the fix, before any change."""

from __future__ import annotations

import pytest
from cli_helpers import assert_user_error, jetkit
from net_helpers import free_port

from deploy.device import Layout, current_release
from deploy.transport import SshOptions, Target, explain_ssh_failure, parse_target, ssh_command
from edge.errors import JetkitError


def _over_ssh(verb, sshd, root, config, *extra):
    return jetkit(
        verb, *extra, "--target", sshd.target(root), "--ssh-config", config,
        "--remote-jetkit", sshd.remote_jetkit, "--daemon", f"http://127.0.0.1:{free_port()}",
    )  # fmt: skip


def test_targets_parse_into_user_host_port_and_root():
    assert parse_target("ssh://nvidia@orin.local:2222/opt/jetkit") == Target(
        "ssh", "/opt/jetkit", "orin.local", "nvidia", 2222
    )
    assert parse_target("ssh://orin") == Target("ssh", "jetkit", "orin", None, None)
    assert parse_target("file:///mnt/sd/jetkit") == Target("file", "/mnt/sd/jetkit")
    for bad, message in [
        ("http://orin", "expected ssh://"),
        ("ssh://orin:99999/x", "port must be a number"),
        ("ssh://u:secret@orin/x", "no passwords"),
        ("file://relative/path", "file:///absolute/path"),
    ]:
        with pytest.raises(JetkitError, match=message):
            parse_target(bad)


def test_the_ssh_command_verifies_host_keys_and_quotes_the_remote_command():
    from deploy.transport import SshOptions

    target = parse_target("ssh://nvidia@orin:2222/opt/my jetkit")
    command = ssh_command(target, SshOptions(), ["jetkit", "agent", "facts", "--root", target.root])
    assert command[:1] == ["ssh"] and "StrictHostKeyChecking=yes" in command
    assert "BatchMode=yes" in command and command[command.index("-p") + 1] == "2222"
    assert command[-3:] == ["--", "nvidia@orin", "jetkit agent facts --root '/opt/my jetkit'"]
    accepting = ssh_command(target, SshOptions(accept_new_host_key=True), ["true"])
    assert "StrictHostKeyChecking=accept-new" in accepting


def test_ssh_failures_become_one_line_with_the_fix():
    target = parse_target("ssh://orin/x")
    cases = {
        "Host key verification failed.": "--accept-new-host-key",
        "@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @": "ssh-keygen -R orin",
        "nvidia@orin: Permission denied (publickey).": "authorized_keys",
        "ssh: connect to host orin port 22: Connection refused": "unreachable",
        "bash: line 1: jetkit: command not found": "--remote-jetkit",
    }
    for stderr, fix in cases.items():
        assert fix in explain_ssh_failure(target, stderr, "jetkit")


def test_flash_and_status_over_ssh(sshd, bundles, tmp_path):
    root = tmp_path / "device"
    config = sshd.client_config("known")
    result = _over_ssh("flash", sshd, root, config, bundles("1.0.0"), "--precision", "int8")
    assert result.returncode == 0, result.stderr
    assert "[3/6] uploading" in result.stderr and "active (no daemon" in result.stdout
    assert current_release(Layout(root)) == ("blob", "1.0.0")
    status = _over_ssh("status", sshd, root, config)
    assert status.returncode == 0, status.stderr
    assert "active       blob-1.0.0 (int8, models/blob-int8.onnx)" in status.stdout


def test_an_unknown_host_key_is_refused_unless_accepted_explicitly(sshd, bundles, tmp_path):
    root = tmp_path / "device"
    config = sshd.client_config("unknown", known=False)
    refused = _over_ssh("flash", sshd, root, config, bundles("1.0.0"))
    assert_user_error(refused, "127.0.0.1: facts", "host key", "not known", progress=True)
    assert not (root / "state.json").exists()
    accepted = _over_ssh("flash", sshd, root, config, bundles("1.0.0"), "--accept-new-host-key")
    assert accepted.returncode == 0, accepted.stderr
    assert f"[127.0.0.1]:{sshd.port}" in (sshd.dir / "unknown.known_hosts").read_text()


def test_a_refused_key_a_closed_port_and_a_missing_jetkit_are_named(sshd, bundles, tmp_path):
    root = tmp_path / "device"
    wrong_key = sshd.client_config("wrong", key=sshd.other_key)
    assert_user_error(
        _over_ssh("flash", sshd, root, wrong_key, bundles("1.0.0")),
        "refused the key",
        progress=True,
    )
    config = sshd.client_config("closed")
    closed = jetkit(
        "status", "--target", f"ssh://127.0.0.1:{free_port()}{root}", "--ssh-config", config
    )
    assert_user_error(closed, "127.0.0.1: status", "unreachable", "connection refused")
    missing = jetkit(
        "status", "--target", sshd.target(root), "--ssh-config", config,
        "--remote-jetkit", "/nonexistent/jetkit",
    )  # fmt: skip
    assert_user_error(missing, "jetkit is not installed on 127.0.0.1", "--remote-jetkit")
    assert not root.exists()


def test_a_target_that_ssh_would_read_as_an_option_is_refused():
    for hostile in (
        "ssh://-oProxyCommand=touch%20%2Ftmp%2Fpwned@orin",
        "ssh://nvidia@-oProxyCommand=x",
        "ssh://a%20-oProxyCommand=x@orin",
    ):
        with pytest.raises(JetkitError, match="ssh would read as an option"):
            parse_target(hostile)
    # Even a destination that got through would follow `--`: ssh reads no option from it.
    command = ssh_command(parse_target("ssh://orin"), SshOptions(), ["true"])
    assert command[-3:-1] == ["--", "orin"]
