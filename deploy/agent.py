"""The device side of deploy: each operation a flash, rollback or status needs, run on the device
itself (in-process for a `file://` target, `jetkit agent OP` over SSH otherwise) and answering
one JSON object.

Operations that change the device hold an exclusive lock on `ROOT/.lock` (released by the OS
when the process dies, so a killed flash never leaves the device locked). `commit` (switch,
reload, health check, roll back on failure) ignores hang-ups: once started it finishes on the
device even if the host that started it goes away, so the device ends on a release that passed
its health check or on the previous one.

Only a refused connection means that no daemon runs: a daemon that answers late, or not with
200, failed its health check, and the release is rolled back. Older releases are pruned only
after the new one passed its check. A device with a trust store (`ROOT/trusted-keys/`) installs
only bundles signed by one of its keys, and prebuilt engines are taken only from such bundles.
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
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from deploy.agent_args import DEFAULT_DAEMON_URL, parse_agent_args
from deploy.bundle import BundleHead, extract_bundle, jetkit_version, read_head
from deploy.bundle_index import FORMAT_VERSION as BUNDLE_FORMAT_VERSION
from deploy.bundle_index import INDEX_NAME, SIGNATURE_NAME, BundleError, BundleIndex
from deploy.device import (
    RELEASE_INDEX,
    DeviceState,
    Layout,
    current_release,
    in_flight_releases,
    installed_releases,
    load_state,
    releases_to_remove,
    remove_stale_staged_states,
    save_state,
    stage_state,
    switch_release,
)
from deploy.plan import ModelPlan
from deploy.signing import PublicKey, trusted_keys, verify_index
from deploy.transport import PROGRESS
from edge.atomic import write_text_atomic
from edge.errors import JetkitError
from edge.service.config import TOKEN_ENV

Log = Callable[[str], None]
HTTP_TIMEOUT_S = 5.0
POLL_S = 0.5
_CHUNK = 1 << 20
# An upload nobody has touched for this long was abandoned; its part file goes.
STALE_UPLOAD_S = 24 * 3600.0
# A release installed this recently and never activated belongs to a flash still under way.
IN_FLIGHT_GRACE_S = 3600.0


def _stderr(message: str) -> None:
    """Progress for the host; once the host has gone (a closed pipe) the work goes on unseen."""
    try:
        print(f"{PROGRESS}{message}", file=sys.stderr, flush=True)
    except OSError:
        pass


def _lock_or_refuse(handle: IO[Any], busy: str) -> None:
    """An exclusive lock on the open file, released by the OS when the process dies; JetkitError
    `busy` where another process holds it."""
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise JetkitError(busy) from None


@contextmanager
def device_lock(layout: Layout) -> Iterator[None]:
    layout.root.mkdir(parents=True, exist_ok=True)
    with open(layout.root / ".lock", "a+") as handle:
        _lock_or_refuse(
            handle, f"another jetkit flash or rollback is changing {layout.root}; wait for it"
        )
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- the daemon ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """A daemon's answer: `status` 0 when it gave none, with `refused` when nothing listens
    (the one case that means "no daemon"); `body` parsed JSON, or text."""

    status: int
    body: Any
    refused: bool = False


def daemon_token(layout: Layout | None) -> str | None:
    """The daemon's HTTP token for POST /reload: `JETKIT_HTTP_TOKEN`, else `ROOT/http-token`."""
    token = os.environ.get(TOKEN_ENV)
    if not token and layout is not None and layout.http_token.is_file():
        token = layout.http_token.read_text(encoding="utf-8").strip()
    return token or None


