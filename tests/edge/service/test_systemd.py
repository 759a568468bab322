"""systemd readiness through a real notify socket, and the unit `jetkit service install` writes:
escaped by systemd's rules, hardened, checked by systemd-analyze where it is installed."""

import json
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from cli_helpers import assert_user_error, jetkit

from edge.errors import JetkitError
from edge.service.config import config_from_dict
from edge.service.systemd import check_user, notify, unit_text, writable_settings

# A folder name with each character a unit file gives a meaning to.
HOSTILE = "cfg %n $USER 'a' \"b\" \\c"
TEST_CONFIG = config_from_dict({"model": "/opt/jetkit/current", "streams": ["test://"]})


def test_notify_sends_the_state_to_the_socket(tmp_path):
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        assert notify("READY=1", path) is True
        assert server.recv(64) == b"READY=1"
    assert notify("READY=1", "") is False


def test_the_unit_is_type_notify_reloads_on_hup_and_restarts(tmp_path):
    text = unit_text("/opt/venv/bin/jetkit", tmp_path / "my config.yaml", TEST_CONFIG, "jetson")
    exec_start = f'ExecStart="/opt/venv/bin/jetkit" "serve" "--config" "{tmp_path}/my config.yaml"'
    for line in (exec_start, "Type=notify", "ExecReload=/bin/kill -HUP $MAINPID",
                 "Restart=on-failure", "User=jetson", "WantedBy=multi-user.target"):  # fmt: skip
        assert line in text.splitlines()


def test_the_unit_runs_as_jetkit_hardened_with_cameras_and_gpu_reachable():
    lines = unit_text("/opt/venv/bin/jetkit", Path("/etc/jetkit.yaml"), TEST_CONFIG).splitlines()
    for line in ("User=jetkit", "SupplementaryGroups=video", "NoNewPrivileges=yes",
                 "ProtectSystem=strict", "ProtectHome=read-only", "PrivateTmp=yes",
                 "CacheDirectory=jetkit"):  # fmt: skip
        assert line in lines
    assert not any(line.startswith("PrivateDevices=") for line in lines)  # /dev/video*, nvhost
    assert "User=root" in unit_text("/j", Path("/c.yaml"), TEST_CONFIG, "root").splitlines()
    # nvarguscamerasrc reaches nvargus-daemon by a socket in /tmp: no private /tmp for a CSI camera.
    csi = config_from_dict({"model": "/m.onnx", "streams": ["test://", "csi://0"]})
    assert "PrivateTmp=yes" not in unit_text("/j", Path("/c.yaml"), csi).splitlines()


def test_paths_are_escaped_by_systemd_rules():
    text = unit_text("/opt/100%/jet $kit/jetkit", Path(f"/etc/{HOSTILE}/j.yaml"), TEST_CONFIG)
    # %: a specifier everywhere; $: a variable in the arguments only; \ and ": escaped in quotes.
    assert (
        'ExecStart="/opt/100%%/jet $kit/jetkit" "serve" "--config" '
        '"/etc/cfg %%n $$USER \'a\' \\"b\\" \\\\c/j.yaml"'
    ) in text.splitlines()
    assert writable_settings([Path(f"/srv/{HOSTILE}"), Path("/var/log/jetkit/cam 1")]) == [
        'ReadWritePaths="-/srv/cfg %%n $USER \'a\' \\"b\\" \\\\c" "-/var/log/jetkit/cam 1"'
    ]
    for executable, config_path, problem in [
        ("/opt/venv/bin/jetkit", Path("/etc/new\nline/j.yaml"), "control character"),
        ("/opt/venv\n/bin/jetkit", Path("/etc/j.yaml"), "control character"),
        ("/opt/o'neil/bin/jetkit", Path("/etc/j.yaml"), "quote or backslash"),
        ('/opt/"q"/bin/jetkit', Path("/etc/j.yaml"), "quote or backslash"),
    ]:
        with pytest.raises(JetkitError, match=problem):
            unit_text(executable, config_path, TEST_CONFIG)


def test_writable_folders_come_from_the_config():
    config = config_from_dict(
        {
            "model": "/opt/jetkit/current",
            "streams": ["test://"],
            "sinks": ["jsonl:///var/log/jetkit/results.jsonl", "video:///srv/clips/door.mp4",
                      "mqtt://broker:1883/jetkit", "-", "jsonl:///srv/clips/x/../more.jsonl"],
            "summary": "/var/lib/jetkit/summary.json",
        }
    )  # fmt: skip
    lines = unit_text("/j", Path("/c.yaml"), config).splitlines()
    assert "StateDirectory=jetkit" in lines and "LogsDirectory=jetkit" in lines
    assert 'ReadWritePaths="-/srv/clips"' in lines  # once, and the model's folder not at all
    relative = config_from_dict({"model": "/m.onnx", "streams": ["t://"], "summary": "s.json"})
    with pytest.raises(JetkitError, match="s.json, a relative path"):
        unit_text("/j", Path("/c.yaml"), relative)


