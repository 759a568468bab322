"""`jetkit flash` to one device, step by step: verify the bundle here, preflight (device facts,
plan, disk), upload to staging (resumed where an interrupted upload stopped), verify and install
on the device, put the engine in place (bundle, cache, or built there), then commit on the
device: switch `current`, reload the daemon, health check, roll back on failure.

Until the commit, the device runs what it ran before; a failure up to there is an error (exit 2)
naming the device and the step. A failed commit is `rolled back: <reason>` (exit 1).

A bundle of a release the device holds with the same files is not uploaded again (and, already
active, changes nothing); with other files it is refused, or with `force` installed beside as
`VERSION+<digest>`. A device with a trust store is sent only bundles one of its keys signed, and
prebuilt engines are used only from such bundles (else the engine is built there).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.bundle import BundleHead, verify_and_read_head
from deploy.bundle_index import BundleIndex, gate_outcomes
from deploy.plan import (
    AUTO,
    PRECISIONS,
    DeviceFacts,
    ModelPlan,
    choose_precision,
    install_version,
    preflight,
)
from deploy.signing import PublicKey, parse_public_key, verify_index
from deploy.transport import AgentTransport
from deploy.trt_checks import check_planned_build
from edge.errors import JetkitError

Log = Callable[[str], None]


@dataclass(frozen=True)
class FlashSettings:
    precision: str = AUTO  # or one of PRECISIONS
    keep: int = 3
    health_timeout_s: float = 60.0
    daemon_url: str = "http://127.0.0.1:8080"
    workspace: str = "1G"
    force: bool = False

    def __post_init__(self) -> None:
        if self.precision not in (AUTO, *PRECISIONS):
            raise JetkitError(
                f"--precision must be {AUTO} or one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        if self.keep < 1:
            raise JetkitError(f"--keep must be >= 1, got {self.keep}")
        if not 0 < self.health_timeout_s <= 3600:
            raise JetkitError(
                f"--health-timeout must be in (0, 3600] s, got {self.health_timeout_s}"
            )
        if not self.daemon_url.startswith(("http://", "https://")):
            raise JetkitError(f"--daemon {self.daemon_url}: expected http://HOST:PORT")
        from calibration.engine import parse_size_bytes

        parse_size_bytes(self.workspace)


class RolledBack(JetkitError):
    """The release was activated, failed its check, and the device went back (exit 1)."""


@dataclass(frozen=True)
class FlashResult:
    release: str
    plan: ModelPlan
    uploaded_bytes: int
    resumed_from: int
    installed: bool
    daemon: bool
    removed: list[str]
    changed: bool = True  # False: the release was active already, with the same files

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": True,
            "changed": self.changed,
            "release": self.release,
            "plan": self.plan.to_dict(),
            "uploaded_bytes": self.uploaded_bytes,
            "resumed_from": self.resumed_from,
            "installed": self.installed,
            "daemon": self.daemon,
            "removed": self.removed,
        }


# Larger ONNX models are verified but not held in memory to check TensorRT's rules on them.
MAX_CHECKED_MODEL_BYTES = 256 << 20


def upload_name(index: BundleIndex) -> str:
    """The staging name of an upload: the release and a digest of its index, so that a partial
    upload is only ever resumed with the same bundle."""
    digest = hashlib.sha256(json.dumps(index.to_dict(), sort_keys=True).encode()).hexdigest()
    return f"{index.release}-{digest[:16]}"


def device_signer(head: BundleHead, facts: DeviceFacts) -> PublicKey | None:
    """The device's trusted key that signed the bundle; None where it trusts no key. A device
    with a trust store is sent nothing its keys did not sign (BundleError, before the upload)."""
    keys = [
        parse_public_key(line, f"{facts.host}: trusted key {k}")
        for k, line in enumerate(facts.trusted_keys)
    ]
    if not keys:
        return None
    return verify_index(head.index_bytes, head.signature, keys, f"bundle {head.index.release}")


def flash(
    bundle: Path, transport: AgentTransport, settings: FlashSettings, log: Log
) -> FlashResult:
    device = transport.target.name
    log(f"[1/6] verifying {bundle}")
    # The ONNX models are kept too, to check the one the device will build against its TensorRT.
    head, kept = verify_and_read_head(bundle, ("gate-report", "model"), MAX_CHECKED_MODEL_BYTES)
    index = head.index
    reports = {
        m.path: kept[m.path] for m in index.members if m.role == "gate-report" and m.path in kept
    }
    log(f"[2/6] preflight on {device}")
    daemon = {"daemon_url": settings.daemon_url}
    facts = DeviceFacts.from_dict(transport.call("facts", daemon))
    signer = device_signer(head, facts)
    if signer is not None:
        log(f"  signed by key {signer.key_id}, which {device} trusts")
    version, installed = install_version(index, facts, settings.force)
    release = f"{index.name}-{version}"
    precision, why = settings.precision, "as asked"
    if precision == AUTO:
        precision, why = choose_precision(index, facts, gate_outcomes(reports))
    plan = preflight(index, precision, facts, installed, settings.workspace, signer is not None)
    running = facts.daemon and facts.daemon.get("running")
    log(
        f"  {device}: L4T {facts.l4t or '-'}, TensorRT {facts.tensorrt or '-'}, "
        f"{facts.free_disk_bytes / 2**20:.0f} MiB free, daemon "
        + ("running" if running else f"not running at {settings.daemon_url}")
    )
    log(f"  precision: {precision} ({why})")
    log(f"  plan: {plan.describe()}")
    if plan.runtime == "tensorrt" and signer is None and index.engines:
        log(
            f"  the bundle's prebuilt engines are not used: {device} takes engines only from "
            "bundles signed by a key in its trust store"
        )
    if plan.runtime == "tensorrt" and plan.needs_build and facts.tensorrt:
        source = next(m for m in index.models if m.file == plan.model)
        check_planned_build(kept.get(plan.model), source, plan.precision, facts.tensorrt, log)
    if installed and facts.active == (index.name, version):
        log(f"[3/6] {release} is installed and active on {device} with the same files: done")
        return FlashResult(release, plan, 0, 0, False, bool(running), [], changed=False)
    name = upload_name(index)
    size = bundle.stat().st_size
    resumed_from = 0
    if installed:
        log(f"[3/6] {release} is installed on {device} with the same files: no upload")
    else:
        offset = int(transport.call("upload-offset", {"release": name})["offset"])
        resumed_from = offset if 0 < offset <= size else 0
        verb = f"resuming at {resumed_from / 2**20:.1f} MiB of" if resumed_from else "uploading"
        log(f"[3/6] {verb} {size / 2**20:.1f} MiB to {device}")
        with open(bundle, "rb") as handle:
            handle.seek(resumed_from)
            received = transport.call(
                "receive", {"release": name, "offset": resumed_from}, stdin=handle
            )
        if int(received["size"]) != size:
            raise JetkitError(f"{device}: upload: {received['size']} of {size} bytes arrived")
        log(f"[4/6] verifying every member on {device} and installing {release}")
        as_version = version if version != index.version else None
        transport.call("install", {"release": name, "as_version": as_version})
    step = "building on the device" if plan.needs_build else "putting the model in place"
    log(f"[5/6] {step}")
    transport.call(
        "prepare",
        {
            "name": index.name,
            "version": version,
            "plan": plan.to_dict(),
            "workspace": settings.workspace,
        },
    )
    log(f"[6/6] activating {release} on {device}")
    result = transport.call(
        "commit",
        {
            "name": index.name,
            "version": version,
            "precision": precision,
            "daemon_url": settings.daemon_url,
            "health_timeout_s": settings.health_timeout_s,
            "keep": settings.keep,
        },
    )
    if not result.get("ok"):
        back = result.get("rolled_back")
        where = f"now running {back} again" if back else "no earlier release to return to"
        raise RolledBack(f"rolled back: {result.get('reason')} ({device}: {where})")
    return FlashResult(
        release=release,
        plan=plan,
        uploaded_bytes=0 if installed else size - resumed_from,
        resumed_from=resumed_from,
        installed=not installed,
        daemon=bool(result.get("daemon")),
        removed=list(result.get("removed", [])),
    )