def _http(
    url: str, method: str = "GET", timeout_s: float = HTTP_TIMEOUT_S, token: str | None = None
) -> Answer:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(
        url, method=method, data=b"" if method == "POST" else None, headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return Answer(0, str(reason), isinstance(reason, ConnectionRefusedError))
    try:
        return Answer(status, json.loads(body))
    except ValueError:
        return Answer(status, body.decode("utf-8", errors="replace"))


def daemon_facts(url: str) -> dict[str, Any]:
    """`running`: something answers at `url` (even late or wrongly: that is a daemon that is
    not well, not an absent one); `healthy` and `model` from its /status."""
    answer = _http(f"{url}/status")
    status = answer.body if answer.status == 200 and isinstance(answer.body, dict) else None
    problem = None if status or answer.refused else f"/status: {answer.status or answer.body}"
    return {
        "url": url,
        "running": not answer.refused,
        "healthy": bool(status and status.get("healthy")),
        "model": _serving(status) if status else None,
        "problem": problem,
    }


def _serving(status: dict[str, Any]) -> str | None:
    model = status.get("model")
    return model.get("path") if isinstance(model, dict) else None


def _frames(status: dict[str, Any]) -> int:
    return sum(int(s.get("frames", 0)) for s in status.get("streams", []))


def reload_and_check(
    url: str, expected_model: Path, timeout_s: float, log: Log, token: str | None = None
) -> str | None:
    """Ask the daemon to reload (unless its pointer watch has loaded the model already), then
    wait until it serves `expected_model`, is healthy and delivers new results. None when it
    does; else the reason."""
    expected = str(expected_model.resolve())
    answer = _http(f"{url}/status")
    if not (
        answer.status == 200 and isinstance(answer.body, dict) and _serving(answer.body) == expected
    ):
        answer = _http(f"{url}/reload", "POST", max(timeout_s, 5.0), token)
        if answer.status == 0:
            return f"the daemon at {url} did not answer the reload ({answer.body})"
        if answer.status in (401, 403):
            return (
                f"the daemon refused the reload ({answer.status}); put its http.token in "
                f"{TOKEN_ENV} or the device root's http-token file"
            )
        if not isinstance(answer.body, dict) or not answer.body.get("ok"):
            error = answer.body.get("error") if isinstance(answer.body, dict) else answer.body
            return f"the daemon could not load the new model: {error}"
    deadline = time.monotonic() + timeout_s
    frames_at_reload: int | None = None
    reason = "no answer from the daemon"
    while time.monotonic() < deadline:
        answer = _http(f"{url}/status")
        if answer.status == 200 and isinstance(answer.body, dict):
            serving = _serving(answer.body)
            frames = _frames(answer.body)
            if serving != expected:
                reason = f"the daemon serves {serving}, not {expected}"
            elif frames_at_reload is None:
                frames_at_reload = frames
                reason = "no results yet from the new model"
            elif frames <= frames_at_reload:
                reason = "no results from the new model"
            elif _http(f"{url}/healthz").status != 200:
                reason = "the daemon reports unhealthy streams (/healthz)"
            else:
                return None
        else:
            reason = f"the daemon stopped answering ({answer.status or answer.body})"
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
        "installed_content": {
            f"{n}-{v}": digest
            for n, v in installed_releases(layout)
            if (digest := installed_content(layout, n, v)) is not None
        },
        "trusted_keys": [key.line() for key in trusted_keys(layout.trusted_keys)],
        "active": load_state(layout).active,
    }


def installed_content(layout: Layout, name: str, version: str) -> str | None:
    """The content digest (`BundleIndex.content_digest`) of an installed release; None when its
    index cannot be read (a folder jetkit did not make)."""
    try:
        return _release_head(layout.release(name, version)).index.content_digest()
    except (OSError, ValueError, RecursionError, JetkitError):
        return None


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
    """Append `stream` to the partial upload from `offset` (what is past it is cut first). One
    writer per upload: a second flash of the same bundle at once is refused, not interleaved."""
    part = layout.partial_upload(release)
    part.parent.mkdir(parents=True, exist_ok=True)
    with open(part, "ab") as handle:
        _lock_or_refuse(
            handle, f"another flash is uploading {release} to {layout.root}; wait for it"
        )
        if handle.tell() < offset:
            raise JetkitError(f"{part} holds {handle.tell()} bytes, less than offset {offset}")
        handle.truncate(offset)
        for chunk in iter(lambda: stream.read(_CHUNK), b""):
            handle.write(chunk)
        handle.flush()
        os.fsync(handle.fileno())
        size = handle.tell()
    return {"size": size}


def remove_stale_uploads(layout: Layout, max_age_s: float = STALE_UPLOAD_S) -> list[str]:
    """Part files of uploads abandoned more than `max_age_s` ago (none being written)."""
    removed = []
    now = time.time()
    for part in layout.staging.glob("*.part") if layout.staging.is_dir() else ():
        try:
            with open(part, "ab") as handle:
                if now - os.fstat(handle.fileno()).st_mtime < max_age_s:
                    continue
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                part.unlink()
                removed.append(part.name)
        except (BlockingIOError, FileNotFoundError):
            continue
    return removed


def verify_trusted(
    layout: Layout, index_bytes: bytes, signature: bytes | None, source: str
) -> PublicKey | None:
    """The trusted key that signed these index bytes; None on a device without a trust store.
    A device with one refuses what none of its keys signed (BundleError)."""
    keys = trusted_keys(layout.trusted_keys)
    if not keys:
        return None
    return verify_index(index_bytes, signature, keys, source)


