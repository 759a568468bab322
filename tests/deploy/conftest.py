"""Deploy fixtures: a release folder as `jetkit calibrate` leaves it (the blob sample model with its
manifest, an FP16 artifact, and an INT8 Q/DQ artifact in ONNX Runtime's CPU format with its
TensorRT calibration cache and gate report), bundles of it, a bundle whose model cannot load,
and the real `jetkit serve` daemon serving a device root's `current` release."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import onnx
import pytest
from cli_helpers import jetkit
from net_helpers import free_port

from edge.manifest import ArtifactSpec, load_manifest, save_manifest
from edge.models import file_sha256


@pytest.fixture(scope="session")
def release_folder(blob_onnx, blob_val, tmp_path_factory):
    folder = tmp_path_factory.mktemp("release")
    model = folder / "blob.onnx"
    shutil.copy(blob_onnx, model)
    steps = [
        ("inspect", model, "--write-sidecar"),
        ("calibrate", model, "--precision", "fp16", "--out", folder),
        ("calibrate", model, "--precision", "int8", "--runtime", "cpu", "--data", blob_val)
        + ("--images", "8", "--val", blob_val, "--out", folder),
    ]
    for step in steps:
        result = jetkit(*step)
        assert result.returncode == 0, result.stderr
    return folder


@pytest.fixture(scope="session")
def bundles(release_folder, tmp_path_factory):
    """`make(version)` → a bundle of the release folder; `broken(version)` → one whose FP16
    model ONNX Runtime cannot load (`broken_folder(version)`: its folder): a weight's data is
    cut short (its manifest and the index agree with it, and its graph keeps TensorRT's rules,
    so only loading on the device fails)."""
    out = tmp_path_factory.mktemp("bundles")
    made: dict[str, Path] = {}

    def make(version: str, folder: Path = release_folder) -> Path:
        if version not in made:
            path = out / f"blob-{version}.jkb"
            result = jetkit("bundle", folder, "-o", path)
            assert result.returncode == 0, result.stderr
            made[version] = path
        return made[version]

    def broken(version: str) -> Path:
        return make(version, broken_folder(version))

    def broken_folder(version: str) -> Path:
        folder = out / f"broken-{version}"
        if folder.exists():
            return folder
        shutil.copytree(release_folder, folder)
        model = folder / "blob-fp16.onnx"
        proto = onnx.load(str(model))
        weight = max(proto.graph.initializer, key=lambda init: len(init.raw_data))
        weight.raw_data = weight.raw_data[: len(weight.raw_data) // 2]
        onnx.save(proto, str(model))
        manifest = load_manifest(folder / "blob-fp16.json")
        artifact = manifest.artifact
        save_manifest(
            manifest.replace(
                artifact=ArtifactSpec(
                    artifact.file, artifact.kind, artifact.precision, file_sha256(model)
                )
            ),
            folder / "blob-fp16.json",
        )
        return folder

    make.broken = broken
    make.broken_folder = broken_folder
    return make


class Daemon:
    """`jetkit serve` on a device root's `current`, two synthetic streams, HTTP on a free port."""

    def __init__(self, root: Path, work: Path) -> None:
        work.mkdir(parents=True)
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = work / "serve.yaml"
        self.config.write_text(
            f"model: {root / 'current'}\n"
            "streams:\n"
            '  - {uri: "test://?fps=15&size=320x240", id: cam0}\n'
            '  - {uri: "test://?fps=15&size=320x240", id: cam1}\n'
            f'http: {{listen: "127.0.0.1:{self.port}"}}\n'
            "watch_model_s: 0.5\n"
        )
        self.process: subprocess.Popen | None = None
        self.log = work / "serve.log"

    def start(self) -> None:
        script = Path(sys.executable).with_name("jetkit")
        self.process = subprocess.Popen(
            [script, "serve", "--config", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.log, "w"),  # noqa: SIM115 (closed with the process)
        )
        deadline = time.monotonic() + 60
        while "HTTP on" not in self.log.read_text():
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "the daemon did not start"
            time.sleep(0.1)

    def serving(self) -> str:
        """The model file the daemon's /status says it runs."""
        import json
        import urllib.request

        with urllib.request.urlopen(f"{self.url}/status", timeout=10) as response:
            return json.loads(response.read())["model"]["path"]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@pytest.fixture()
def daemon_for(tmp_path):
    started: list[Daemon] = []

    def make(root: Path) -> Daemon:
        daemon = Daemon(root, tmp_path / f"daemon{len(started)}")
        started.append(daemon)
        return daemon

    yield make
    for daemon in started:
        daemon.stop()


class Sshd:
    """A real OpenSSH server on 127.0.0.1 with a throwaway host key, and a client key it accepts;
    `client_config(known=True)` writes an ssh_config for it (the host key known, or not)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.port = free_port()
        self.user = getpass.getuser()
        # The device is this machine: its jetkit is the one under test.
        self.remote_jetkit = str(Path(sys.executable).with_name("jetkit"))
        self.host_key = directory / "host_key"
        self.client_key = directory / "client_key"
        self.other_key = directory / "other_key"  # a key the server does not accept
        for key in (self.host_key, self.client_key, self.other_key):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True
            )
        (directory / "authorized_keys").write_text(self.client_key.with_suffix(".pub").read_text())
        self.config = directory / "sshd_config"
        self.config.write_text(
            f"Port {self.port}\n"
            "ListenAddress 127.0.0.1\n"
            f"HostKey {self.host_key}\n"
            f"PidFile {directory / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {directory / 'authorized_keys'}\n"
            "PubkeyAuthentication yes\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "PermitRootLogin prohibit-password\n"
            "StrictModes no\n"
            "UsePAM no\n"
            "LogLevel ERROR\n"
        )
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation
        sshd = shutil.which("sshd") or "/usr/sbin/sshd"
        self.process = subprocess.Popen(
            [sshd, "-D", "-e", "-f", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "sshd.log", "w"),  # noqa: SIM115 (closed with the process)
        )
        deadline = time.monotonic() + 20
        while True:
            assert self.process.poll() is None, (self.dir / "sshd.log").read_text()
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            assert time.monotonic() < deadline, "sshd did not start"
            time.sleep(0.05)

    def client_config(self, name: str, known: bool = True, key: Path | None = None) -> Path:
        known_hosts = self.dir / f"{name}.known_hosts"
        public = self.host_key.with_suffix(".pub").read_text().split()
        known_hosts.write_text(
            f"[127.0.0.1]:{self.port} {public[0]} {public[1]}\n" if known else ""
        )
        config = self.dir / f"{name}.ssh_config"
        config.write_text(
            "Host 127.0.0.1\n"
            f"  User {self.user}\n"
            f"  IdentityFile {key or self.client_key}\n"
            "  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {known_hosts}\n"
            "  GlobalKnownHostsFile /dev/null\n"
            "  LogLevel ERROR\n"
        )
        return config

    def target(self, root: Path) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{root}"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    if shutil.which("sshd") is None and not Path("/usr/sbin/sshd").exists():
        pytest.fail("OpenSSH server missing: `make test` installs openssh-server")
    server = Sshd(tmp_path_factory.mktemp("sshd"))
    server.start()
    yield server
    server.stop()
