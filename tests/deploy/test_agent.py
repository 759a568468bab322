"""The device agent as the host (or someone posing as it) calls it: `jetkit agent OP --args JSON`
with arguments checked before anything is touched, one writer per upload, abandoned uploads
cleaned, and a commit on a full disk (a real 1 MiB tmpfs) that leaves `current` and
`state.json` agreeing."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import assert_user_error, jetkit
from deploy_helpers import install_only, upload

from deploy.agent_args import parse_agent_args
from deploy.bundle import read_index
from deploy.device import Layout, current_release, load_state
from deploy.flash import upload_name
from edge.errors import JetkitError


def _agent(root, op, args, stdin=None):
    script = Path(sys.executable).with_name("jetkit")
    return subprocess.run(
        [script, "agent", op, "--root", str(root), "--args", json.dumps(args)],
        capture_output=True,
        text=stdin is None,
        input=stdin,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("op", "args", "problem"),
    [
        ("install", {"release": "../../x"}, "argument 'release': expected an upload name"),
        ("receive", {"release": "det-1.0.0-0123456789abcdef"}, "argument 'offset' is missing"),
        ("receive", {"release": "det-1.0.0-0123456789abcdef", "offset": -1}, "integer >= 0"),
        ("prepare", {"name": "det", "version": "1/../..", "plan": {}}, "argument 'version'"),
        (
            "prepare",
            {
                "name": "det",
                "version": "1",
                "plan": {
                    "precision": "fp16",
                    "runtime": "onnxruntime",
                    "model": "../../../etc/passwd",
                },
            },  # fmt: skip
            "is not a file in models/",
        ),
        (
            "prepare",
            {
                "name": "det",
                "version": "1",
                "plan": {
                    "precision": "fp16",
                    "runtime": "tensorrt",
                    "model": "models/m.onnx",
                    "key": {"name": "../../engine"},
                },
            },  # fmt: skip
            "engine key",
        ),
        (
            "commit",
            {
                "name": "det",
                "version": "1",
                "precision": "fp16",
                "keep": 1,
                "health_timeout_s": float("nan"),
            },
            "seconds in (0, 3600]",
        ),  # fmt: skip
        (
            "commit",
            {"name": "det", "version": "1", "precision": "fp16", "keep": 0, "health_timeout_s": 5},
            "'keep': expected an integer >= 1",
        ),  # fmt: skip
        ("status", {"daemon_url": "file:///etc"}, "expected http://HOST:PORT"),
        ("status", [1, 2], "must be a JSON object"),
        ("format-disk", {}, "unknown agent operation"),
    ],
)
def test_agent_arguments_are_checked_before_the_device_is_touched(op, args, problem):
    with pytest.raises(JetkitError, match=None) as raised:
        parse_agent_args(op, args)
    assert problem in str(raised.value)


def test_a_hostile_release_name_writes_nothing_outside_the_root(tmp_path):
    root = tmp_path / "device"
    for args in ({"release": "../../x"}, {"release": "../" * 8 + "tmp/x-0123456789abcdef"}, {}):
        assert_user_error(_agent(root, "install", args), "agent install: argument 'release'")
    assert_user_error(_agent(root, "install", "[]"), "--args must be a JSON object")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_defaults_are_filled_in_and_unknown_keys_ignored():
    parsed = parse_agent_args("status", {"newer_host_option": 1})
    assert parsed == {"daemon_url": "http://127.0.0.1:8080"}


def test_two_uploads_of_one_bundle_at_once_do_not_interleave(bundles, tmp_path):
    root = tmp_path / "device"
    bundle = bundles("1.0.0")
    name = upload_name(read_index(bundle))
    part = Layout(root).partial_upload(name)
    part.parent.mkdir(parents=True)
    with open(part, "ab") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another flash is writing it
        refused = _agent(root, "receive", {"release": name, "offset": 0}, bundle.read_bytes())
    assert refused.returncode == 2
    assert b"another flash is uploading" in refused.stderr
    received = _agent(root, "receive", {"release": name, "offset": 0}, bundle.read_bytes())
    assert received.returncode == 0, received.stderr
    assert part.read_bytes() == bundle.read_bytes()


def test_abandoned_uploads_are_cleaned_at_the_next_install(bundles, tmp_path):
    root = tmp_path / "device"
    staging = Layout(root).staging
    staging.mkdir(parents=True)
    old = staging / "det-0.1.0-0123456789abcdef.jkb.part"
    fresh = staging / "det-0.2.0-0123456789abcdef.jkb.part"
    for part in (old, fresh):
        part.write_bytes(b"half a bundle")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(old, (two_days_ago, two_days_ago))
    assert install_only(root, bundles("1.0.0"))["installed"]
    assert sorted(p.name for p in staging.iterdir()) == [fresh.name]  # maybe still uploading


def _unshare_available() -> str | None:
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    probe = subprocess.run(
        [unshare, "--user", "--map-root-user", "--mount", "true"], capture_output=True
    )
    return unshare if probe.returncode == 0 else None


# Inside a private mount namespace: a 1 MiB tmpfs over the device root's parent, the prepared
# root copied in, the rest of the space filled, then the commit; the outcome printed from
# inside (the mount goes when the namespace does).
_FULL_DISK_SCRIPT = r"""
set -eu
work="$1"; jetkit="$2"; args="$3"
mkdir -p "$work/disk"
mount -t tmpfs -o size=1m tmpfs "$work/disk"
cp -a "$work/prepared/." "$work/disk/"
dd if=/dev/zero of="$work/disk/filler" bs=4k 2>/dev/null || true
set +e
"$jetkit" agent commit --root "$work/disk/device" --args "$args" 2>"$work/commit.err"
echo "exit=$?" >"$work/outcome"
readlink "$work/disk/device/current" >>"$work/outcome"
cat "$work/disk/device/state.json" >>"$work/outcome"
ls -a "$work/disk/device" >>"$work/outcome"
"""


def test_a_full_disk_during_activation_changes_neither_current_nor_the_state(bundles, tmp_path):
    """The state is written before `current` changes: on a full disk the commit fails (exit
    2, naming the cause) with `current` and `state.json` both still on the old release."""
    unshare = _unshare_available()
    if unshare is None:
        pytest.skip("needs unshare with user and mount namespaces (a private tmpfs)")
    prepared = tmp_path / "prepared"
    root = prepared / "device"
    flashed = jetkit(
        "flash", bundles("1.0.0"), "--target", f"file://{root}", "--precision", "fp16",
        "--daemon", "http://127.0.0.1:9",
    )  # fmt: skip
    assert flashed.returncode == 0, flashed.stderr
    transport, name = upload(root, bundles("1.1.0"))
    transport.call("install", {"release": name})
    plan = {"precision": "fp16", "runtime": "onnxruntime", "model": "models/blob-fp16.onnx"}
    transport.call("prepare", {"name": "blob", "version": "1.1.0", "plan": plan})
    models = Layout(root).release("blob", "1.0.0") / "models"
    for big in models.glob("*.onnx"):
        if big.name != "blob-fp16.onnx":
            big.unlink()  # room in 1 MiB for the two releases the test needs
    for big in (Layout(root).release("blob", "1.1.0") / "models").glob("*.onnx"):
        if big.name != "blob-fp16.onnx":
            big.unlink()
    args = json.dumps({"name": "blob", "version": "1.1.0", "precision": "fp16", "keep": 3,
                       "health_timeout_s": 5, "daemon_url": "http://127.0.0.1:9"})  # fmt: skip
    script = Path(sys.executable).with_name("jetkit")
    subprocess.run(
        [unshare, "--user", "--map-root-user", "--mount", "sh", "-c", _FULL_DISK_SCRIPT, "sh",
         str(tmp_path), str(script), args],
        check=True, timeout=120,
    )  # fmt: skip
    outcome = (tmp_path / "outcome").read_text()
    error = (tmp_path / "commit.err").read_text()
    assert outcome.startswith("exit=2\n"), (outcome, error)
    assert "No space left on device" in error and "Traceback" not in error
    pointer, rest = outcome.split("\n", 2)[1:]
    assert pointer == "releases/blob/1.0.0"
    state = json.JSONDecoder().raw_decode(rest)[0]
    assert state["active"]["version"] == "1.0.0"
    assert not [line for line in rest.splitlines() if line.endswith(".tmp")]  # nothing left


def test_a_prebuilt_engine_is_refused_from_a_release_no_trusted_key_signed(bundles, tmp_path):
    """Deserializing an engine runs code: `prepare` takes a prebuilt engine only from a signed
    bundle whose key the device trusts, whatever plan the host sends."""
    root = tmp_path / "device"
    transport, name = upload(root, bundles("1.0.0"))
    transport.call("install", {"release": name})
    plan = {
        "precision": "fp16",
        "runtime": "tensorrt",
        "model": "models/blob.onnx",
        "key": {"name": "0123456789abcdef-fp16-b1-trt10.3.0-sm87-gpu"},
        "prebuilt": "engines/blob.engine",
    }
    with pytest.raises(JetkitError, match="prebuilt engines are taken only from signed bundles"):
        transport.call("prepare", {"name": "blob", "version": "1.0.0", "plan": plan})
    assert not Layout(root).engines.exists()
    assert current_release(Layout(root)) is None and load_state(Layout(root)).active is None
