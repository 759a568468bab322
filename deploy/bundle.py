"""Bundles: one tar file holding a release's models, manifests, calibration caches and prebuilt
engines, with an index (`index.json`, the first member) giving every other member's sha256.

Layout inside the tar (no folders but these two, no links, nothing else):

    index.json
    index.sig         its ed25519 signature, in signed bundles (deploy.signing)
    models/<file>     ONNX models (FP32, FP16, INT8 Q/DQ) and their sidecar manifests,
                      TensorRT calibration caches (`*.cache`), accuracy-gate reports (`*.gate.json`)
    engines/<file>    prebuilt TensorRT engines and their manifests (target and engine key)

Reading a bundle trusts nothing in it: member names, types and sizes are checked before anything
is written, and every member's digest is checked against the index while it is extracted into a
temporary folder that only becomes the destination once all of it matched.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from deploy.bundle_index import (
    ENGINES_DIR,
    INDEX_NAME,
    MAX_MEMBERS,
    MAX_TOTAL_BYTES,
    MODELS_DIR,
    SIGNATURE_NAME,
    BundleEngine,
    BundleError,
    BundleIndex,
    BundleModel,
    Member,
    check_tar_member,
    member_path_problem,
)
from edge.atomic import make_temp_dir, open_atomic
from edge.errors import JetkitError

if TYPE_CHECKING:
    from edge.models import Overrides

Log = Callable[[str], None]

_CHUNK = 1 << 20
MAX_KEPT_BYTES = 1 << 20


# --- writing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Input:
    """A bundle member: the file at `local`, or `data` made here (an inferred manifest, which is
    never written beside the user's model)."""

    local: Path
    path: str
    role: str
    data: bytes | None = None

    def open(self) -> Any:
        return io.BytesIO(self.data) if self.data is not None else open(self.local, "rb")


def _inferred_model_inputs(model: Path, overrides: Overrides, log: Log) -> list[_Input]:
    """An ONNX without a sidecar, and the manifest `jetkit inspect` finds for it (embedded, or
    inferred and marked so in its provenance) as the bundle's sidecar member."""
    from edge.manifest import ArtifactSpec, sidecar_path
    from edge.models import file_sha256, inferred_note, open_manifest

    resolved = open_manifest(model, overrides)
    note = inferred_note(resolved)
    if note:
        log(note)
    manifest = resolved.manifest
    artifact = manifest.artifact
    manifest = manifest.replace(
        artifact=ArtifactSpec(
            file=model.name,
            kind=artifact.kind if artifact else "onnx",
            precision=artifact.precision if artifact else "fp32",
            sha256=file_sha256(model),
        )
    )
    sidecar = sidecar_path(model)
    return [
        _Input(model, f"{MODELS_DIR}/{model.name}", "model"),
        _Input(
            sidecar, f"{MODELS_DIR}/{sidecar.name}", "manifest", manifest.to_json().encode("utf-8")
        ),
    ]


def _model_inputs(model: Path, overrides: Overrides, log: Log) -> list[_Input]:
    """An ONNX and its sidecar manifest, checked to agree (the manifest's sha256 is the file's);
    without a sidecar, the manifest found or inferred from the model itself."""
    from edge.manifest import ManifestError, load_manifest, sidecar_path
    from edge.models import file_sha256

    sidecar = sidecar_path(model)
    if not sidecar.is_file():
        return _inferred_model_inputs(model, overrides, log)
    try:
        manifest = load_manifest(sidecar)
    except ManifestError as exc:
        raise JetkitError(f"{sidecar}: {exc}") from None
    artifact = manifest.artifact
    if artifact is not None and artifact.sha256 and artifact.sha256 != file_sha256(model):
        raise JetkitError(
            f"{model} does not match its manifest {sidecar.name} (sha256 differs): the model "
            "changed after the manifest was written; export or calibrate it again"
        )
    return [
        _Input(model, f"{MODELS_DIR}/{model.name}", "model"),
        _Input(sidecar, f"{MODELS_DIR}/{sidecar.name}", "manifest"),
    ]


def _directory_inputs(folder: Path, overrides: Overrides, log: Log) -> list[_Input]:
    from calibration.trt_cache import read_cache

    models = sorted(folder.glob("*.onnx"))
    if not models:
        raise JetkitError(f"{folder} holds no .onnx model; give a model folder or an ONNX file")
    inputs = [item for model in models for item in _model_inputs(model, overrides, log)]
    for cache in sorted(folder.glob("*.cache")):
        read_cache(cache)  # a corrupt cache fails here, not on the device
        inputs.append(_Input(cache, f"{MODELS_DIR}/{cache.name}", "calibration-cache"))
    for report in sorted(folder.glob("*.gate.json")):
        inputs.append(_Input(report, f"{MODELS_DIR}/{report.name}", "gate-report"))
    return inputs


def _engine_inputs(engine: Path) -> tuple[list[_Input], dict[str, Any]]:
    from edge.manifest import ManifestError, load_manifest, sidecar_path

    if not engine.is_file():
        raise JetkitError(f"--include-engine {engine}: no such file")
    sidecar = sidecar_path(engine)
    try:
        manifest = load_manifest(sidecar)
    except ManifestError as exc:
        raise JetkitError(
            f"--include-engine {engine}: its manifest {sidecar.name} ({exc}); bundle engines "
            "built by `jetkit build`, which writes it"
        ) from None
    build = manifest.provenance.get("engine")
    key = build.get("key") if isinstance(build, dict) else None
    if not isinstance(key, dict) or "name" not in key:
        raise JetkitError(
            f"--include-engine {engine}: {sidecar.name} has no engine key; bundle engines "
            "built by `jetkit build`"
        )
    return [
        _Input(engine, f"{ENGINES_DIR}/{engine.name}", "engine"),
        _Input(sidecar, f"{ENGINES_DIR}/{sidecar.name}", "manifest"),
    ], key


def collect_inputs(
    models: Sequence[str | os.PathLike[str]],
    engines: Sequence[str | os.PathLike[str]] = (),
    overrides: Overrides | None = None,
    log: Log = lambda _message: None,
) -> tuple[list[_Input], list[dict[str, Any]]]:
    """What goes into a bundle for these model folders / ONNX files and engines, with each
    engine's key; every name checked (two inputs may not land on the same member). A model
    without a manifest gets the one `jetkit inspect` infers, with `overrides`; `log` hears what
    was inferred."""
    from edge.models import Overrides

    overrides = overrides or Overrides()
    inputs: list[_Input] = []
    for given in models:
        path = Path(given)
        if path.is_dir():
            inputs += _directory_inputs(path, overrides, log)
        elif path.is_file() and path.suffix == ".onnx":
            inputs += _model_inputs(path, overrides, log)
        elif path.is_file():
            raise JetkitError(f"{path} is not an ONNX model; give a model folder or a .onnx file")
        else:
            raise JetkitError(f"{path}: no such file or folder")
    keys = []
    for given in engines:
        engine_inputs, key = _engine_inputs(Path(given))
        inputs += engine_inputs
        keys.append(key)
    seen: dict[str, Path] = {}
    for item in inputs:
        problem = member_path_problem(item.path)
        if problem:
            raise JetkitError(f"{item.local} cannot go into a bundle: {problem}; rename it")
        if item.path in seen and seen[item.path].resolve() != item.local.resolve():
            raise JetkitError(
                f"{item.local} and {seen[item.path]} would both be {item.path} in the bundle; "
                "rename one"
            )
        seen[item.path] = item.local
    unique = list({item.path: item for item in inputs}.values())
    if len(unique) + 1 > MAX_MEMBERS:
        raise JetkitError(f"a bundle holds at most {MAX_MEMBERS} files; got {len(unique) + 1}")
    return unique, keys


def _digest(item: _Input) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with item.open() as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def build_index(
    name: str, version: str, inputs: Sequence[_Input], engine_keys: Sequence[dict[str, Any]]
) -> BundleIndex:
    from edge.manifest import Manifest, sidecar_path

    manifests = {item.path: item for item in inputs if item.role == "manifest"}
    members = []
    for item in inputs:
        sha256, size = _digest(item)
        members.append(Member(item.path, sha256, size, item.role))
    models, engines = [], []
    for item in inputs:
        manifest_path = f"{PurePosixPath(item.path).parent}/{sidecar_path(item.path).name}"
        if item.role == "model":
            with manifests[manifest_path].open() as handle:
                manifest = Manifest.from_json(handle.read().decode("utf-8"), manifest_path)
            artifact = manifest.artifact
            calibration = manifest.provenance.get("calibration")
            runtime = calibration.get("runtime") if isinstance(calibration, dict) else None
            models.append(
                BundleModel(
                    file=item.path,
                    manifest=manifest_path,
                    kind=artifact.kind if artifact else "onnx",
                    precision=artifact.precision if artifact else "fp32",
                    max_batch=manifest.input.max_batch,
                    runtime=runtime if isinstance(runtime, str) else None,
                )
            )
        elif item.role == "engine":
            engines.append(BundleEngine(item.path, manifest_path, engine_keys[len(engines)]))
    total = sum(m.size_bytes for m in members)
    if total > MAX_TOTAL_BYTES:
        raise JetkitError(f"the bundle would hold {total} bytes, more than {MAX_TOTAL_BYTES}")
    return BundleIndex(
        name=name,
        version=version,
        members=tuple(members),
        models=tuple(models),
        engines=tuple(engines),
        created_unix_s=round(time.time(), 3),
        extra={"jetkit_version": jetkit_version()},
    )


def jetkit_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("jetkit")
    except PackageNotFoundError:
        return "unknown"


def _tar_info(name: str, size: int) -> tarfile.TarInfo:
    """A plain file entry with no owner, fixed mode and time: the same inputs give the same tar."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 0
    info.uname = info.gname = ""
    return info


def write_bundle(
    out: Path, index: BundleIndex, inputs: Sequence[_Input], signing_key: Any = None
) -> None:
    """Write the bundle atomically: `index` first (and its signature by `signing_key`, a
    `deploy.signing.load_private_key` key), then each input, which must still have the digest
    the index gives it (a file that changed since fails the write)."""
    index_bytes = json.dumps(index.to_dict(), indent=2).encode("utf-8")
    with (
        open_atomic(out) as handle,
        tarfile.open(fileobj=handle, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        tar.addfile(_tar_info(INDEX_NAME, len(index_bytes)), io.BytesIO(index_bytes))
        if signing_key is not None:
            from deploy.signing import sign_index

            signature = sign_index(index_bytes, signing_key)
            tar.addfile(_tar_info(SIGNATURE_NAME, len(signature)), io.BytesIO(signature))
        for item in inputs:
            member = index.member(item.path)
            with item.open() as source:
                tar.addfile(_tar_info(item.path, member.size_bytes), _Verified(source, member))


class _Verified(io.RawIOBase):
    """Reads a file while hashing it; at its end, raises if the digest differs from `member`'s
    (the file changed between indexing and writing)."""

    def __init__(self, handle: Any, member: Member) -> None:
        self._handle = handle
        self._member = member
        self._digest = hashlib.sha256()
        self._read = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self._digest.update(data)
        self._read += len(data)
        if (
            self._read >= self._member.size_bytes
            and self._digest.hexdigest() != self._member.sha256
        ):
            raise JetkitError(
                f"{self._member.path} changed while the bundle was written; run again"
            )
        return data


# --- reading -------------------------------------------------------------------------------------


def _open_tar(path: Path) -> tarfile.TarFile:
    if not path.is_file():
        raise BundleError(f"bundle {path}: no such file")
    try:
        return tarfile.open(path, mode="r:")
    except (tarfile.TarError, OSError) as exc:
        raise BundleError(
            f"bundle {path} is not a jetkit bundle (not a tar file: {exc}); "
            "make one with `jetkit bundle`"
        ) from None


@dataclass(frozen=True)
class BundleHead:
    """What a bundle says of itself before its members are read: the index, its exact bytes
    (what a signature is over) and its `index.sig` member, if signed."""

    index: BundleIndex
    index_bytes: bytes
    signature: bytes | None = None


def _read_member_bytes(tar: tarfile.TarFile, info: tarfile.TarInfo, source: str) -> bytes:
    handle = tar.extractfile(info)
    assert handle is not None
    try:
        data = handle.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise _truncated(source, exc) from None
    if len(data) != info.size:
        raise BundleError(f"{source} is truncated inside {info.name}; copy it again")
    return data


def _truncated(source: str, exc: BaseException) -> BundleError:
    return BundleError(f"{source} is truncated or corrupt ({exc}); copy it again")


def _next(tar: tarfile.TarFile, source: str) -> tarfile.TarInfo | None:
    try:
        return tar.next()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise _truncated(source, exc) from None


def _read_head(tar: tarfile.TarFile, source: str) -> BundleHead:
    first = _next(tar, source)
    if first is None or first.name != INDEX_NAME:
        raise BundleError(f"{source} is not a jetkit bundle ({INDEX_NAME} is not its first member)")
    check_tar_member(first, None, source)
    index_bytes = _read_member_bytes(tar, first, source)
    try:
        data = json.loads(index_bytes.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # not UTF-8 or JSON, a 4300+ digit int, `[[[…`
        raise BundleError(f"{source}: {INDEX_NAME} is not valid JSON ({exc})") from None
    index = BundleIndex.from_dict(data, source)
    second = _next(tar, source)
    signature = None
    if second is not None and second.name == SIGNATURE_NAME:
        check_tar_member(second, index, source)
        signature = _read_member_bytes(tar, second, source)
    return BundleHead(index, index_bytes, signature)


def _members(
    tar: tarfile.TarFile, index: BundleIndex, source: str
) -> Iterable[tuple[tarfile.TarInfo, Member]]:
    """Every member after the index, checked, in tar order; then that none is missing."""
    seen: set[str] = set()
    total = 0
    try:
        for info in tar:
            if info.offset == 0 or (info.name == SIGNATURE_NAME and SIGNATURE_NAME not in seen):
                seen.add(info.name)  # the head, read first (iterating starts again from the top)
                continue
            member = check_tar_member(info, index, source)
            if member is None or info.name in seen:
                raise BundleError(f"{source}: member {info.name} appears twice")
            seen.add(info.name)
            total += info.size
            if total > MAX_TOTAL_BYTES or len(seen) > MAX_MEMBERS:
                raise BundleError(f"{source} is larger than a bundle may be")
            yield info, member
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise _truncated(source, exc) from None
    missing = sorted({m.path for m in index.members} - seen)
    if missing:
        raise BundleError(
            f"{source} lacks {', '.join(missing)} listed in its index; it is truncated: copy it again"
        )


def _copy_checked(
    tar: tarfile.TarFile, info: tarfile.TarInfo, member: Member, out: Any, source: str
) -> None:
    handle = tar.extractfile(info)
    assert handle is not None
    digest = hashlib.sha256()
    try:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
            if out is not None:
                out.write(chunk)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise _truncated(source, exc) from None
    if digest.hexdigest() != member.sha256:
        raise BundleError(
            f"{source}: {member.path} does not match its sha256 in the index; the bundle is "
            "corrupt: copy it again or rebuild it with `jetkit bundle`"
        )


def verify_bundle(path: str | os.PathLike[str]) -> BundleIndex:
    """The bundle's index once every member has been read and matched its digest."""
    return verify_and_read(path)[0]


def verify_and_read(
    path: str | os.PathLike[str],
    roles: Collection[str] = (),
    max_kept_bytes: int = MAX_KEPT_BYTES,
) -> tuple[BundleIndex, dict[str, bytes]]:
    """`verify_bundle`, keeping the content of each member of one of `roles` up to
    `max_kept_bytes` (larger ones are checked, not kept), read in the same pass that checked
    its digest."""
    head, kept = verify_and_read_head(path, roles, max_kept_bytes)
    return head.index, kept


def verify_and_read_head(
    path: str | os.PathLike[str],
    roles: Collection[str] = (),
    max_kept_bytes: int = MAX_KEPT_BYTES,
) -> tuple[BundleHead, dict[str, bytes]]:
    """`verify_and_read` with the whole head: the index's bytes and signature too."""
    path = Path(path)
    source = f"bundle {path}"
    kept: dict[str, bytes] = {}
    with _open_tar(path) as tar:
        head = _read_head(tar, source)
        for info, member in _members(tar, head.index, source):
            keep = member.role in roles and member.size_bytes <= max_kept_bytes
            out = io.BytesIO() if keep else None
            _copy_checked(tar, info, member, out, source)
            if out is not None:
                kept[member.path] = out.getvalue()
    return head, kept


def read_index(path: str | os.PathLike[str]) -> BundleIndex:
    """The index alone (no digests checked): what a bundle holds, cheaply."""
    return read_head(path).index


def read_head(path: str | os.PathLike[str]) -> BundleHead:
    """The index, its bytes and its signature (no digests checked, no signature verified)."""
    path = Path(path)
    with _open_tar(path) as tar:
        return _read_head(tar, f"bundle {path}")


def extract_bundle(path: str | os.PathLike[str], dest: Path) -> BundleIndex:
    """Extract into `dest` (which must not exist yet) through a temporary sibling folder renamed
    into place once every member matched: `dest` is whole or absent."""
    path = Path(path)
    source = f"bundle {path}"
    if dest.exists():
        raise BundleError(f"{dest} exists already; extract into a new folder")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = make_temp_dir(dest.parent, f".{dest.name}.")
    try:
        with _open_tar(path) as tar:
            head = _read_head(tar, source)
            index = head.index
            # The index as signed, byte for byte, so that the device can check it again later.
            (staging / INDEX_NAME).write_bytes(head.index_bytes)
            if head.signature is not None:
                (staging / SIGNATURE_NAME).write_bytes(head.signature)
            for info, member in _members(tar, index, source):
                target = staging / PurePosixPath(member.path)
                target.parent.mkdir(exist_ok=True)
                with open(target, "xb") as out:
                    _copy_checked(tar, info, member, out, source)
        os.replace(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return index
