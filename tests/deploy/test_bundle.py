"""Bundles: what goes in, that `verify` and extraction check every member against the index, and
that a crafted or damaged bundle is refused before anything is written."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest
from cli_helpers import assert_user_error, jetkit

from deploy.bundle import (
    build_index,
    collect_inputs,
    extract_bundle,
    read_index,
    verify_and_read,
    verify_bundle,
    write_bundle,
)
from deploy.bundle_index import (
    FORMAT,
    INDEX_NAME,
    BundleError,
    gate_outcomes,
    member_path_problem,
    parse_bundle_name,
)
from edge.errors import JetkitError
from edge.manifest import load_manifest, save_manifest


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def bundle(release_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundles") / "blob-1.0.0.jkb"
    result = jetkit("bundle", release_folder, "-o", out)
    assert result.returncode == 0, result.stderr
    return out


def test_a_release_folder_bundles_every_model_manifest_cache_and_report(bundle, release_folder):
    index = verify_bundle(bundle)
    assert (index.name, index.version) == ("blob", "1.0.0")
    assert {(m.file, m.precision) for m in index.models} == {
        ("models/blob.onnx", "fp32"),
        ("models/blob-fp16.onnx", "fp16"),
        ("models/blob-int8.onnx", "int8"),
    }
    roles = {m.path: m.role for m in index.members}
    assert roles["models/blob-int8.cache"] == "calibration-cache"
    assert roles["models/blob-int8.gate.json"] == "gate-report"
    assert roles["models/blob.json"] == "manifest"
    # Every file of the folder, each with the digest of the file itself.
    assert {p.split("/")[1] for p in roles} == {p.name for p in release_folder.iterdir()}
    for member in index.members:
        assert member.sha256 == _sha256(release_folder / member.path.split("/")[1])
    with tarfile.open(bundle) as tar:
        assert tar.getnames()[0] == INDEX_NAME


def test_verify_on_the_command_line(bundle):
    result = jetkit("bundle", "verify", bundle)
    assert result.returncode == 0, result.stderr
    assert "bundle blob-1.0.0" in result.stdout
    assert "models/blob-int8.onnx  onnx-int8-qdq int8" in result.stdout
    assert result.stdout.strip().endswith(
        f"ok: every member of {bundle} matches its sha256\nnot signed"
    )


def test_extraction_gives_the_same_files_and_the_index(bundle, release_folder, tmp_path):
    index = extract_bundle(bundle, tmp_path / "out")
    for member in index.members:
        assert _sha256(tmp_path / "out" / member.path) == member.sha256
    assert json.loads((tmp_path / "out" / INDEX_NAME).read_text())["name"] == "blob"
    assert read_index(bundle) == index


def test_name_and_version_come_from_the_file_name():
    assert parse_bundle_name("out/yolo-nano-2.1.0.jkb") == ("yolo-nano", "2.1.0")
    assert parse_bundle_name("det-7.jkb") == ("det", "7")
    with pytest.raises(BundleError, match="NAME-VERSION"):
        parse_bundle_name("detector.jkb")
    with pytest.raises(BundleError, match="must end in .jkb"):
        parse_bundle_name("detector-1.0.tar")


def test_member_paths_stay_in_their_two_folders():
    assert member_path_problem("models/blob.onnx") is None
    assert member_path_problem(INDEX_NAME) is None
    assert "absolute" in member_path_problem("/etc/passwd")
    assert "'..'" in member_path_problem("models/../../x")
    assert "directly" in member_path_problem("models/sub/x.onnx")
    assert "directly" in member_path_problem("other/x.onnx")
    assert "characters" in member_path_problem("models/.hidden")


# --- damaged and crafted bundles -----------------------------------------------------------------


def _corrupt_member(bundle, member_path, out):
    """A copy of `bundle` with one byte of `member_path`'s data flipped."""
    data = bytearray(bundle.read_bytes())
    with tarfile.open(bundle) as tar:
        offset = tar.getmember(member_path).offset_data
    data[offset + 10] ^= 0xFF
    out.write_bytes(bytes(data))
    return out


