"""Fuzzing bundles: any file given to `jetkit bundle verify`, `jetkit flash` or the device agent
(random bytes, a real bundle cut short or with bytes flipped, a crafted tar with a hostile index)
is a verified bundle or a BundleError, never a traceback; extraction leaves nothing behind on
failure; and the pure checks (index, names, member paths, tar entries) hold on any input."""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import tarfile
from pathlib import Path

import fuzz
import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from deploy.bundle import (
    build_index,
    collect_inputs,
    extract_bundle,
    read_index,
    verify_and_read,
    write_bundle,
)
from deploy.bundle_index import (
    ENGINES_DIR,
    FORMAT,
    INDEX_NAME,
    MODELS_DIR,
    ROLES,
    BundleError,
    BundleIndex,
    check_release_name,
    check_tar_member,
    member_path_problem,
    parse_bundle_name,
)
from edge.samples import build_blob_detector

SIGNATURE = "index.sig"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A real, small bundle (the blob sample at 64x64 and its manifest) and its members' bytes."""
    folder = tmp_path_factory.mktemp("release")
    build_blob_detector(
        folder / "blob.onnx", input_hw=(64, 64), max_batch=1, dynamic_batch=False,
        manifest_in="sidecar",
    )  # fmt: skip
    inputs, keys = collect_inputs([folder])
    index = build_index("blob", "1.0.0", inputs, keys)
    path = tmp_path_factory.mktemp("bundle") / "blob-1.0.0.jkb"
    write_bundle(path, index, inputs)
    contents = {item.path: item.local.read_bytes() for item in inputs}
    return path, path.read_bytes(), contents


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzzed")


def _check(path: Path, contents: dict[str, bytes] | None = None) -> BundleIndex | None:
    """Read the bundle at `path` three ways; each gives the index or a BundleError. A verified
    bundle's members are the bytes bundled (`contents`, by member path, where known)."""
    head = fuzz.user_error_or(lambda: read_index(path), BundleError)
    verified = fuzz.user_error_or(lambda: verify_and_read(path, roles=ROLES), BundleError)
    if verified is not None:
        index, kept = verified
        assert head is not None and head.to_dict() == index.to_dict()
        _assert_valid(index)
        for member in index.members:
            if contents is not None:
                assert kept[member.path] == contents[member.path]
            assert hashlib.sha256(kept[member.path]).hexdigest() == member.sha256
        event("verified")
    dest = path.parent / "extracted"
    extracted = fuzz.user_error_or(lambda: extract_bundle(path, dest), BundleError)
    if extracted is None:
        assert not dest.exists()
        assert sorted(os.listdir(path.parent)) == [path.name]  # no staging folder left
    else:
        try:
            assert verified is not None
            written = {
                str(Path(root, name).relative_to(dest))
                for root, _dirs, files in os.walk(dest)
                for name in files
            }
            assert written - {INDEX_NAME, SIGNATURE} == {m.path for m in extracted.members}
            for member in extracted.members:
                assert (dest / member.path).read_bytes() == kept[member.path]
        finally:
            _remove(dest)
    return verified[0] if verified else None


def _remove(folder: Path) -> None:
    for root, dirs, files in os.walk(folder, topdown=False):
        for name in files:
            os.unlink(os.path.join(root, name))
        for name in dirs:
            os.rmdir(os.path.join(root, name))
    os.rmdir(folder)


def _assert_valid(index: BundleIndex) -> None:
    check_release_name(index.name, "name")
    check_release_name(index.version, "version")
    assert isinstance(index.created_unix_s, float) and math.isfinite(index.created_unix_s)
    for member in index.members:
        assert member_path_problem(member.path) is None and member.role in ROLES
    for model in index.models:
        assert all(isinstance(v, str) for v in (model.file, model.manifest, model.kind))
        assert isinstance(model.max_batch, int) and model.max_batch >= 1
        assert model.runtime is None or isinstance(model.runtime, str)
    text = json.dumps(index.to_dict())  # compared as text: NaN in an engine key is not NaN
    assert json.dumps(BundleIndex.from_dict(json.loads(text), "again").to_dict()) == text


def _write(workdir: Path, data: bytes) -> Path:
    path = workdir / "case.jkb"
    path.write_bytes(data)
    return path


# --- whole files ---------------------------------------------------------------------------------


@settings(max_examples=fuzz.examples(300))
@given(st.binary(max_size=2048))
@example(b"")
@example(b"\0" * 1024)
def test_any_bytes_are_a_bundle_or_a_bundle_error(workdir, data):
    assert _check(_write(workdir, data)) is None


