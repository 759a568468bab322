"""`jetkit flash`, `rollback` and `status` on `file://` device roots, with the real daemon as the
thing that must become healthy: a first flash with no daemon, a flash the daemon reloads and
passes, a model that fails to load and is rolled back, resumed and damaged uploads, an
interrupted flash, and pruning to --keep."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import pytest
from cli_helpers import assert_user_error, jetkit, popen_interruptible
from deploy_helpers import install_only
from net_helpers import free_port

from deploy.agent import op_receive
from deploy.bundle import read_index
from deploy.device import Layout, current_release, load_state
from deploy.flash import upload_name


def _flash(bundle, root, *extra, daemon=None, precision="fp16"):
    """`jetkit flash` to a file:// root; FP16 unless `extra` or `precision` says otherwise (the
    bundles' FP16 model is the one `bundles.broken` breaks)."""
    url = daemon.url if daemon else f"http://127.0.0.1:{free_port()}"
    chosen = () if "--precision" in extra else ("--precision", precision)
    return jetkit(
        "flash", bundle, "--target", f"file://{root}", "--daemon", url, "--health-timeout", "30",
        *chosen, *extra,
    )  # fmt: skip


def _flash_command(bundle, root, daemon):
    """The argv of `_flash` at FP16, for a flash the test runs as a process of its own."""
    script = Path(sys.executable).with_name("jetkit")
    return [str(script), "flash", str(bundle), "--target", f"file://{root}", "--daemon",
            daemon.url, "--health-timeout", "30", "--precision", "fp16"]  # fmt: skip


def test_flash_reload_health_check_and_rollback_with_the_real_daemon(bundles, daemon_for, tmp_path):
    root = tmp_path / "device"
    layout = Layout(root)

    first = _flash(bundles("1.0.0"), root)
    assert first.returncode == 0, first.stderr
    assert "active (no daemon running to check)" in first.stdout
    assert current_release(layout) == ("blob", "1.0.0")
    release = layout.release("blob", "1.0.0")
    assert json.loads((release / "release.json").read_text())["model"] == "models/blob-fp16.onnx"
    for step in (
        "[1/6] verifying",
        "[2/6] preflight",
        "plan: models/blob-fp16.onnx on ONNX Runtime",
    ):
        assert step in first.stderr

    daemon = daemon_for(root)
    daemon.start()
    assert daemon.serving() == str(release / "models" / "blob-fp16.onnx")

    second = _flash(bundles("1.1.0"), root, "--precision", "int8", daemon=daemon)
    assert second.returncode == 0, second.stderr
    assert "1.1.0 healthy" in second.stdout
    assert daemon.serving() == str(layout.release("blob", "1.1.0") / "models" / "blob-int8.onnx")

    broken = _flash(bundles.broken("2.0.0"), root, daemon=daemon)
    assert broken.returncode == 1, broken.stderr
    assert "jetkit: rolled back: the daemon could not load the new model" in broken.stderr
    assert "now running blob-1.1.0 again" in broken.stderr
    assert current_release(layout) == ("blob", "1.1.0")
    assert daemon.serving().endswith("1.1.0/models/blob-int8.onnx")
    events = [(e["event"], e.get("version")) for e in load_state(layout).history]
    assert events[-3:] == [("healthy", "1.1.0"), ("activated", "2.0.0"), ("rolled-back", "1.1.0")]

    status = jetkit("status", "--target", f"file://{root}", "--daemon", daemon.url)
    assert status.returncode == 0, status.stderr
    assert "active       blob-1.1.0 (int8, models/blob-int8.onnx)" in status.stdout
    assert f"healthy at {daemon.url}" in status.stdout
    assert "rolled-back  blob-1.1.0" in status.stdout

    back = jetkit("rollback", "--target", f"file://{root}", "--daemon", daemon.url, "--to", "1.0.0")
    assert back.returncode == 0, back.stderr
    assert current_release(layout) == ("blob", "1.0.0")
    assert daemon.serving().endswith("1.0.0/models/blob-fp16.onnx")
    assert daemon.process.poll() is None  # the streams never stopped


