"""systemd readiness through a real notify socket, and the unit `jetkit service install` writes."""

import socket

from cli_helpers import assert_user_error, jetkit

from edge.service.systemd import notify, unit_text


def test_notify_sends_the_state_to_the_socket(tmp_path):
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        assert notify("READY=1", path) is True
        assert server.recv(64) == b"READY=1"
    assert notify("READY=1", "") is False


def test_the_unit_is_type_notify_reloads_on_hup_and_restarts(tmp_path):
    text = unit_text("/opt/venv/bin/jetkit", tmp_path / "my config.yaml", user="jetson")
    assert f"ExecStart=/opt/venv/bin/jetkit serve --config '{tmp_path}/my config.yaml'" in text
    for line in ("Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure",
                 "User=jetson", "WantedBy=multi-user.target"):  # fmt: skip
        assert line in text.splitlines()


def test_service_install_writes_the_unit_after_checking_the_config(tmp_path, blob_onnx):
    config = tmp_path / "jetkit.yaml"
    config.write_text(f"model: {blob_onnx}\nstreams: ['test://']\n")
    result = jetkit("service", "install", "--config", config, "--unit-dir", tmp_path / "units")
    assert result.returncode == 0, result.stderr
    unit = (tmp_path / "units" / "jetkit.service").read_text()
    assert f"serve --config {config}" in unit
    config.write_text("model: m.onnx\nstreams: ['test://']\nhttp: {listen: nowhere}\n")
    assert_user_error(
        jetkit("service", "install", "--config", config, "--unit-dir", tmp_path / "u2"),
        "config key 'http.listen'",
    )
    assert not (tmp_path / "u2").exists()
