"""The device side of deploy: each operation a flash, rollback or status needs, run on the device
itself (in-process for a `file://` target, `jetkit agent OP` over SSH otherwise) and answering
one JSON object.

Operations that change the device hold an exclusive lock on `ROOT/.lock` (released by the OS
when the process dies, so a killed flash never leaves the device locked). `commit` (switch,
reload, health check, roll back on failure) ignores hang-ups: once started it finishes on the
device even if the host that started it goes away, so the device ends on a release that passed
its health check or on the previous one.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from deploy.bundle import extract_bundle, jetkit_version, read_index
from deploy.bundle_index import FORMAT_VERSION as BUNDLE_FORMAT_VERSION
from deploy.bundle_index import BundleError
from deploy.device import (
    RELEASE_INDEX,
    DeviceState,
    Layout,
    current_release,
    installed_releases,
    load_state,
    releases_to_remove,
    save_state,
    switch_current,
)
from deploy.plan import ModelPlan
from deploy.transport import PROGRESS
from edge.atomic import write_text_atomic
from edge.errors import JetkitError

Log = Callable[[str], None]
DEFAULT_DAEMON_URL = "http://127.0.0.1:8080"
HTTP_TIMEOUT_S = 5.0
POLL_S = 0.5
_CHUNK = 1 << 20


def _stderr(message: str) -> None:
    """Progress for the host; once the host has gone (a closed pipe) the work goes on unseen."""
    try:
        print(f"{PROGRESS}{message}", file=sys.stderr, flush=True)
    except OSError:
        pass


@contextmanager
def device_lock(layout: Layout) -> Iterator[None]:
    layout.root.mkdir(parents=True, exist_ok=True)
    with open(layout.root / ".lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JetkitError(
                f"another jetkit flash or rollback is changing {layout.root}; wait for it"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- the daemon ----------------------------------------------------------------------------------


def _http(url: str, method: str = "GET", timeout_s: float = HTTP_TIMEOUT_S) -> tuple[int, Any]:
    """(status, parsed JSON or text) of a request to the daemon; (0, reason) when it does not
    answer."""
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        return 0, str(getattr(exc, "reason", exc))
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode("utf-8", errors="replace")


def daemon_facts(url: str) -> dict[str, Any]:
    status, body = _http(f"{url}/status")
    if status != 200 or not isinstance(body, dict):
        return {"url": url, "running": False, "healthy": False, "model": None}
    return {
        "url": url,
        "running": True,
        "healthy": bool(body.get("healthy")),
        "model": _serving(body),
    }


def _serving(status: dict[str, Any]) -> str | None:
    model = status.get("model")
    return model.get("path") if isinstance(model, dict) else None


def _frames(status: dict[str, Any]) -> int:
    return sum(int(s.get("frames", 0)) for s in status.get("streams", []))


def reload_and_check(url: str, expected_model: Path, timeout_s: float, log: Log) -> str | None:
    """Ask the daemon to reload (unless its pointer watch has loaded the model already), then
    wait until it serves `expected_model`, is healthy and delivers new results. None when it
    does; else the reason."""
    expected = str(expected_model.resolve())
    status, body = _http(f"{url}/status")
    if not (status == 200 and isinstance(body, dict) and _serving(body) == expected):
        status, body = _http(f"{url}/reload", method="POST", timeout_s=max(timeout_s, 5.0))
        if status == 0:
            return f"the daemon at {url} did not answer the reload ({body})"
        if not isinstance(body, dict) or not body.get("ok"):
            error = body.get("error") if isinstance(body, dict) else body
            return f"the daemon could not load the new model: {error}"
    deadline = time.monotonic() + timeout_s
    frames_at_reload: int | None = None
    reason = "no answer from the daemon"
    while time.monotonic() < deadline:
        status, body = _http(f"{url}/status")
        if status == 200 and isinstance(body, dict):
            serving = _serving(body)
            frames = _frames(body)
            if serving != expected:
                reason = f"the daemon serves {serving}, not {expected}"
            elif frames_at_reload is None:
                frames_at_reload = frames
                reason = "no results yet from the new model"
            elif frames <= frames_at_reload:
                reason = "no results from the new model"
            elif _http(f"{url}/healthz")[0] != 200:
                reason = "the daemon reports unhealthy streams (/healthz)"
            else:
                return None
        else:
            reason = f"the daemon stopped answering ({body})"
        time.sleep(POLL_S)
    log(f"health check: {reason}")
    return f"not healthy within {timeout_s:g} s: {reason}"


# --- operations ----------------------------------------------------------------------------------


def op_facts(layout: Layout, daemon_url: str = DEFAULT_DAEMON_URL) -> dict[str, Any]:
    from edge.jetson import read_l4t_release, tensorrt_version

    layout.root.mkdir(parents=True, exist_ok=True)
    tensorrt = tensorrt_version()
    meminfo = _meminfo_bytes()
    engines = (
        sorted(p.stem for p in layout.engines.glob("*.engine")) if layout.engines.is_dir() else []
    )
    return {
        "host": socket.gethostname(),
        "jetkit_version": jetkit_version(),
        "bundle_format": BUNDLE_FORMAT_VERSION,
        "machine": platform.machine() or None,
        "l4t": read_l4t_release(),
        "tensorrt": tensorrt,
        "compute_capability": _compute_capability() if tensorrt else None,
        "free_disk_bytes": shutil.disk_usage(layout.root).free,
        "available_memory_bytes": meminfo,
        "daemon": daemon_facts(daemon_url),
        "engines": engines,
        "installed": [f"{n}-{v}" for n, v in installed_releases(layout)],
        "active": load_state(layout).active,
    }


def _meminfo_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _compute_capability() -> str | None:
    try:
        from edge.backends.tensorrt import open_cuda

        cuda = open_cuda(0)
        try:
            return str(cuda.device_facts()["compute_capability"])
        finally:
            cuda.close()
    except Exception:  # no usable CUDA: preflight says so
        return None


def op_upload_offset(layout: Layout, release: str) -> dict[str, Any]:
    """How much of a bundle an earlier, interrupted upload left (to resume from there)."""
    part = layout.partial_upload(release)
    return {"offset": part.stat().st_size if part.is_file() else 0}


def op_receive(layout: Layout, release: str, offset: int, stream: IO[bytes]) -> dict[str, Any]:
    """Append `stream` to the partial upload from `offset` (what is past it is cut first)."""
    part = layout.partial_upload(release)
    part.parent.mkdir(parents=True, exist_ok=True)
    with open(part, "ab") as handle:
        if handle.tell() < offset:
            raise JetkitError(f"{part} holds {handle.tell()} bytes, less than offset {offset}")
        handle.truncate(offset)
        for chunk in iter(lambda: stream.read(_CHUNK), b""):
            handle.write(chunk)
        handle.flush()
        os.fsync(handle.fileno())
        size = handle.tell()
    return {"size": size}


def op_install(layout: Layout, release: str) -> dict[str, Any]:
    """Verify the uploaded bundle (every member against its digest) and extract it into
    `releases/<name>/<version>`; a release already there with the same index is kept."""
    part = layout.partial_upload(release)
    with device_lock(layout):
        try:
            index = read_index(part)
        except BundleError as exc:
            part.unlink(missing_ok=True)
            raise JetkitError(f"the upload of {release} is unusable ({exc}); flash again") from None
        target = layout.release(index.name, index.version)
        for stale in target.parent.glob(f".{index.version}.*"):  # an interrupted extraction
            shutil.rmtree(stale, ignore_errors=True)
        if target.is_dir():
            installed = json.loads((target / "index.json").read_text())
            if installed.get("members") == index.to_dict()["members"]:
                part.unlink(missing_ok=True)
                return {"release": index.release, "installed": False, "reused": True}
            if current_release(layout) == (index.name, index.version):
                raise JetkitError(
                    f"release {index.release} is active on the device with other content; "
                    "give the new bundle a new version"
                )
            shutil.rmtree(target)
        try:
            extract_bundle(part, target)
        except BundleError as exc:
            part.unlink(missing_ok=True)  # the next flash uploads it again, whole
            raise JetkitError(
                f"the upload failed verification and was deleted; flash again ({exc})"
            ) from None
        part.unlink(missing_ok=True)
    return {"release": index.release, "installed": True, "reused": False}


def build_command(
    jetkit: str, source: Path, plan: ModelPlan, out: Path, calib_cache: Path | None, workspace: str
) -> list[str]:
    """`jetkit build` for an engine of the plan on this device (argument list, no shell)."""
    command = [jetkit, "build", str(source), "--precision", plan.precision, "--out", str(out)]
    command += ["--workspace", workspace]
    if calib_cache is not None:
        command += ["--calib-cache", str(calib_cache)]
    return command


def op_prepare(
    layout: Layout,
    name: str,
    version: str,
    plan: ModelPlan,
    workspace: str = "1G",
    log: Log = _stderr,
) -> dict[str, Any]:
    """Put the plan's model in place in the release and name it in `release.json`: for TensorRT,
    the engine from the bundle or the cache, else built here (and cached)."""
    release = layout.release(name, version)
    if not release.is_dir():
        raise JetkitError(f"release {name}-{version} is not installed on the device")
    with device_lock(layout):
        if plan.runtime == "onnxruntime":
            model = plan.model
        else:
            assert plan.key is not None
            cache = layout.engine(plan.key["name"])
            if plan.prebuilt:
                _copy_atomic(release / plan.prebuilt, cache)
                _copy_atomic(_sidecar(release / plan.prebuilt), _sidecar(cache))
            elif not cache.is_file():
                _build_engine(layout, release, plan, cache, workspace, log)
            model = f"engines/{cache.name}"
            (release / "engines").mkdir(exist_ok=True)
            for source in (cache, _sidecar(cache)):
                _link_or_copy(source, release / "engines" / source.name)
        index = {"model": model, "precision": plan.precision, "runtime": plan.runtime}
        write_text_atomic(release / RELEASE_INDEX, json.dumps(index, indent=2) + "\n")
    return {"model": model}


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def _copy_atomic(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.copyfile(source, temp)
    os.replace(temp, target)


def _link_or_copy(source: Path, target: Path) -> None:
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temp.unlink(missing_ok=True)
    try:
        os.link(source, temp)
    except OSError:
        shutil.copyfile(source, temp)
    os.replace(temp, target)


def _build_engine(
    layout: Layout, release: Path, plan: ModelPlan, cache: Path, workspace: str, log: Log
) -> None:
    jetkit = shutil.which("jetkit") or str(Path(sys.executable).with_name("jetkit"))
    calib = release / plan.calib_cache if plan.calib_cache else None
    command = build_command(jetkit, release / plan.model, plan, cache, calib, workspace)
    log(f"building the engine on the device (minutes on a Jetson): {' '.join(command)}")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        log(f"  build: {line.rstrip()}")
    status = process.wait()
    if status != 0 or not cache.is_file():
        cache.unlink(missing_ok=True)
        raise JetkitError(
            f"the engine build on the device failed (exit {status}); its output is above. Try "
            "a smaller --workspace or another --precision"
        )


def op_commit(
    layout: Layout,
    name: str,
    version: str,
    precision: str,
    daemon_url: str,
    health_timeout_s: float,
    keep: int | None,
    log: Log = _stderr,
) -> dict[str, Any]:
    """Make the release current, have the daemon load it and check it; on any failure switch
    back to the previous release (and reload). Then keep the last `keep` releases (None: all).
    Survives the host going away (SIGHUP/SIGINT/SIGPIPE ignored)."""
    for signum in (signal.SIGHUP, signal.SIGINT, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_IGN)
    release = layout.release(name, version)
    model = _release_model(release)
    with device_lock(layout):
        state = load_state(layout)
        previous = state.active
        switch_current(layout, name, version)
        entry = {"name": name, "version": version, "precision": precision, "model": model}
        state.active = {**entry, "activated_unix_s": round(time.time(), 3)}
        state.record("activated", **entry)
        save_state(layout, state)
        log(f"activated {name}-{version} ({model})")
        daemon = daemon_facts(daemon_url)
        reason = None
        if daemon["running"]:
            log(f"reloading the daemon at {daemon_url} and waiting for it to be healthy")
            reason = reload_and_check(daemon_url, layout.current / model, health_timeout_s, log)
        else:
            log(f"no daemon answers at {daemon_url}: it will load the release when it starts")
        if reason is not None:
            rolled_back = _roll_back(layout, state, previous, reason, daemon_url, log)
            return {"ok": False, "reason": reason, "rolled_back": rolled_back}
        if daemon["running"]:
            state.record("healthy", name=name, version=version)
            save_state(layout, state)
        removed = _prune(layout, state, keep) if keep is not None else []
        return {"ok": True, "daemon": daemon["running"], "removed": removed}


def _release_model(release: Path) -> str:
    try:
        return str(json.loads((release / RELEASE_INDEX).read_text())["model"])
    except (OSError, ValueError, KeyError) as exc:
        raise JetkitError(f"{release} is not prepared ({RELEASE_INDEX}: {exc})") from None


def _roll_back(
    layout: Layout,
    state: DeviceState,
    previous: dict[str, Any] | None,
    reason: str,
    daemon_url: str,
    log: Log,
) -> str | None:
    """Back to `previous` (pointer, state, daemon); the release rolled back to, if any."""
    if previous is None:
        # Nothing to go back to: no pointer is better than one to a release that failed.
        layout.current.unlink(missing_ok=True)
        state.active = None
        state.record("failed", reason=reason)
        save_state(layout, state)
        return None
    switch_current(layout, previous["name"], previous["version"])
    failed = state.active
    state.active = {**previous, "activated_unix_s": round(time.time(), 3)}
    state.record(
        "rolled-back",
        name=previous["name"],
        version=previous["version"],
        precision=previous.get("precision"),
        model=previous.get("model"),
        failed=f"{failed['name']}-{failed['version']}" if failed else None,
        reason=reason,
    )
    save_state(layout, state)
    log(f"rolled back to {previous['name']}-{previous['version']}: {reason}")
    if daemon_facts(daemon_url)["running"]:
        _http(f"{daemon_url}/reload", method="POST", timeout_s=60.0)
    return f"{previous['name']}-{previous['version']}"


def _prune(layout: Layout, state: DeviceState, keep: int) -> list[str]:
    removed = []
    for name, version in releases_to_remove(installed_releases(layout), state, keep):
        if current_release(layout) == (name, version):
            continue
        shutil.rmtree(layout.release(name, version), ignore_errors=True)
        state.record("removed", name=name, version=version)
        removed.append(f"{name}-{version}")
    if removed:
        save_state(layout, state)
    return removed


def op_rollback(
    layout: Layout,
    to_version: str | None,
    daemon_url: str,
    health_timeout_s: float,
    log: Log = _stderr,
) -> dict[str, Any]:
    """Back to the previous release (or `to_version` of the active release's name), reloading
    and checking the daemon; on failure the release that was active stays."""
    state = load_state(layout)
    if state.active is None:
        raise JetkitError(f"nothing is active on {layout.root}; flash a bundle first")
    if to_version is None:
        target = state.previous()
        if target is None:
            raise JetkitError("there is no earlier release to roll back to")
    else:
        target = (state.active["name"], to_version)
    if target not in installed_releases(layout):
        raise JetkitError(
            f"release {target[0]}-{target[1]} is not installed on the device (installed: "
            + ", ".join(f"{n}-{v}" for n, v in installed_releases(layout))
            + ")"
        )
    precision = json.loads((layout.release(*target) / RELEASE_INDEX).read_text()).get("precision")
    result = op_commit(
        layout,
        target[0],
        target[1],
        precision or "?",
        daemon_url,
        health_timeout_s,
        keep=None,
        log=log,
    )
    return {**result, "release": f"{target[0]}-{target[1]}"}


def op_status(layout: Layout, daemon_url: str) -> dict[str, Any]:
    state = load_state(layout)
    current = current_release(layout)
    engines = []
    if layout.engines.is_dir():
        for engine in sorted(layout.engines.glob("*.engine")):
            engines.append({"key": engine.stem, "size_bytes": engine.stat().st_size})
    return {
        "root": str(layout.root),
        "current": f"{current[0]}-{current[1]}" if current else None,
        "active": state.active,
        "installed": [f"{n}-{v}" for n, v in installed_releases(layout)],
        "history": state.history[-20:],
        "engines": engines,
        "daemon": daemon_facts(daemon_url),
    }


# --- `jetkit agent OP` ---------------------------------------------------------------------------


def run_op(
    op: str, root: Path, args: dict[str, Any], stdin: IO[bytes] | None = None
) -> dict[str, Any]:
    layout = Layout(root)
    daemon_url = args.get("daemon_url", DEFAULT_DAEMON_URL)
    if op == "facts":
        return op_facts(layout, daemon_url)
    if op == "upload-offset":
        return op_upload_offset(layout, args["release"])
    if op == "receive":
        assert stdin is not None
        return op_receive(layout, args["release"], int(args["offset"]), stdin)
    if op == "install":
        return op_install(layout, args["release"])
    if op == "prepare":
        return op_prepare(
            layout,
            args["name"],
            args["version"],
            ModelPlan.from_dict(args["plan"]),
            args.get("workspace", "1G"),
        )
    if op == "commit":
        return op_commit(
            layout,
            args["name"],
            args["version"],
            args["precision"],
            daemon_url,
            float(args["health_timeout_s"]),
            int(args["keep"]),
        )
    if op == "rollback":
        return op_rollback(layout, args.get("to"), daemon_url, float(args["health_timeout_s"]))
    if op == "status":
        return op_status(layout, daemon_url)
    raise JetkitError(f"unknown agent operation {op!r}; update jetkit on the device")
