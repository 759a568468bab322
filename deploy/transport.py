"""Reaching a device: `ssh://[user@]host[:port][/root]` through the system OpenSSH client (so
`~/.ssh/config`, the agent and keys apply; host keys verified, a first key accepted only with
`accept_new_host_key`), or `file:///path` for a device root mounted here. Either way the device
side is `jetkit agent OP --root ROOT --args JSON`, run as its own process, answering one JSON
object on stdout; its stderr lines are progress, shown as they come.
"""

from __future__ import annotations

import json
import queue
import shlex
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlsplit

from edge.errors import JetkitError

# The device agent's progress lines on stderr start so; its other stderr lines explain a failure.
PROGRESS = "progress: "

Log = Callable[[str], None]
DEFAULT_SSH_ROOT = "jetkit"  # relative: under the remote user's home
CONNECT_TIMEOUT_S = 10


@dataclass(frozen=True)
class Target:
    kind: str  # "ssh" or "file"
    root: str
    host: str = "localhost"
    user: str | None = None
    port: int | None = None

    @property
    def uri(self) -> str:
        if self.kind == "file":
            return f"file://{self.root}"
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"ssh://{user}{self.host}{port}/{self.root.lstrip('/')}"

    @property
    def name(self) -> str:
        """How messages name the device."""
        return self.root if self.kind == "file" else self.host


def parse_target(text: str) -> Target:
    """`ssh://[user@]host[:port][/root]` (root: an absolute path, default `~/jetkit`) or
    `file:///path`. Pure; errors show the forms."""
    forms = "ssh://[user@]host[:port][/root] or file:///path"
    parts = urlsplit(text)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise JetkitError(f"--target {text}: a file target is file:///absolute/path")
        return Target("file", unquote(parts.path))
    if parts.scheme != "ssh":
        raise JetkitError(f"--target {text}: expected {forms}")
    if not parts.hostname:
        raise JetkitError(f"--target {text}: no host; expected {forms}")
    try:
        port = parts.port
    except ValueError:
        raise JetkitError(f"--target {text}: the port must be a number 1-65535") from None
    root = unquote(parts.path) if parts.path not in ("", "/") else DEFAULT_SSH_ROOT
    user = unquote(parts.username) if parts.username else None
    for what, value in (("host", parts.hostname), ("user", user)):
        if value is not None and (value.startswith("-") or any(c.isspace() for c in value)):
            raise JetkitError(
                f"--target {text}: the {what} {value!r} starts with '-' or holds spaces, which "
                "ssh would read as an option; check the address"
            )
    if parts.password:
        raise JetkitError(f"--target {text}: no passwords in targets; use a key (ssh-agent)")
    return Target("ssh", root, parts.hostname, user, port)


@dataclass(frozen=True)
class SshOptions:
    """`config`: an ssh_config file (`-F`); `options`: more `-o KEY=VALUE`; `remote_jetkit`:
    the jetkit command on the device."""

    accept_new_host_key: bool = False
    config: str | None = None
    options: tuple[str, ...] = ()
    remote_jetkit: str = "jetkit"
    extra: dict[str, Any] = field(default_factory=dict)


def ssh_command(target: Target, options: SshOptions, remote_argv: Sequence[str]) -> list[str]:
    """The `ssh` argument list running `remote_argv` on the device (quoted for its shell). Pure."""
    command = ["ssh"]
    if options.config:
        command += ["-F", options.config]
    checking = "accept-new" if options.accept_new_host_key else "yes"
    command += [
        "-o", "BatchMode=yes",
        "-o", f"StrictHostKeyChecking={checking}",
        "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}",
        "-o", "ServerAliveInterval=5",
        "-o", "ServerAliveCountMax=3",
    ]  # fmt: skip
    for option in options.options:
        command += ["-o", option]
    if target.port:
        command += ["-p", str(target.port)]
    destination = f"{target.user}@{target.host}" if target.user else target.host
    # `--` ends ssh's options: nothing in the destination is read as one (-oProxyCommand=…).
    return [*command, "--", destination, shlex.join(remote_argv)]


def explain_ssh_failure(target: Target, stderr: str, remote_jetkit: str) -> str:
    """One line for what went wrong reaching the device, from ssh's own words. Pure."""
    host = target.host
    text = stderr.lower()
    if "remote host identification has changed" in text:
        return (
            f"the host key of {host} has CHANGED since it was recorded (a reinstalled device, "
            "or someone in between); check it, then remove the old key with `ssh-keygen -R "
            f"{host}`"
        )
    if "host key verification failed" in text or "no matching host key" in text:
        return (
            f"the host key of {host} is not known; check it and add it to known_hosts "
            "(ssh-keyscan), or pass --accept-new-host-key to accept it on first use"
        )
    if "permission denied" in text:
        return (
            f"{host} refused the key (Permission denied); add your public key to the device's "
            "~/.ssh/authorized_keys or load the right key into ssh-agent"
        )
    for marker in ("connection refused", "timed out", "no route to host", "could not resolve"):
        if marker in text:
            return (
                f"{host} is unreachable ({marker}); check the address, the port and that sshd runs"
            )
    if "command not found" in text or "no such file or directory" in text:
        return (
            f"jetkit is not installed on {host} ({remote_jetkit!r} not found); install it there "
            "(pip install 'jetkit[edge]') or pass --remote-jetkit PATH"
        )
    last = stderr.strip().splitlines()[-1] if stderr.strip() else "no message"
    return f"ssh to {host} failed: {last}"