@settings(max_examples=fuzz.examples(300))
@given(st.integers(0, 2**20))
@example(600)  # inside index.json: tarfile's ReadError escaped ("unexpected end of data")
@example(1000)
def test_a_bundle_cut_anywhere_is_refused_with_a_bundle_error(bundle, workdir, cut):
    path, data, contents = bundle
    cut %= len(data)
    with tarfile.open(path) as tar:
        last = max(tar.getmembers(), key=lambda m: m.offset_data)
        data_end = last.offset_data + last.size
    index = _check(_write(workdir, data[:cut]), contents)
    # Only the end-of-archive blocks after the last member may be missing.
    assert index is None or cut >= data_end


positions = st.one_of(st.integers(0, 2047), st.integers(0, 2**20))
flips = st.lists(st.tuples(positions, st.integers(1, 255)), min_size=1, max_size=4)


@settings(max_examples=fuzz.examples(400))
@given(flips)
@example([(124, 0x80)])  # the index's size field in base-256 form
@example([(124, 0xFF)])  # a negative size
@example([(1536 + 156, ord("2") ^ ord("0"))])  # models/blob.onnx becomes a symlink
def test_a_bundle_with_bytes_flipped_is_the_same_bundle_or_a_bundle_error(bundle, workdir, flips):
    path, data, contents = bundle
    damaged = bytearray(data)
    for position, mask in flips:
        damaged[position % len(data)] ^= mask
    _check(_write(workdir, bytes(damaged)), contents)


# --- crafted tars ---------------------------------------------------------------------------------

MEMBER_NAMES = [
    "models/a.onnx", "models/a.json", "engines/e.engine", "engines/e.json", INDEX_NAME, SIGNATURE,
    "models/", "models/sub/x", "../x", "/etc/passwd", "models/../x", "models\\x",
    "./models/a.onnx", "models//a.onnx", "engines/.hidden", "models/a b",
]  # fmt: skip
member_names = st.one_of(
    st.sampled_from(MEMBER_NAMES),
    st.text(alphabet=fuzz.TRICKY_CHARS.replace("\x00", "") + "ab", max_size=12).map(
        lambda t: f"{MODELS_DIR}/{t}"
    ),
)
TYPES = [tarfile.REGTYPE] * 6 + [
    tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.DIRTYPE, tarfile.CHRTYPE, tarfile.FIFOTYPE,
    tarfile.CONTTYPE,
]  # fmt: skip


def _index(files: list[tuple[str, bytes, str]]) -> dict:
    members = [
        {"path": name, "sha256": hashlib.sha256(data).hexdigest(), "size_bytes": len(data),
         "role": role}
        for name, data, role in files
    ]  # fmt: skip
    paths = [m["path"] for m in members]
    models = [
        {"file": paths[0], "manifest": paths[-1], "kind": "onnx", "precision": "fp32",
         "max_batch": 1, "runtime": None}
    ] if paths else []  # fmt: skip
    return {
        "format": FORMAT, "format_version": 1, "name": "blob", "version": "1.0.0",
        "created_unix_s": 1796621168.7, "models": models, "engines": [], "members": members,
    }  # fmt: skip


@st.composite
def crafted_bundles(draw: st.DrawFn) -> bytes:
    """A tar whose index lists its files with their right digests and sizes (so that the reader
    gets far), then changes: the index mutated, a member of another type, one added, one
    dropped, the order changed, or the index not first."""
    files = draw(
        st.lists(
            st.tuples(member_names, st.binary(max_size=40), st.sampled_from(ROLES)),
            max_size=4,
            unique_by=lambda f: f[0],
        )
    )
    index = _index([f for f in files if member_path_problem(f[0]) is None])
    index_text = json.dumps(draw(st.just(index) | fuzz.mutated(index, max_changes=2)))
    index_data = draw(
        st.just(index_text.encode()) | st.binary(max_size=64) | fuzz.tricky_text.map(str.encode)
    )
    entries = [(INDEX_NAME, index_data, tarfile.REGTYPE)]
    entries += [(name, data, draw(st.sampled_from(TYPES))) for name, data, _role in files]
    if draw(st.booleans()):
        entries = draw(st.permutations(entries))
    if entries and draw(st.booleans()):
        entries.append(draw(st.sampled_from(entries)))  # a member twice
    fmt = draw(st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT]))
    try:
        return _tar(entries, fmt)
    except ValueError:  # a name USTAR cannot hold
        event("a name this tar format cannot hold")
        return draw(st.binary(max_size=16))