def test_the_default_precision_follows_the_device_and_the_gate(bundles, release_folder, tmp_path):
    """No TensorRT on a file:// device root: ONNX Runtime on the CPU runs the INT8 artifact that
    passed its gate; without its gate report, the FP32 model."""
    root = tmp_path / "device"
    gated = _flash(bundles("1.0.0"), root, precision="auto")
    assert gated.returncode == 0, gated.stderr
    release = Layout(root).release("blob", "1.0.0")
    assert json.loads((release / "release.json").read_text())["model"] == "models/blob-int8.onnx"
    assert "precision: int8 (no TensorRT on" in gated.stderr
    assert "passed its accuracy gate" in gated.stderr

    ungated = tmp_path / "ungated"
    ungated.mkdir()
    for path in release_folder.iterdir():
        if not path.name.endswith(".gate.json"):
            (ungated / path.name).write_bytes(path.read_bytes())
    bundle = tmp_path / "blob-1.1.0.jkb"
    assert jetkit("bundle", ungated, "-o", bundle).returncode == 0
    fallback = _flash(bundle, root, precision="auto")
    assert fallback.returncode == 0, fallback.stderr
    release = Layout(root).release("blob", "1.1.0")
    assert json.loads((release / "release.json").read_text())["model"] == "models/blob.onnx"
    assert "precision: fp32 (no TensorRT on" in fallback.stderr


def test_a_bundle_with_an_inferred_manifest_runs_on_the_device(ultralytics_like_onnx, tmp_path):
    """An Ultralytics export bundled as it is, flashed: the device's release has the model and
    the inferred manifest beside it, and the runtime reads it with that manifest."""
    bundle = tmp_path / "det-1.0.0.jkb"
    assert jetkit("bundle", ultralytics_like_onnx, "-o", bundle).returncode == 0
    root = tmp_path / "device"
    result = _flash(bundle, root, precision="auto")
    assert result.returncode == 0, result.stderr
    assert "precision: fp32 (no TensorRT on" in result.stderr
    model = Layout(root).release("det", "1.0.0") / "models" / "yolov8n.onnx"
    inspected = jetkit("inspect", model, "--json")
    assert inspected.returncode == 0, inspected.stderr
    assert "no jetkit manifest" not in inspected.stderr  # its sidecar came with the bundle
    assert json.loads(inspected.stdout)["classes"] == ["red", "green", "blue"]


def _versions(root):
    return sorted(p.name for p in (Layout(root).releases / "blob").iterdir())


def test_keep_prunes_only_after_a_passed_check_never_the_active_or_another_flashs_release(
    bundles, daemon_for, tmp_path
):
    root = tmp_path / "device"
    layout = Layout(root)
    for version in ("1.0.0", "1.1.0"):
        result = _flash(bundles(version), root, "--keep", "1")
        assert result.returncode == 0, result.stderr
        assert "removed" not in result.stdout  # no daemon checked it: the older ones stay
    assert _versions(root) == ["1.0.0", "1.1.0"]

    assert install_only(root, bundles("0.9.0"))["installed"]
    daemon = daemon_for(root)
    daemon.start()
    result = _flash(bundles("1.2.0"), root, "--keep", "1", daemon=daemon)
    assert result.returncode == 0, result.stderr
    assert "healthy; removed blob-1.0.0, blob-1.1.0" in result.stdout
    assert _versions(root) == ["0.9.0", "1.2.0"]  # 0.9.0 is another flash's, not yet active
    assert load_state(layout).history[-1]["event"] == "removed"

    # Left for longer than a flash takes, it is abandoned: the next pruning takes it.
    hours_ago = time.time() - 2 * 3600
    os.utime(layout.release("blob", "0.9.0"), (hours_ago, hours_ago))
    result = _flash(bundles("1.3.0"), root, "--keep", "1", daemon=daemon)
    assert result.returncode == 0, result.stderr
    assert _versions(root) == ["1.3.0"]


