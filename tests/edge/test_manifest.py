"""The manifest: defaults, JSON round trip, atomic save, and errors that name field and file."""

import json

import pytest

from edge.errors import ManifestError
from edge.manifest import (
    MANIFEST_KEY,
    ArtifactSpec,
    InputSpec,
    Manifest,
    OutputSpec,
    TargetSpec,
    embed_manifest,
    load_manifest,
    save_manifest,
    sidecar_path,
)


def make_manifest(**changes):
    manifest = Manifest(
        input=InputSpec(shape=(1, 3, 640, 640)),
        output=OutputSpec(format="yolov8"),
        classes=("person", "car"),
        artifact=ArtifactSpec(file="model.onnx"),
    )
    return manifest.replace(**changes)


def test_round_trip_through_json(tmp_path):
    manifest = make_manifest(
        target=TargetSpec(tensorrt="10.3.0", compute_capability="8.7", l4t="36.4.0")
    )
    path = save_manifest(manifest, tmp_path / "model.json")
    assert load_manifest(path) == manifest
    assert json.loads(path.read_text())["schema"] == "jetkit.manifest/1"


def test_save_replaces_atomically_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "model.json"
    save_manifest(make_manifest(), path)
    save_manifest(make_manifest(classes=("a",)), path)
    assert load_manifest(path).classes == ("a",)
    assert [p.name for p in tmp_path.iterdir()] == ["model.json"]


def test_sidecar_path_is_beside_the_model():
    assert str(sidecar_path("runs/x/model.onnx")) == "runs/x/model.json"


@pytest.mark.parametrize(
    ("mutate", "field", "problem"),
    [
        (lambda d: d["output"].update(format="detr"), "output.format", "not one of"),
        (lambda d: d["input"].update(shape=[1, 1, 640, 640]), "input.shape", "3 channels"),
        (lambda d: d["input"].update(max_batch=4), "input.max_batch", "static-batch"),
        (lambda d: d["preprocess"].update(std=[1, 0, 1]), "preprocess.std", "> 0"),
        (lambda d: d["preprocess"].update(pad_value=300), "preprocess.pad_value", "0-255"),
        (
            lambda d: d["postprocess"].update(iou_threshold=1.5),
            "postprocess.iou_threshold",
            "[0, 1]",
        ),
        (lambda d: d["artifact"].update(sha256="xyz"), "artifact.sha256", "hex"),
        (lambda d: d.update(classes=[]), "classes", "at least one"),
        (lambda d: d.update(schema="jetkit.manifest/9"), "schema", "expected"),
        (lambda d: d["input"].update(colour="RGB"), "input.colour", "unknown field"),
        (lambda d: d.pop("output"), "output", "required"),
        (
            lambda d: d["input"].pop("name") and d["input"].update(name=""),
            "input.name",
            "tensor name",
        ),
    ],
)
def test_validation_errors_name_the_field_and_the_file(tmp_path, mutate, field, problem):
    data = make_manifest().to_dict()
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert info.value.field == field
    assert problem in str(info.value)
    assert str(path) in str(info.value)


def test_not_json_and_missing_file(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{ not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        load_manifest(broken)
    with pytest.raises(ManifestError, match="no such file"):
        load_manifest(tmp_path / "absent.json")


def test_embedding_replaces_an_earlier_manifest():
    onnx = pytest.importorskip("onnx")
    model = onnx.ModelProto()
    embed_manifest(model, make_manifest(classes=("old",)))
    embed_manifest(model, make_manifest())
    entries = [p for p in model.metadata_props if p.key == MANIFEST_KEY]
    assert len(entries) == 1
    assert Manifest.from_json(entries[0].value) == make_manifest()
