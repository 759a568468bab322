"""The bundle format: its index (`index.json`, every member's path, sha256, size and role, the
models and engines it holds) with validation whose errors name the field, and the pure checks on
member names, release names and tar entries that reading a bundle applies before writing
anything. No I/O here; `deploy.bundle` writes and reads the tar."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from edge.errors import JetkitError

FORMAT = "jetkit-bundle"
FORMAT_VERSION = 1
INDEX_NAME = "index.json"
SIGNATURE_NAME = "index.sig"  # deploy.signing: right after the index, in signed bundles
MODELS_DIR = "models"
ENGINES_DIR = "engines"
BUNDLE_SUFFIX = ".jkb"
ROLES = ("model", "manifest", "calibration-cache", "gate-report", "engine")

# Far above any detector a Jetson runs; they stop a crafted bundle from filling the device.
MAX_MEMBERS = 256
MAX_MEMBER_BYTES = 4 << 30
MAX_TOTAL_BYTES = 8 << 30
MAX_INDEX_BYTES = 1 << 20
MAX_SIGNATURE_BYTES = 4096

_SHA256 = re.compile(r"[0-9a-f]{64}")
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


class BundleError(JetkitError):
    """A bundle that cannot be trusted or used; the message names the bundle and the fix."""


# --- the index -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """One file of the bundle: where it is inside, its digest and size, and what it is."""

    path: str
    sha256: str
    size_bytes: int
    role: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "role": self.role,
        }


@dataclass(frozen=True)
class BundleModel:
    """A model file with its manifest (both `Member.path`s) and what the manifest says it is:
    kind and precision, the largest batch, and for INT8 the runtime its Q/DQ format is for
    (`tensorrt` or `cpu`)."""

    file: str
    manifest: str
    kind: str
    precision: str
    max_batch: int = 1
    runtime: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "manifest": self.manifest,
            "kind": self.kind,
            "precision": self.precision,
            "max_batch": self.max_batch,
            "runtime": self.runtime,
        }


@dataclass(frozen=True)
class BundleEngine:
    """A prebuilt engine, its manifest, and the engine key (`calibration.engine.EngineKey`)."""

    file: str
    manifest: str
    key: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "manifest": self.manifest, "key": dict(self.key)}


@dataclass(frozen=True)
class BundleIndex:
    name: str
    version: str
    members: tuple[Member, ...]
    models: tuple[BundleModel, ...]
    engines: tuple[BundleEngine, ...] = ()
    created_unix_s: float = 0.0
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_release_name(self.name, "name")
        check_release_name(self.version, "version")
        paths = [m.path for m in self.members]
        if len(set(paths)) != len(paths):
            raise BundleError("index.members lists a path twice")
        known = set(paths)
        for k, model in enumerate(self.models):
            for key in ("file", "manifest"):
                if getattr(model, key) not in known:
                    raise BundleError(f"index.models[{k}].{key} is not a member")
        for k, engine in enumerate(self.engines):
            for key in ("file", "manifest"):
                if getattr(engine, key) not in known:
                    raise BundleError(f"index.engines[{k}].{key} is not a member")

    @property
    def release(self) -> str:
        return f"{self.name}-{self.version}"

    def content_digest(self) -> str:
        """sha256 over the members (path, digest, size, role): equal exactly when two bundles
        hold the same files, whenever and by whichever jetkit they were made."""
        members = sorted((m.path, m.sha256, m.size_bytes, m.role) for m in self.members)
        return hashlib.sha256(json.dumps(members).encode("utf-8")).hexdigest()

    def member(self, path: str) -> Member:
        for member in self.members:
            if member.path == path:
                return member
        raise BundleError(f"the bundle has no member {path}")

    def model(self, precision: str) -> BundleModel | None:
        """The ONNX model of that precision (`fp32`, `fp16`, `int8`), if the bundle has one."""
        found = [m for m in self.models if m.precision == precision]
        return found[0] if found else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": self.format_version,
            "name": self.name,
            "version": self.version,
            "created_unix_s": self.created_unix_s,
            **self.extra,
            "models": [m.to_dict() for m in self.models],
            "engines": [e.to_dict() for e in self.engines],
            "members": [m.to_dict() for m in self.members],
        }

    @classmethod
    def from_dict(cls, data: object, source: str) -> BundleIndex:
        """Validate an index read from a bundle; errors name the field."""
        if not isinstance(data, dict):
            raise BundleError(f"{source}: {INDEX_NAME} is not a JSON object")
        if data.get("format") != FORMAT:
            raise BundleError(f"{source} is not a jetkit bundle (index.format is not {FORMAT!r})")
        version = data.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise BundleError(f"{source}: index.format_version must be an integer")
        if version > FORMAT_VERSION:
            raise BundleError(
                f"{source} is bundle format {version}, newer than this jetkit reads "
                f"({FORMAT_VERSION}); upgrade jetkit (pip install -U jetkit)"
            )
        try:
            members = tuple(
                _member_from(item, f"index.members[{k}]")
                for k, item in enumerate(_list(data, "members"))
            )
            models = tuple(
                BundleModel(
                    file=_text(item, "file", f"index.models[{k}]"),
                    manifest=_text(item, "manifest", f"index.models[{k}]"),
                    kind=_text(item, "kind", f"index.models[{k}]"),
                    precision=_text(item, "precision", f"index.models[{k}]"),
                    max_batch=_count(item, "max_batch", f"index.models[{k}]"),
                    runtime=_optional_text(item, "runtime", f"index.models[{k}]"),
                )
                for k, item in enumerate(_list(data, "models"))
            )
            engines = tuple(
                BundleEngine(
                    file=_text(item, "file", f"index.engines[{k}]"),
                    manifest=_text(item, "manifest", f"index.engines[{k}]"),
                    key=_mapping(item, "key", f"index.engines[{k}]"),
                )
                for k, item in enumerate(_list(data, "engines"))
            )
            created = data.get("created_unix_s", 0.0)
            # Finite and within float range (JSON has NaN, Infinity and 400-digit integers).
            if (
                not isinstance(created, (int, float))
                or isinstance(created, bool)
                or not -sys.float_info.max <= created <= sys.float_info.max
            ):
                raise BundleError("index.created_unix_s must be a number")
            known = {"format", "format_version", "name", "version", "created_unix_s"}
            known |= {"models", "engines", "members"}
            return cls(
                name=_text(data, "name", "index"),
                version=_text(data, "version", "index"),
                members=members,
                models=models,
                engines=engines,
                created_unix_s=float(created),
                format_version=version,
                extra={k: v for k, v in data.items() if k not in known},
            )
        except BundleError as exc:
            raise BundleError(f"{source}: {exc}") from None


def _list(data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise BundleError(f"index.{key} must be a list")
    return value


def _text(data: object, key: str, where: str) -> str:
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, str) or not value:
        raise BundleError(f"{where}.{key} must be a non-empty string")
    return value


def _optional_text(data: object, key: str, where: str) -> str | None:
    if not isinstance(data, dict) or data.get(key) is None:
        return None
    return _text(data, key, where)


def _count(data: object, key: str, where: str) -> int:
    value = data.get(key, 1) if isinstance(data, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise BundleError(f"{where}.{key} must be a positive integer")
    return value


def _mapping(data: object, key: str, where: str) -> dict[str, Any]:
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, dict):
        raise BundleError(f"{where}.{key} must be an object")
    return value


def _member_from(item: object, where: str) -> Member:
    path = _text(item, "path", where)
    problem = member_path_problem(path)
    if path in (INDEX_NAME, SIGNATURE_NAME):
        # Read apart from the members: a digest the index gave them would never be checked.
        problem = "the index and its signature are not members it lists"
    if problem:
        raise BundleError(f"{where}.path {path!r}: {problem}")
    sha256 = _text(item, "sha256", where)
    if not _SHA256.fullmatch(sha256):
        raise BundleError(f"{where}.sha256 must be 64 lower-case hex digits")
    size = item.get("size_bytes") if isinstance(item, dict) else None
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_MEMBER_BYTES:
        raise BundleError(f"{where}.size_bytes must be an integer in [0, {MAX_MEMBER_BYTES}]")
    role = _text(item, "role", where)
    if role not in ROLES:
        raise BundleError(f"{where}.role must be one of {', '.join(ROLES)}")
    return Member(path, sha256, size, role)


# --- pure checks ---------------------------------------------------------------------------------


def check_release_name(text: str, what: str) -> None:
    """Names and versions become folder names on the device: letters, digits, `._+-`."""
    if not isinstance(text, str) or not _SAFE_NAME.fullmatch(text) or len(text) > 100:
        raise BundleError(
            f"release {what} {text!r} must start with a letter or digit and hold only letters, "
            "digits and ._+- (at most 100 characters)"
        )


def member_path_problem(path: str) -> str | None:
    """Why `path` may not be a bundle member (None if it may): members are `index.json`,
    `index.sig` or one file name directly under `models/` or `engines/`, so no absolute path,
    `..`, or deeper folder can reach outside the extraction folder."""
    if path in (INDEX_NAME, SIGNATURE_NAME):
        return None
    parts = PurePosixPath(path).parts
    if path.startswith("/") or "\\" in path:
        return "absolute or not a POSIX path"
    if ".." in parts:
        return "climbs out with '..'"
    if len(parts) != 2 or parts[0] not in (MODELS_DIR, ENGINES_DIR) or path != "/".join(parts):
        return f"not a file directly in {MODELS_DIR}/ or {ENGINES_DIR}/"
    if not _SAFE_NAME.fullmatch(parts[1]):
        return "the file name holds characters other than letters, digits and ._+-"
    return None


def parse_bundle_name(path: str | os.PathLike[str]) -> tuple[str, str]:
    """`NAME-VERSION.jkb` → (NAME, VERSION): the version starts at the last `-` followed by a
    digit (`yolo-nano-2.1.0.jkb` → `yolo-nano`, `2.1.0`)."""
    file_name = Path(path).name
    if not file_name.endswith(BUNDLE_SUFFIX):
        raise BundleError(f"bundle file {file_name} must end in {BUNDLE_SUFFIX} (NAME-VERSION.jkb)")
    stem = file_name[: -len(BUNDLE_SUFFIX)]
    match = re.fullmatch(r"(.+)-(\d[A-Za-z0-9._+-]*)", stem)
    if not match:
        raise BundleError(
            f"bundle file {file_name}: name it NAME-VERSION{BUNDLE_SUFFIX} (e.g. "
            f"detector-1.0.0{BUNDLE_SUFFIX}), or give --name and --version"
        )
    name, version = match.groups()
    check_release_name(name, "name")
    check_release_name(version, "version")
    return name, version


def check_tar_member(
    info: tarfile.TarInfo, index: BundleIndex | None, source: str
) -> Member | None:
    """The index entry for a tar member (None for the index itself and its signature) after
    checking its name, type and size against the index; raises BundleError naming the member."""
    problem = member_path_problem(info.name)
    if problem:
        raise BundleError(f"{source}: member {info.name!r} is refused: {problem}")
    if not info.isfile():
        raise BundleError(
            f"{source}: member {info.name!r} is refused: a link or special file, not a file"
        )
    if info.name == INDEX_NAME:
        if info.size > MAX_INDEX_BYTES:
            raise BundleError(f"{source}: {INDEX_NAME} is larger than {MAX_INDEX_BYTES} bytes")
        return None
    if info.name == SIGNATURE_NAME:
        if info.size > MAX_SIGNATURE_BYTES:
            raise BundleError(
                f"{source}: {SIGNATURE_NAME} is larger than {MAX_SIGNATURE_BYTES} bytes"
            )
        return None
    assert index is not None
    try:
        member = index.member(info.name)
    except BundleError:
        raise BundleError(f"{source}: member {info.name!r} is not in {INDEX_NAME}") from None
    if info.size != member.size_bytes:
        raise BundleError(
            f"{source}: member {info.name} is {info.size} bytes, the index says "
            f"{member.size_bytes}; the bundle is corrupt: rebuild it with `jetkit bundle`"
        )
    return member


def gate_outcomes(reports: dict[str, bytes]) -> dict[str, bool]:
    """Per model member, whether the accuracy-gate report beside it (`models/X.gate.json` for
    `models/X.onnx`, as `jetkit calibrate --val` writes them; `reports` by member path) says it
    passed. A report that is not what calibrate writes counts as not passed."""
    passed: dict[str, bool] = {}
    for path, data in reports.items():
        try:
            report = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError):
            report = None
        model = path.removesuffix(".gate.json") + ".onnx"
        passed[model] = isinstance(report, dict) and report.get("passed") is True
    return passed