def test_an_interrupted_upload_resumes_where_it_stopped(bundles, tmp_path):
    root = tmp_path / "device"
    bundle = bundles("1.0.0")
    half = bundle.stat().st_size // 2
    name = upload_name(read_index(bundle))
    with open(bundle, "rb") as handle:
        op_receive(Layout(root), name, 0, _Limited(handle, half))
    result = _flash(bundle, root)
    assert result.returncode == 0, result.stderr
    assert f"resuming at {half / 2**20:.1f} MiB" in result.stderr
    assert current_release(Layout(root)) == ("blob", "1.0.0")
    assert not list((root / "staging").iterdir())


class _Limited:
    """The first `limit` bytes of a file, as a connection that dropped would have sent."""

    def __init__(self, handle, limit):
        self.handle, self.left = handle, limit

    def read(self, size=-1):
        data = self.handle.read(min(size, self.left) if size >= 0 else self.left)
        self.left -= len(data)
        return data


def test_a_damaged_upload_is_refused_on_the_device_and_the_next_flash_works(bundles, tmp_path):
    root = tmp_path / "device"
    bundle = bundles("1.0.0")
    first = _flash(bundle, root)
    assert first.returncode == 0, first.stderr
    newer = bundles("1.1.0")
    damaged = bytearray(newer.read_bytes())
    with tarfile.open(newer, mode="r:") as tar:
        largest = max(tar.getmembers(), key=lambda m: m.size)
    damaged[largest.offset_data + largest.size // 2] ^= 0xFF  # as a flaky link would deliver it
    name = upload_name(read_index(newer))
    part = Layout(root).partial_upload(name)
    part.write_bytes(bytes(damaged))
    refused = _flash(newer, root)  # the device has it all already: nothing more is sent
    assert_user_error(
        refused, "install", "failed verification", "flash again", "sha256", progress=True
    )
    assert current_release(Layout(root)) == ("blob", "1.0.0")
    assert not part.exists()
    again = _flash(newer, root)
    assert again.returncode == 0, again.stderr
    assert current_release(Layout(root)) == ("blob", "1.1.0")


def test_a_flash_killed_during_its_commit_still_ends_checked_on_the_device(
    bundles, daemon_for, tmp_path
):
    """kill -9 of the local `jetkit flash` once the device has switched: the device side goes
    on by itself through the health check (here it passes) and the next flash works."""
    root = tmp_path / "device"
    assert _flash(bundles("1.0.0"), root).returncode == 0
    daemon = daemon_for(root)
    daemon.start()
    process = popen_interruptible(
        _flash_command(bundles("1.1.0"), root, daemon), stderr=subprocess.PIPE
    )
    layout = Layout(root)

    def last_event():
        event = load_state(layout).history[-1]
        return event["event"], event.get("version")

    deadline = time.monotonic() + 60
    while last_event() != ("activated", "1.1.0"):
        assert time.monotonic() < deadline and process.poll() is None, last_event()
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)
    while last_event() != ("healthy", "1.1.0"):
        assert time.monotonic() < deadline, load_state(layout).history
        time.sleep(0.2)
    assert daemon.serving().endswith("1.1.0/models/blob-fp16.onnx")
    again = _flash(bundles.broken("2.0.0"), root, daemon=daemon)
    assert again.returncode == 1 and "now running blob-1.1.0 again" in again.stderr