def op_install(layout: Layout, release: str, as_version: str | None = None) -> dict[str, Any]:
    """Verify the uploaded bundle (its signature where the device has a trust store, every
    member against its digest) and extract it into `releases/<name>/<version>` (`as_version`
    instead of the bundle's version: a forced reinstall). A release already there is kept when
    it holds the same files, and is never replaced by other content."""
    part = layout.partial_upload(release)
    with device_lock(layout):
        remove_stale_uploads(layout)
        try:
            head = read_head(part)
        except BundleError as exc:
            part.unlink(missing_ok=True)
            raise JetkitError(f"the upload of {release} is unusable ({exc}); flash again") from None
        try:
            verify_trusted(layout, head.index_bytes, head.signature, f"bundle {head.index.release}")
        except BundleError:
            part.unlink(missing_ok=True)  # nothing of an untrusted bundle stays
            raise
        index = head.index
        version = as_version or index.version
        target = layout.release(index.name, version)
        for stale in target.parent.glob(f".{version}.*"):  # an interrupted extraction
            shutil.rmtree(stale, ignore_errors=True)
        if target.is_dir():
            part.unlink(missing_ok=True)
            if installed_content(layout, index.name, version) == index.content_digest():
                return {"release": f"{index.name}-{version}", "installed": False, "reused": True}
            raise JetkitError(
                f"release {index.name}-{version} is installed on the device with other content; "
                "give the new bundle a new version, or flash --force to install it beside"
            )
        try:
            extract_bundle(part, target)
        except BundleError as exc:
            part.unlink(missing_ok=True)  # the next flash uploads it again, whole
            raise JetkitError(
                f"the upload failed verification and was deleted; flash again ({exc})"
            ) from None
        part.unlink(missing_ok=True)
    return {"release": f"{index.name}-{version}", "installed": True, "reused": False}


def _release_head(release: Path) -> BundleHead:
    """An installed release's index and signature, as the bundle carried them."""
    index_bytes = (release / INDEX_NAME).read_bytes()
    signature_path = release / SIGNATURE_NAME
    signature = signature_path.read_bytes() if signature_path.is_file() else None
    index = BundleIndex.from_dict(json.loads(index_bytes), str(release / INDEX_NAME))
    return BundleHead(index, index_bytes, signature)


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
                _require_signed_engines(layout, release)
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