def _tar(entries: list[tuple[str, bytes, bytes]], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """A tar of (name, data, type) entries; links point out of the folder."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as tar:
        for name, data, kind in entries:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = "../../etc/passwd" if kind in (b"1", b"2") else ""
            info.size = len(data) if kind in (tarfile.REGTYPE, tarfile.CONTTYPE) else 0
            tar.addfile(info, io.BytesIO(data) if info.size else None)
    return buffer.getvalue()


@settings(max_examples=fuzz.examples(400))
@given(crafted_bundles())
# json.loads raised ValueError (an integer of 5000 digits) and RecursionError out of reading
# the index.
@example(_tar([(INDEX_NAME, b'{"format": ' + b"1" * 5000 + b"}", tarfile.REGTYPE)]))
@example(_tar([(INDEX_NAME, fuzz.deep_nesting("[", "]", 100_000).encode(), tarfile.REGTYPE)]))
# An index listing index.sig as a member (role "model", digest of other bytes): verified, its
# digest never checked, since the reader takes index.sig for the signature.
@example(
    _tar(
        [
            (INDEX_NAME, json.dumps(_index([(SIGNATURE, b"sig", "model")])).encode(), b"0"),
            (SIGNATURE, b"not the digested bytes", b"0"),
        ]
    )
)
def test_any_crafted_tar_is_a_bundle_or_a_bundle_error(workdir, data):
    _check(_write(workdir, data))


# --- the index and the pure checks ---------------------------------------------------------------

VALID_INDEX = _index(
    [("models/a.onnx", b"onnx", "model"), ("models/a.json", b"{}", "manifest")]
) | {"engines": [{"file": "models/a.onnx", "manifest": "models/a.json", "key": {"name": "k"}}]}


def test_the_valid_index_is_an_index():
    _assert_valid(BundleIndex.from_dict(VALID_INDEX, "b.jkb"))


@settings(max_examples=fuzz.examples(600))
@given(
    st.one_of(fuzz.mutated(VALID_INDEX), fuzz.mutated(VALID_INDEX, max_changes=3), fuzz.json_values)
)
@example(VALID_INDEX | {"created_unix_s": 10**400})  # float() overflowed
@example(VALID_INDEX | {"created_unix_s": float("nan")})  # was accepted
@example(VALID_INDEX | {"models": [VALID_INDEX["models"][0] | {"runtime": ["cpu"]}]})
def test_any_json_is_an_index_or_a_bundle_error(data):
    index = fuzz.user_error_or(lambda: BundleIndex.from_dict(data, "bundle b.jkb"), BundleError)
    if index is not None:
        _assert_valid(index)


valid_member_paths = st.from_regex(
    r"(models|engines)/[A-Za-z0-9][A-Za-z0-9._+-]{0,12}", fullmatch=True
)


@settings(max_examples=fuzz.examples(1000))
@given(
    st.one_of(
        fuzz.tricky_text,
        member_names,
        st.text(max_size=30),
        valid_member_paths,
        st.tuples(valid_member_paths, st.integers(0, 20), fuzz.tricky_text).map(
            lambda t: t[0][: t[1]] + t[2] + t[0][t[1] :]
        ),
    )
)
def test_any_member_path_is_refused_or_stays_in_the_extraction_folder(path):
    problem = member_path_problem(path)
    assert problem is None or isinstance(problem, str)
    if problem is None:
        event("accepted")
        joined = os.path.normpath(os.path.join("/dest", path))
        assert joined.startswith("/dest/") and "\\" not in path and "\x00" not in path
        assert path in (INDEX_NAME, SIGNATURE) or path.split("/")[0] in (MODELS_DIR, ENGINES_DIR)


@settings(max_examples=fuzz.examples(1000))
@given(
    st.one_of(
        st.text(max_size=40),
        st.tuples(fuzz.tricky_text, fuzz.tricky_text).map(lambda t: f"{t[0]}-{t[1]}.jkb"),
        st.sampled_from(["blob-1.0.0.jkb", "yolo-nano-2.1.0.jkb", "-1.jkb", "a-b.jkb", "a-²"]),
    )
)
def test_any_file_name_gives_a_release_name_or_a_bundle_error(file_name):
    parsed = fuzz.user_error_or(lambda: parse_bundle_name(file_name), BundleError)
    if parsed is not None:
        name, version = parsed
        check_release_name(name, "name")
        check_release_name(version, "version")
        assert Path(file_name).name == f"{name}-{version}.jkb"


tar_infos = st.builds(
    lambda name, kind, size: _tar_info(name, kind, size),
    member_names | st.text(max_size=20),
    st.sampled_from(TYPES),
    st.integers(-(2**70), 2**70) | st.sampled_from([0, 4, 2, 1 << 20, (1 << 20) + 1]),
)


def _tar_info(name: str, kind: bytes, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size = kind, size
    return info


@settings(max_examples=fuzz.examples(1000))
@given(tar_infos)
def test_any_tar_entry_is_its_index_member_or_a_bundle_error(info):
    index = BundleIndex.from_dict(VALID_INDEX, "b.jkb")
    member = fuzz.user_error_or(lambda: check_tar_member(info, index, "bundle b.jkb"), BundleError)
    if member is not None:
        assert info.isfile() and member.path == info.name and member.size_bytes == info.size