def test_ctrl_c_during_the_commit_waits_for_the_device_to_finish(bundles, daemon_for, tmp_path):
    root = tmp_path / "device"
    assert _flash(bundles("1.0.0"), root).returncode == 0
    daemon = daemon_for(root)
    daemon.start()
    process = popen_interruptible(
        _flash_command(bundles("1.1.0"), root, daemon),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    layout = Layout(root)
    deadline = time.monotonic() + 60
    while load_state(layout).history[-1].get("version") != "1.1.0":
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert "waiting for it (Ctrl-C again to leave it to the device)" in stderr
    assert "1.1.0 healthy" in stdout
    assert load_state(layout).history[-1]["event"] == "healthy"


def test_a_failing_engine_build_on_the_device_is_an_error_and_changes_nothing(bundles, tmp_path):
    """The device side of a TensorRT plan, run here: `jetkit build` really runs and fails (no
    TensorRT on this machine), as a build that fails on a Jetson would."""
    from deploy.agent import op_prepare
    from deploy.bundle import extract_bundle
    from deploy.plan import ModelPlan
    from edge.errors import JetkitError

    layout = Layout(tmp_path / "device")
    extract_bundle(bundles("1.0.0"), layout.release("blob", "1.0.0"))
    key = {"name": "0123456789abcdef-fp16-b8-trt10.3.0-sm87-gpu"}
    plan = ModelPlan("fp16", "tensorrt", "models/blob.onnx", key)
    lines = []
    try:
        op_prepare(layout, "blob", "1.0.0", plan, "256M", log=lines.append)
    except JetkitError as exc:
        assert "the engine build on the device failed" in str(exc)
    else:
        raise AssertionError("the build cannot succeed without TensorRT")
    assert any("--workspace 256M" in line for line in lines)
    assert any("TensorRT is not installed here" in line for line in lines)  # the build's output
    assert not layout.engine(key["name"]).exists()
    assert not (layout.release("blob", "1.0.0") / "release.json").exists()


def test_bad_input_fails_before_the_device_changes(bundles, release_folder, tmp_path):
    root = tmp_path / "device"
    assert _flash(bundles("1.0.0"), root).returncode == 0
    only_fp32 = tmp_path / "fp32"
    only_fp32.mkdir()
    for name in ("blob.onnx", "blob.json"):
        (only_fp32 / name).write_bytes((release_folder / name).read_bytes())
    bundle = tmp_path / "fp32only-1.0.jkb"
    assert jetkit("bundle", only_fp32, "-o", bundle).returncode == 0
    assert_user_error(
        _flash(bundle, root, "--precision", "fp16"),
        "has no TensorRT",
        "no fp16 ONNX",
        progress=True,
    )
    corrupt = tmp_path / "corrupt-1.0.jkb"
    data = bytearray(bundles("1.1.0").read_bytes())
    data[-20000] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    assert_user_error(_flash(corrupt, root), "corrupt", progress=True)
    assert_user_error(_flash(bundles("1.1.0"), root, "--keep", "0"), "--keep must be >= 1")
    assert_user_error(
        jetkit("flash", bundles("1.1.0"), "--target", "ftp://x/y"), "ssh://", "file:///"
    )
    assert_user_error(jetkit("flash", bundles("1.1.0")), "--target is required")
    assert current_release(Layout(root)) == ("blob", "1.0.0")
    assert [e["event"] for e in load_state(Layout(root)).history] == ["activated"]
    assert_user_error(
        jetkit("rollback", "--target", f"file://{root}"), "no earlier release to roll back to"
    )


@pytest.mark.jetson
def test_on_a_jetson_the_engine_is_built_on_the_device_cached_and_served(
    bundles, daemon_for, tmp_path
):
    """With TensorRT here: the first flash builds the FP16 engine through `jetkit build` and
    caches it; the daemon serves the engine; the next version of the same model reuses it."""
    root = tmp_path / "device"
    first = _flash(bundles("1.0.0"), root, "--precision", "fp16")
    assert first.returncode == 0, first.stderr
    assert "built on the device" in first.stderr and "build:" in first.stderr
    layout = Layout(root)
    (engine,) = layout.engines.glob("*.engine")
    model = json.loads((layout.release("blob", "1.0.0") / "release.json").read_text())["model"]
    assert model == f"engines/{engine.name}"
    daemon = daemon_for(root)
    daemon.start()
    assert daemon.serving() == str(layout.release("blob", "1.0.0") / model)
    second = _flash(bundles("1.1.0"), root, daemon=daemon)
    assert second.returncode == 0, second.stderr
    assert "from the device's engine cache" in second.stderr
    assert daemon.serving().endswith(f"1.1.0/engines/{engine.name}")


def test_a_rebuilt_bundle_of_an_installed_version_is_refused_and_force_installs_it_beside(
    bundles, release_folder, daemon_for, tmp_path
):
    """`blob-1.0.0.jkb` built again from other files: the device keeps what it has (and says
    so) instead of skipping the upload and keeping the old model under the new name."""
    root = tmp_path / "device"
    layout = Layout(root)
    assert _flash(bundles("1.0.0"), root).returncode == 0
    again = _flash(bundles("1.0.0"), root)
    assert again.returncode == 0, again.stderr
    assert "blob-1.0.0 already active, nothing changed" in again.stdout

    rebuilt = tmp_path / "rebuilt" / "blob-1.0.0.jkb"
    assert jetkit("bundle", bundles.broken_folder("1.0.0"), "-o", rebuilt).returncode == 0
    refused = _flash(rebuilt, root)
    assert_user_error(refused, "blob-1.0.0 installed with other content", "--force", progress=True)
    model = layout.release("blob", "1.0.0") / "models" / "blob-fp16.onnx"
    assert model.read_bytes() == (release_folder / "blob-fp16.onnx").read_bytes()

    # --force: beside it as 1.0.0+<digest>, through the health check (which this one fails).
    daemon = daemon_for(root)
    daemon.start()
    forced = _flash(rebuilt, root, "--force", daemon=daemon)
    assert forced.returncode == 1, forced.stderr
    assert "rolled back" in forced.stderr and "now running blob-1.0.0 again" in forced.stderr
    forced_version = next(v for v in _versions(root) if v.startswith("1.0.0+"))
    assert len(forced_version) == len("1.0.0+") + 12
    assert current_release(layout) == ("blob", "1.0.0")
    assert model.read_bytes() == (release_folder / "blob-fp16.onnx").read_bytes()


def test_a_stalled_daemon_fails_the_check_and_nothing_is_pruned(bundles, daemon_for, tmp_path):
    """SIGSTOP: the daemon's port accepts connections and nothing answers. That is a daemon
    that is not well, not an absent one: the broken release is rolled back, no release is
    deleted, and after SIGCONT the daemon serves the release it served."""
    root = tmp_path / "device"
    layout = Layout(root)
    for version in ("1.0.0", "1.1.0"):
        assert _flash(bundles(version), root).returncode == 0
    daemon = daemon_for(root)
    daemon.start()
    serving = daemon.serving()
    os.kill(daemon.process.pid, signal.SIGSTOP)
    try:
        result = _flash(
            bundles.broken("2.0.0"), root, "--keep", "1", "--health-timeout", "3", daemon=daemon
        )
    finally:
        os.kill(daemon.process.pid, signal.SIGCONT)
    assert result.returncode == 1, result.stderr
    assert "a stalled daemon fails the health check" in result.stderr
    assert "now running blob-1.1.0 again" in result.stderr
    assert current_release(layout) == ("blob", "1.1.0")
    assert load_state(layout).active["version"] == "1.1.0"
    assert _versions(root) == ["1.0.0", "1.1.0", "2.0.0"]
    time.sleep(1.5)  # three pointer checks
    assert daemon.serving() == serving
    assert daemon.process.poll() is None


@pytest.fixture()
def shared_dir():
    """A folder every user may enter (pytest's own are 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="jetkit-shared-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_a_daemon_of_another_user_can_read_what_a_flash_installs(bundles, shared_dir):
    """Installed files get the modes the umask gives, not mkstemp's 0600 and mkdtemp's 0700:
    a daemon running as another user (`service install --user`) reads the release."""
    previous = os.umask(0o022)
    try:
        root = shared_dir / "device"
        assert _flash(bundles("1.0.0"), root).returncode == 0
    finally:
        os.umask(previous)
    layout = Layout(root)
    release = layout.release("blob", "1.0.0")
    for path in (release, release / "models"):
        assert path.stat().st_mode & 0o777 == 0o755, path
    for path in (release / "release.json", release / "index.json", layout.state):
        assert path.stat().st_mode & 0o777 == 0o644, path
    runuser = shutil.which("runuser")
    if os.geteuid() != 0 or runuser is None:
        pytest.skip("reading as another user needs root and runuser")
    for path in (release / "release.json", release / "models" / "blob-fp16.onnx", layout.state):
        read = subprocess.run(
            [runuser, "-u", "nobody", "--", "cat", str(path)], capture_output=True
        )
        assert read.returncode == 0, read.stderr