def _require_signed_engines(layout: Layout, release: Path) -> None:
    """Deserializing an engine runs code on the device: a prebuilt one is taken only from a
    release whose bundle a trusted key signed (checked again here, on the installed files)."""
    head = _release_head(release)
    source = f"release {release.parent.name}-{release.name}"
    if verify_trusted(layout, head.index_bytes, head.signature, source) is None:
        raise JetkitError(
            f"{source} brings a prebuilt engine, and this device has no trusted keys "
            f"({layout.trusted_keys}): prebuilt engines are taken only from signed bundles; "
            "sign the bundle and trust its key there, or let the device build the engine"
        )


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
    back to the previous release (and reload). Then, once it passed, keep the last `keep`
    releases (None: all). Survives the host going away (SIGHUP/SIGINT/SIGPIPE ignored).

    The state that a rollback writes is staged before the switch, so that a disk that fills up
    meanwhile cannot leave `current` on a failed release: `current` and `state.json` change
    together, to the checked new release or back to the old one."""
    for signum in (signal.SIGHUP, signal.SIGINT, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_IGN)
    release = layout.release(name, version)
    model = _release_model(release)
    token = daemon_token(layout)
    with device_lock(layout):
        remove_stale_staged_states(layout)
        state = load_state(layout)
        previous = state.active
        entry = {"name": name, "version": version, "precision": precision, "model": model}
        activated = DeviceState(state.active, list(state.history))
        activated.active = {**entry, "activated_unix_s": round(time.time(), 3)}
        activated.record("activated", **entry)
        back = _rolled_back_state(activated, previous)
        staged_back = stage_state(layout, back)
        try:
            switch_release(layout, (name, version), stage_state(layout, activated))
        except BaseException:
            staged_back.unlink(missing_ok=True)
            raise
        log(f"activated {name}-{version} ({model})")
        daemon = daemon_facts(daemon_url)
        if not daemon["running"]:
            staged_back.unlink(missing_ok=True)
            log(
                f"no daemon listens at {daemon_url}: it will load the release when it starts; "
                "older releases are kept until a release passes a health check"
            )
            return {"ok": True, "daemon": False, "removed": []}
        if daemon["problem"] is not None:
            reason = (
                f"the daemon at {daemon_url} does not answer as it should ({daemon['problem']}): "
                "a stalled daemon fails the health check"
            )
        else:
            log(f"reloading the daemon at {daemon_url} and waiting for it to be healthy")
            reason = reload_and_check(
                daemon_url, layout.current / model, health_timeout_s, log, token
            )
        if reason is not None:
            rolled_back = _roll_back(layout, back, staged_back, reason, daemon_url, log)
            return {"ok": False, "reason": reason, "rolled_back": rolled_back}
        staged_back.unlink(missing_ok=True)
        activated.record("healthy", name=name, version=version)
        removed = _prune(layout, activated, keep) if keep is not None else []
        _save_best_effort(layout, activated, log)
        return {"ok": True, "daemon": True, "removed": removed}


def _rolled_back_state(failed: DeviceState, previous: dict[str, Any] | None) -> DeviceState:
    """The state after rolling `failed.active` back to `previous` (none: no release active)."""
    back = DeviceState(None, list(failed.history))
    assert failed.active is not None
    release = f"{failed.active['name']}-{failed.active['version']}"
    if previous is None:
        back.record("failed", name=failed.active["name"], version=failed.active["version"])
        return back
    back.active = {**previous, "activated_unix_s": round(time.time(), 3)}
    back.record(
        "rolled-back",
        name=previous["name"],
        version=previous["version"],
        precision=previous.get("precision"),
        model=previous.get("model"),
        failed=release,
    )
    return back


def _save_best_effort(layout: Layout, state: DeviceState, log: Log) -> None:
    """Details the device can do without (a reason, a check that passed): a full disk costs
    the record, not the release."""
    try:
        save_state(layout, state)
    except OSError as exc:
        log(f"could not record the outcome in {layout.state} ({exc.strerror}); free disk space")


def _release_model(release: Path) -> str:
    try:
        return str(json.loads((release / RELEASE_INDEX).read_text())["model"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise JetkitError(f"{release} is not prepared ({RELEASE_INDEX}: {exc})") from None


def _roll_back(
    layout: Layout,
    back: DeviceState,
    staged_back: Path,
    reason: str,
    daemon_url: str,
    log: Log,
) -> str | None:
    """Back to `back.active` (pointer and the state `back` staged before the switch, then the
    daemon); the release rolled back to, if any. Without one, no pointer is better than one to
    a release that failed."""
    target = (back.active["name"], back.active["version"]) if back.active else None
    switch_release(layout, target, staged_back)
    back.history[-1]["reason"] = reason
    _save_best_effort(layout, back, log)
    if target is None:
        log(f"no earlier release to return to: {reason}")
        return None
    log(f"rolled back to {target[0]}-{target[1]}: {reason}")
    daemon = daemon_facts(daemon_url)
    if daemon["running"] and daemon["problem"] is None:
        # A stalled daemon is not waited for: its pointer watch finds the old release.
        _http(f"{daemon_url}/reload", "POST", 60.0, daemon_token(layout))
    return f"{target[0]}-{target[1]}"


def _prune(layout: Layout, state: DeviceState, keep: int) -> list[str]:
    """Remove releases beyond `keep` (recording it in `state`, saved by the caller), but never
    the active one or another flash's release that is not yet active."""
    installed = installed_releases(layout)
    now = time.time()
    ages = {r: now - layout.release(*r).stat().st_mtime for r in installed}
    protected = in_flight_releases(ages, state, IN_FLIGHT_GRACE_S)
    removed = []
    for name, version in releases_to_remove(installed, state, keep, protected):
        if current_release(layout) == (name, version):
            continue
        shutil.rmtree(layout.release(name, version), ignore_errors=True)
        state.record("removed", name=name, version=version)
        removed.append(f"{name}-{version}")
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


def run_op(op: str, root: Path, args: object, stdin: IO[bytes] | None = None) -> dict[str, Any]:
    layout = Layout(root)
    a = parse_agent_args(op, args)
    if op == "facts":
        return op_facts(layout, a["daemon_url"])
    if op == "upload-offset":
        return op_upload_offset(layout, a["release"])
    if op == "receive":
        assert stdin is not None
        return op_receive(layout, a["release"], a["offset"], stdin)
    if op == "install":
        return op_install(layout, a["release"], a["as_version"])
    if op == "prepare":
        return op_prepare(layout, a["name"], a["version"], a["plan"], a["workspace"])
    if op == "commit":
        return op_commit(
            layout,
            a["name"],
            a["version"],
            a["precision"],
            a["daemon_url"],
            a["health_timeout_s"],
            a["keep"],
        )
    if op == "rollback":
        return op_rollback(layout, a["to"], a["daemon_url"], a["health_timeout_s"])
    assert op == "status"
    return op_status(layout, a["daemon_url"])