def _read_into(stream: IO[bytes], answer: queue.Queue[bytes]) -> None:
    answer.put(stream.read())


def _get(answer: queue.Queue[bytes]) -> bytes:
    """Wait for the answer in short steps, so that Ctrl-C is seen."""
    while True:
        try:
            return answer.get(timeout=0.2)
        except queue.Empty:
            continue


class AgentTransport:
    """Runs agent operations on a target and parses their answers. Constructing it only stores
    the configuration."""

    def __init__(
        self, target: Target, ssh: SshOptions = SshOptions(), log: Log | None = None
    ) -> None:
        self.target = target
        self.ssh = ssh
        self.log = log

    def command(self, op: str, args: dict[str, Any]) -> list[str]:
        if self.target.kind == "file":
            jetkit = str(Path(sys.executable).with_name("jetkit"))
            return [jetkit, "agent", op, "--root", self.target.root, "--args", json.dumps(args)]
        remote = [self.ssh.remote_jetkit, "agent", op, "--root", self.target.root]
        return ssh_command(self.target, self.ssh, [*remote, "--args", json.dumps(args)])

    def call(self, op: str, args: dict[str, Any], stdin: IO[bytes] | None = None) -> dict[str, Any]:
        """The operation's answer; JetkitError naming the device and operation otherwise."""
        command = self.command(op, args)
        try:
            process = subprocess.Popen(
                command,
                stdin=stdin if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                # Its own session: a Ctrl-C here does not reach the device side mid-operation.
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise JetkitError(
                f"cannot run {command[0]} ({exc.strerror}); install OpenSSH"
            ) from None
        stderr_lines: list[str] = []
        reader = threading.Thread(target=self._relay, args=(process.stderr, stderr_lines))
        reader.start()
        out, status = self._wait(op, process)
        reader.join()
        if status == 0:
            try:
                answer = json.loads(out)
            except ValueError:
                answer = None
            if isinstance(answer, dict):
                return answer
            raise JetkitError(f"{self.target.name}: {op}: the device answered {out[:200]!r}")
        raise JetkitError(f"{self.target.name}: {op}: {self._failure(status, stderr_lines)}")

    def _wait(self, op: str, process: subprocess.Popen[bytes]) -> tuple[bytes, int]:
        """The operation's stdout and exit status. Ctrl-C stops any operation but `commit`,
        which the device finishes (health check, rollback) whatever the host does: it is
        waited for, and a second Ctrl-C leaves it to the device."""
        # A queue, not Thread.join: a join interrupted by Ctrl-C can later return early.
        answer: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=_read_into, args=(process.stdout, answer), daemon=True).start()
        try:
            out = _get(answer)
        except KeyboardInterrupt:
            if op != "commit":
                process.terminate()
                process.wait()
                raise
            if self.log is not None:
                self.log(
                    f"  [{self.target.name}] the device is activating and checking the release; "
                    "waiting for it (Ctrl-C again to leave it to the device)"
                )
            try:
                out = _get(answer)
            except KeyboardInterrupt:
                raise JetkitError(
                    f"{self.target.name}: left the activation to the device; see `jetkit "
                    "status` for how it ended"
                ) from None
        return out, process.wait()

    def _relay(self, stream: IO[bytes], lines: list[str]) -> None:
        """Show the agent's progress lines as they come; keep the rest to explain a failure."""
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            if line.startswith(PROGRESS):
                if self.log is not None:
                    self.log(f"  [{self.target.name}] {line.removeprefix(PROGRESS)}")
            else:
                lines.append(line)

    def _failure(self, status: int, stderr_lines: list[str]) -> str:
        errors = [
            ln.removeprefix("jetkit: error: ")
            for ln in stderr_lines
            if ln.startswith("jetkit: error: ")
        ]
        if errors:
            return errors[-1]
        if self.target.kind == "ssh" and status in (255, 127):
            return explain_ssh_failure(self.target, "\n".join(stderr_lines), self.ssh.remote_jetkit)
        last = stderr_lines[-1] if stderr_lines else "no message"
        return f"the device side exited {status}: {last}"