def test_a_corrupted_member_is_named_and_nothing_is_extracted(bundle, tmp_path):
    bad = _corrupt_member(bundle, "models/blob-int8.onnx", tmp_path / "bad-1.0.jkb")
    with pytest.raises(BundleError, match="models/blob-int8.onnx does not match its sha256"):
        verify_bundle(bad)
    with pytest.raises(BundleError, match="models/blob-int8.onnx does not match"):
        extract_bundle(bad, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad-1.0.jkb"]  # no folder, no temp
    assert_user_error(jetkit("bundle", "verify", bad), "blob-int8.onnx", "corrupt")


def test_a_truncated_bundle_is_refused(bundle, tmp_path):
    cut = tmp_path / "cut-1.0.jkb"
    cut.write_bytes(bundle.read_bytes()[: bundle.stat().st_size // 2])
    with pytest.raises(BundleError, match="truncated"):
        verify_bundle(cut)


def _craft(path, entries, index_changes=None, index_first=True):
    """A tar of `entries` ((TarInfo, bytes or None)) with an index listing the regular files."""
    members = [
        {
            "path": info.name,
            "sha256": hashlib.sha256(data).hexdigest(),
            "size_bytes": len(data),
            "role": "model",
        }
        for info, data in entries
        if info.isfile() and data is not None
    ]
    index = {
        "format": FORMAT,
        "format_version": 1,
        "name": "x",
        "version": "1",
        "models": [],
        "members": members,
    } | (index_changes or {})
    raw = json.dumps(index).encode()
    index_entry = (tarfile.TarInfo(INDEX_NAME), raw)
    index_entry[0].size = len(raw)
    ordered = [index_entry, *entries] if index_first else [*entries, index_entry]
    with tarfile.open(path, "w") as tar:
        for info, data in ordered:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name, data=b"x" * 64):
    return tarfile.TarInfo(name), data


def _link(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


@pytest.mark.parametrize(
    ("entries", "index_changes", "message"),
    [
        ([_file("/etc/evil")], None, "absolute"),
        ([_file("models/../../evil")], None, "'..'"),
        ([_file("models/a/b")], None, "directly in models/"),
        ([_link("models/link.onnx", "/etc/passwd")], None, "a link or special file"),
        ([_link("models/hard.onnx", "models/x.onnx", tarfile.LNKTYPE)], None, "a link"),
        ([_file("models/a.onnx")], {"members": []}, "is not in index.json"),
        ([_file("models/a.onnx")], {"format_version": 99}, "upgrade jetkit"),
        ([_file("models/a.onnx")], {"format": "zip"}, "not a jetkit bundle"),
        (
            [],
            {
                "members": [
                    {
                        "path": "models/gone.onnx",
                        "sha256": "0" * 64,
                        "size_bytes": 1,
                        "role": "model",
                    }
                ]
            },
            "lacks models/gone.onnx",
        ),
        ([_file("models/a.onnx")], {"name": "../up"}, "release name"),
    ],
)
def test_crafted_bundles_are_refused_before_anything_is_written(
    tmp_path, entries, index_changes, message
):
    crafted = _craft(tmp_path / "crafted-1.jkb", entries, index_changes)
    with pytest.raises(BundleError, match=message):
        verify_bundle(crafted)
    with pytest.raises(BundleError, match=message):
        extract_bundle(crafted, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crafted-1.jkb"]
    assert not (tmp_path.parent / "evil").exists()


def test_the_index_must_come_first_and_member_sizes_must_match(tmp_path):
    late = _craft(tmp_path / "late-1.jkb", [_file("models/a.onnx")], index_first=False)
    with pytest.raises(BundleError, match="not its first member"):
        verify_bundle(late)
    wrong = [{"path": "models/a.onnx", "sha256": "0" * 64, "size_bytes": 3, "role": "model"}]
    sized = _craft(tmp_path / "sized-1.jkb", [_file("models/a.onnx")], {"members": wrong})
    with pytest.raises(BundleError, match="is 64 bytes, the index says 3"):
        verify_bundle(sized)
    not_tar = tmp_path / "plain-1.jkb"
    not_tar.write_text("hello")
    with pytest.raises(BundleError, match="not a tar file"):
        verify_bundle(not_tar)


# --- what may go in ------------------------------------------------------------------------------


def test_a_model_without_a_manifest_goes_in_with_the_one_inspect_infers(
    ultralytics_like_onnx, tmp_path
):
    out = tmp_path / "det-1.0.0.jkb"
    result = jetkit("bundle", ultralytics_like_onnx, "-o", out)
    assert result.returncode == 0, result.stderr
    assert "yolov8n.onnx has no jetkit manifest; inferred one" in result.stderr
    assert not ultralytics_like_onnx.with_suffix(".json").exists()  # the user's folder as it was
    index = extract_bundle(out, tmp_path / "out")
    assert [(m.file, m.manifest, m.precision) for m in index.models] == [
        ("models/yolov8n.onnx", "models/yolov8n.json", "fp32")
    ]
    manifest = load_manifest(tmp_path / "out" / "models" / "yolov8n.json")
    inspected = json.loads(jetkit("inspect", ultralytics_like_onnx, "--json").stdout)
    assert manifest.classes == tuple(inspected["classes"]) == ("red", "green", "blue")
    assert manifest.provenance["inferred"]["by"] == "jetkit inspect"
    assert manifest.provenance["inferred"]["guessed"] == []  # Ultralytics' metadata said it all
    assert manifest.artifact.sha256 == _sha256(ultralytics_like_onnx)


def test_a_model_whose_manifest_cannot_be_inferred_names_the_flag(tmp_path):
    """An NMS-in-graph output `[1, 100, 6]` without class names: the number of classes cannot be
    told, so the bundle asks for --classes, and takes the model once they are given."""
    import onnx
    from onnx import TensorProto, helper

    shape = helper.make_tensor("shape", TensorProto.INT64, [3], [1, 100, 6])
    flat = helper.make_tensor("flat", TensorProto.INT64, [2], [1, -1])
    graph = helper.make_graph(
        [
            helper.make_node("Reshape", ["images", "flat"], ["rows"]),
            helper.make_node("Slice", ["rows", "zero", "six_hundred", "one"], ["head"]),
            helper.make_node("Reshape", ["head", "shape"], ["output0"]),
        ],
        "end2end",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 100, 6])],
        [
            shape,
            flat,
            helper.make_tensor("zero", TensorProto.INT64, [1], [0]),
            helper.make_tensor("six_hundred", TensorProto.INT64, [1], [600]),
            helper.make_tensor("one", TensorProto.INT64, [1], [1]),
        ],
    )
    model = tmp_path / "nms.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), model)
    out = tmp_path / "nms-1.0.jkb"
    assert_user_error(jetkit("bundle", model, "-o", out), "nms.onnx", "pass --classes")
    assert not out.exists()
    result = jetkit("bundle", model, "-o", out, "--classes", "car,truck")
    assert result.returncode == 0, result.stderr
    extract_bundle(out, tmp_path / "out")
    manifest = load_manifest(tmp_path / "out" / "models" / "nms.json")
    assert manifest.classes == ("car", "truck") and manifest.output.format == "end2end"
    assert "classes" not in manifest.provenance["inferred"]["guessed"]


def test_models_without_a_matching_manifest_are_refused(release_folder, tmp_path):
    changed = tmp_path / "changed"
    changed.mkdir()
    # Artifacts record their file's sha256 (`jetkit calibrate`, `jetkit export` write it).
    fp16 = (release_folder / "blob-fp16.onnx").read_bytes()
    (changed / "blob-fp16.onnx").write_bytes(fp16 + b"\0")
    (changed / "blob-fp16.json").write_text((release_folder / "blob-fp16.json").read_text())
    assert_user_error(
        jetkit("bundle", changed, "-o", tmp_path / "b-1.jkb"), "does not match its manifest"
    )
    assert_user_error(jetkit("bundle", tmp_path / "nothing", "-o", tmp_path / "b-1.jkb"), "no such")
    assert_user_error(jetkit("bundle", release_folder, "-o", tmp_path / "b.jkb"), "NAME-VERSION")
    assert not list(tmp_path.glob("*.jkb"))


def test_two_models_with_one_file_name_are_refused(release_folder, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    for name in ("blob.onnx", "blob.json"):
        (other / name).write_bytes((release_folder / name).read_bytes())
    with pytest.raises(JetkitError, match="would both be models/blob.onnx in the bundle"):
        collect_inputs([release_folder, other])


def test_prebuilt_engines_go_in_with_their_key(release_folder, tmp_path):
    """An engine's bytes are opaque to the bundle (none can be built here); its manifest, made
    by the same function `jetkit build` uses, carries the key deploy's cache looks up."""
    from calibration.engine import BuildConfig, EngineKey, engine_manifest

    source = release_folder / "blob.onnx"
    engine = tmp_path / "blob-trt-fp16.engine"
    engine.write_bytes(b"plan bytes from a Jetson")
    key = EngineKey(_sha256(source), "fp16", "10.3.0", "8.7", None, 8)
    manifest = engine_manifest(
        load_manifest(release_folder / "blob.json"),
        source,
        engine,
        BuildConfig(),
        key,
        "36.4.0",
        None,
        {},
    )
    save_manifest(manifest, tmp_path / "blob-trt-fp16.json")
    out = tmp_path / "with-engine-2.0.jkb"
    result = jetkit("bundle", source, "--include-engine", engine, "-o", out)
    assert result.returncode == 0, result.stderr
    index = verify_bundle(out)
    (bundled,) = index.engines
    assert bundled.file == "engines/blob-trt-fp16.engine"
    assert bundled.key["name"] == key.name and bundled.key["tensorrt"] == "10.3.0"
    assert_user_error(
        jetkit("bundle", source, "--include-engine", source, "-o", tmp_path / "e-1.jkb"),
        "no engine key",
    )


def test_a_file_changing_while_it_is_bundled_leaves_the_previous_bundle(release_folder, tmp_path):
    for name in ("blob.onnx", "blob.json"):
        (tmp_path / name).write_bytes((release_folder / name).read_bytes())
    inputs, keys = collect_inputs([tmp_path / "blob.onnx"])
    index = build_index("x", "1", inputs, keys)
    model = tmp_path / "blob.onnx"
    model.write_bytes(model.read_bytes()[:-1] + b"\1")  # same size, other content
    out = tmp_path / "x-1.jkb"
    out.write_bytes(b"the previous bundle")
    with pytest.raises(JetkitError, match="models/blob.onnx changed while the bundle was written"):
        write_bundle(out, index, inputs)
    assert out.read_bytes() == b"the previous bundle"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blob.json", "blob.onnx", "x-1.jkb"]


def test_gate_reports_are_read_in_the_verifying_pass(bundle):
    """What `--precision auto` trusts: the gate reports' `passed`, read while their digests are
    checked; a report that is not calibrate's counts as not passed."""
    index, kept = verify_and_read(bundle, ("gate-report",))
    assert index == verify_bundle(bundle) and set(kept) == {"models/blob-int8.gate.json"}
    assert gate_outcomes(kept) == {"models/blob-int8.onnx": True}
    foreign = {"a": b"not json", "b": b"[1]", "c": b'{"passed": "yes"}', "d": b'{"passed": false}'}
    reports = {f"models/{name}.gate.json": data for name, data in foreign.items()}
    assert gate_outcomes(reports) == {f"models/{name}.onnx": False for name in foreign}


def test_a_bundle_cut_inside_its_index_is_one_line_in_verify_and_flash(bundle, tmp_path):
    cut = tmp_path / "blob-1.0.0.jkb"
    cut.write_bytes(bundle.read_bytes()[:700])  # the tar header, then part of index.json
    assert_user_error(jetkit("bundle", "verify", cut), "truncated", "copy it again")
    flashed = jetkit("flash", cut, "--target", f"file://{tmp_path / 'device'}")
    assert_user_error(flashed, "truncated", "copy it again", progress=True)
    assert not (tmp_path / "device").exists()