@pytest.mark.parametrize("name", ["jetkit", "root", "_svc", "svc-1", "host$", "a" * 32])
def test_user_names_that_are_taken(name):
    assert check_user(name) == name


@pytest.mark.parametrize(
    "name", ["root\nExecStartPre=/bin/sh -c id", "Jetkit", "9lives", "a" * 33, "", "je tkit",
             "svc%i", "-x", "jetkit\n"],
)  # fmt: skip
def test_hostile_user_names_are_refused(name):
    with pytest.raises(JetkitError, match="--user"):
        check_user(name)


def test_service_install_writes_the_unit_after_checking_the_config(tmp_path, blob_onnx):
    config = tmp_path / "jetkit.yaml"
    config.write_text(f"model: {blob_onnx}\nstreams: ['test://']\n")
    result = jetkit(
        "service", "install", "--config", config, "--unit-dir", tmp_path / "units", "--user", "root"
    )
    assert result.returncode == 0, result.stderr
    unit = (tmp_path / "units" / "jetkit.service").read_text()
    assert f'"serve" "--config" "{config}"' in unit and "User=root" in unit.splitlines()
    config.write_text("model: m.onnx\nstreams: ['test://']\nhttp: {listen: nowhere}\n")
    assert_user_error(
        jetkit("service", "install", "--config", config, "--unit-dir", tmp_path / "u2"),
        "config key 'http.listen'",
    )
    assert not (tmp_path / "u2").exists()


def test_service_install_refuses_a_hostile_user_and_names_a_missing_one(tmp_path, blob_onnx):
    config = tmp_path / "jetkit.yaml"
    config.write_text(f"model: {blob_onnx}\nstreams: ['test://']\n")
    install = ("service", "install", "--config", config, "--unit-dir", tmp_path / "units")
    assert_user_error(jetkit(*install, "--user", "root\nExecStartPre=/bin/sh"), "--user")
    assert not (tmp_path / "units").exists()
    missing = "no-such-user-7f3a"
    result = jetkit(*install, "--user", missing)
    assert result.returncode == 0 and f"user '{missing}' does not exist" in result.stderr
    assert "useradd --system --groups video" in result.stderr
    (tmp_path / "units" / "jetkit.service").unlink()
    # Enabled at once, the unit would fail: refused before anything is written.
    assert_user_error(jetkit(*install, "--user", missing, "--enable"), "does not exist")
    assert not (tmp_path / "units" / "jetkit.service").exists()


def _install_hostile_unit(tmp_path: Path, blob_onnx: Path) -> tuple[Path, Path, Path]:
    """`jetkit service install` (the real venv's jetkit in ExecStart) for a config, and a sink
    folder, under a folder name full of characters a unit file gives a meaning to."""
    folder = tmp_path / HOSTILE
    folder.mkdir()
    config = folder / "jetkit.yaml"
    sink = json.dumps(f"jsonl://{folder}/out.jsonl")  # JSON is YAML, with the escapes it needs
    config.write_text(f"model: {blob_onnx}\nstreams: ['test://']\nsinks: [{sink}]\n")
    result = jetkit("service", "install", "--config", config, "--unit-dir", tmp_path / "units")
    assert result.returncode == 0, result.stderr
    return tmp_path / "units" / "jetkit.service", config, folder


def _systemd_analyze_verify(unit: Path) -> subprocess.CompletedProcess:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here (apt install systemd)")
    # At debug level it also prints the unit as it parsed it.
    env = {**os.environ, "SYSTEMD_LOG_LEVEL": "debug"}
    return subprocess.run(
        [analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, env=env
    )


def test_systemd_analyze_verifies_the_installed_unit(tmp_path, blob_onnx):
    unit, _, _ = _install_hostile_unit(tmp_path, blob_onnx)
    result = _systemd_analyze_verify(unit)
    assert result.returncode == 0, result.stderr
    # Warnings about a line of the unit (an unknown setting, a bad escape) name the file.
    assert not [line for line in result.stderr.splitlines() if line.startswith(f"{unit}:")]


def test_systemd_parses_the_paths_back_as_they_were(tmp_path, blob_onnx):
    unit, config, folder = _install_hostile_unit(tmp_path, blob_onnx)
    result = _systemd_analyze_verify(unit)
    dump = result.stdout + result.stderr
    command = re.search(r"Command Line: (.*)", dump)
    if command is None:
        pytest.skip("this systemd-analyze does not print the parsed command line")
    # The dump quotes as a shell does: "…" with \\ \" \$ escapes.
    words = [
        re.sub(r"\\(.)", r"\1", quoted) if quoted else bare
        for quoted, bare in re.findall(r'"((?:[^"\\]|\\.)*)"|(\S+)', command.group(1))
    ]
    # `$$` is still doubled here: systemd makes it `$` when it expands variables at the start.
    assert words[1:] == ["serve", "--config", str(config).replace("$", "$$")]
    assert words[0].endswith("/jetkit") and Path(words[0]).exists()
    assert f"ReadWritePaths: -{folder}" in dump
