"""A device root: the folders and files jetkit keeps on a Jetson, and the pure rules over them.

    ROOT/
      releases/<name>/<version>/   an extracted bundle + release.json (the model the daemon runs)
      current                      symlink → releases/<name>/<version> (what the daemon serves)
      engines/<key>.engine         engines built on this device, keyed by `EngineKey.name`,
      engines/<key>.json           each with its manifest
      staging/                     uploads in progress (`<release>.jkb.part`)
      state.json                   the active release and the history of changes
      trusted-keys/*.pub           public keys whose signed bundles this device takes (optional;
                                   with none, any bundle is taken but prebuilt engines are not)
      http-token                   the daemon's HTTP token, if it has one (sent with POST /reload)

`current` only ever changes by renaming a new symlink over it, so the daemon (and a reboot) sees
the old release or the new one, never none; `current` and `state.json` change together
(`switch_release`), so that they agree whatever fails in between.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.atomic import stage_bytes, write_bytes_atomic
from edge.errors import JetkitError

RELEASES = "releases"
CURRENT = "current"
ENGINES = "engines"
STAGING = "staging"
STATE = "state.json"
RELEASE_INDEX = "release.json"  # edge.service.model reads it
TRUSTED_KEYS = "trusted-keys"
HTTP_TOKEN = "http-token"
STATE_SCHEMA = "jetkit-device-state/1"
HISTORY_LIMIT = 200


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def releases(self) -> Path:
        return self.root / RELEASES

    @property
    def current(self) -> Path:
        return self.root / CURRENT

    @property
    def engines(self) -> Path:
        return self.root / ENGINES

    @property
    def staging(self) -> Path:
        return self.root / STAGING

    @property
    def state(self) -> Path:
        return self.root / STATE

    @property
    def trusted_keys(self) -> Path:
        return self.root / TRUSTED_KEYS

    @property
    def http_token(self) -> Path:
        return self.root / HTTP_TOKEN

    def release(self, name: str, version: str) -> Path:
        return self.releases / name / version

    def partial_upload(self, release: str) -> Path:
        return self.staging / f"{release}.jkb.part"

    def engine(self, key_name: str) -> Path:
        return self.engines / f"{key_name}.engine"


# --- state ---------------------------------------------------------------------------------------


@dataclass
class DeviceState:
    """`active`: `{"name", "version", "precision", "model", "activated_unix_s"}` or None.
    `history`: events, oldest first (`event`: activated, rolled-back, failed, removed)."""

    active: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    def record(self, event: str, **details: Any) -> dict[str, Any]:
        entry = {"event": event, "unix_s": round(time.time(), 3), **details}
        self.history = [*self.history, entry][-HISTORY_LIMIT:]
        return entry

    def activations(self) -> list[tuple[str, str]]:
        """(name, version) of each activation, oldest first, repeats kept."""
        return [
            (e["name"], e["version"])
            for e in self.history
            if e.get("event") in ("activated", "rolled-back") and "name" in e and "version" in e
        ]

    def previous(self) -> tuple[str, str] | None:
        """The release active before the current one (what a rollback returns to)."""
        if self.active is None:
            return None
        current = (self.active["name"], self.active["version"])
        for release in reversed(self.activations()):
            if release != current:
                return release
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"schema": STATE_SCHEMA, "active": self.active, "history": self.history}

    @classmethod
    def from_dict(cls, data: object, source: str) -> DeviceState:
        if not isinstance(data, dict) or data.get("schema") != STATE_SCHEMA:
            raise JetkitError(f"{source} is not a jetkit device state ({STATE_SCHEMA})")
        active, history = data.get("active"), data.get("history", [])
        if active is not None and not (
            isinstance(active, dict) and {"name", "version"} <= set(active)
        ):
            raise JetkitError(f"{source}: active must be null or name a release")
        if not isinstance(history, list) or not all(_is_event(e) for e in history):
            raise JetkitError(
                f"{source}: history must be a list of events (name and version strings)"
            )
        return cls(active, history)


def _is_event(event: object) -> bool:
    return isinstance(event, dict) and all(
        isinstance(event.get(key), str) for key in ("name", "version") if key in event
    )


def load_state(layout: Layout) -> DeviceState:
    try:
        text = layout.state.read_text(encoding="utf-8")
    except FileNotFoundError:
        return DeviceState()
    except UnicodeDecodeError:
        raise JetkitError(f"{layout.state} is not UTF-8 text; restore or remove it") from None
    try:
        return DeviceState.from_dict(json.loads(text), str(layout.state))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, a number past int's limit
        raise JetkitError(
            f"{layout.state} is not valid JSON ({exc}); restore or remove it"
        ) from None


def _state_bytes(state: DeviceState) -> bytes:
    return (json.dumps(state.to_dict(), indent=2) + "\n").encode("utf-8")


def save_state(layout: Layout, state: DeviceState) -> None:
    write_bytes_atomic(layout.state, _state_bytes(state))


def stage_state(layout: Layout, state: DeviceState) -> Path:
    """`state` written and synced beside `state.json`, not yet in its place: the step of a
    change that needs disk space, done before anything the daemon sees changes."""
    return stage_bytes(layout.state, _state_bytes(state))


def remove_stale_staged_states(layout: Layout) -> None:
    """Staged states a killed commit left (call holding the device lock)."""
    for temp in layout.root.glob(f".{STATE}.*.tmp"):
        temp.unlink(missing_ok=True)


def switch_release(layout: Layout, release: tuple[str, str] | None, staged: Path) -> None:
    """Point `current` at `release` (None: remove it) and put the staged state in place, so
    that on any failure both are as they were: the state is written before (`stage_state`),
    and renaming it into place needs no space. A failed rename points `current` back."""
    before = os.readlink(layout.current) if layout.current.is_symlink() else None
    try:
        if release is None:
            layout.current.unlink(missing_ok=True)
        else:
            switch_current(layout, *release)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    try:
        os.replace(staged, layout.state)
    except BaseException:
        staged.unlink(missing_ok=True)
        if before is None:
            layout.current.unlink(missing_ok=True)
        else:
            _point(layout, before)
        raise


# --- the pointer ---------------------------------------------------------------------------------


def switch_current(layout: Layout, name: str, version: str) -> None:
    """Point `current` at a release: a new relative symlink renamed over the old one (atomic on
    POSIX; never unlink-then-create)."""
    target = layout.release(name, version)
    if not target.is_dir():
        raise JetkitError(f"release {name} {version} is not on this device ({target})")
    _point(layout, os.path.relpath(target, layout.root))


def _point(layout: Layout, relative_target: str) -> None:
    link = layout.root / f".{CURRENT}.{os.getpid()}.new"
    link.unlink(missing_ok=True)
    os.symlink(relative_target, link)
    os.replace(link, layout.current)


def current_release(layout: Layout) -> tuple[str, str] | None:
    """(name, version) `current` points at, or None."""
    if not layout.current.is_symlink():
        return None
    target = Path(os.readlink(layout.current))
    parts = target.parts
    if len(parts) == 3 and parts[0] == RELEASES:
        return parts[1], parts[2]
    return None


# --- pruning -------------------------------------------------------------------------------------


def releases_to_remove(
    installed: list[tuple[str, str]],
    state: DeviceState,
    keep: int,
    protected: frozenset[tuple[str, str]] = frozenset(),
) -> list[tuple[str, str]]:
    """Which installed releases go so that `keep` remain: the most recently activated are kept,
    and the active one always (never-activated ones go first); `protected` ones (another
    flash's release, installed and not yet activated) never go. Pure."""
    if keep < 1:
        raise JetkitError(f"--keep must be >= 1, got {keep}")
    recency: dict[tuple[str, str], int] = {}
    for order, release in enumerate(state.activations()):
        recency[release] = order
    active = (state.active["name"], state.active["version"]) if state.active else None
    ranked = sorted(installed, key=lambda r: (r == active, recency.get(r, -1)), reverse=True)
    return sorted(r for r in ranked[keep:] if r not in protected)


def in_flight_releases(
    installed_age_s: dict[tuple[str, str], float], state: DeviceState, grace_s: float
) -> frozenset[tuple[str, str]]:
    """Releases never activated and installed (or prepared) less than `grace_s` ago: a
    concurrent flash's, between its install and its commit. Pure."""
    activated = set(state.activations())
    return frozenset(
        release
        for release, age_s in installed_age_s.items()
        if release not in activated and age_s < grace_s
    )


def installed_releases(layout: Layout) -> list[tuple[str, str]]:
    if not layout.releases.is_dir():
        return []
    return sorted(
        (name_dir.name, version_dir.name)
        for name_dir in layout.releases.iterdir()
        if name_dir.is_dir()
        for version_dir in name_dir.iterdir()
        if version_dir.is_dir() and not version_dir.name.startswith(".")
    )
