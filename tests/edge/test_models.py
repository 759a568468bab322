"""Finding or inferring a model's manifest: Ultralytics metadata, tensor shapes, overrides."""

import json

import pytest

from edge.backends import open_backend
from edge.backends.base import TensorSpec
from edge.errors import JetkitError, ManifestError
from edge.manifest import load_manifest, save_manifest, sidecar_path
from edge.models import (
    Overrides,
    guess_output_format,
    infer_manifest,
    parse_classes,
    parse_imgsz,
    resolve_manifest,
)
from edge.samples import build_blob_detector

IMAGES = TensorSpec("images", ("batch", 3, 640, 640), "float32")
ULTRALYTICS_METADATA = {
    "description": "Ultralytics YOLOv8n model trained on coco.yaml",
    "task": "detect",
    "stride": "32",
    "batch": "1",
    "imgsz": "[640, 640]",
    "names": "{0: 'person', 1: 'bicycle', 2: 'car'}",
}


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ((1, 84, 8400), ("yolov8", 80)),
        ((1, 300, 6), ("end2end", None)),
        ((1, 8400, 85), ("yolox", 80)),
        ((1, 25200, 85), ("yolov5", 80)),
        ((1, 25200, 6), ("yolov5", 1)),
    ],
)
def test_output_format_from_shape(shape, expected):
    assert guess_output_format(shape, (640, 640), (8, 16, 32)) == expected


def test_unrecognisable_output_asks_for_format():
    with pytest.raises(JetkitError, match="pass --format"):
        guess_output_format((1, 1000, 1000), (640, 640), (8, 16, 32))
    with pytest.raises(JetkitError, match="pass --format"):
        guess_output_format((1, 1000), (640, 640), (8, 16, 32))


def test_ultralytics_metadata_gives_names_size_and_batch_without_guesses():
    outputs = (TensorSpec("output0", ("batch", 7, "anchors"), "float32"),)
    images = TensorSpec("images", ("batch", 3, "height", "width"), "float32")
    manifest, guessed = infer_manifest(
        ULTRALYTICS_METADATA, (images,), outputs, "yolov8n.onnx", Overrides(format="yolov8")
    )
    assert manifest.classes == ("person", "bicycle", "car")
    assert manifest.input.size_hw == (640, 640)
    assert manifest.preprocess.pad_value == 114 and manifest.preprocess.color == "RGB"
    assert guessed == ("input.max_batch",)


def test_metadata_is_parsed_as_literals_never_evaluated():
    hostile = dict(ULTRALYTICS_METADATA, names="__import__('os').system('false')")
    outputs = (TensorSpec("output0", (1, 7, 8400), "float32"),)
    manifest, guessed = infer_manifest(hostile, (IMAGES,), outputs, "m.onnx")
    assert manifest.classes == ("class0", "class1", "class2")
    assert "classes" in guessed


def test_shapes_alone_give_a_manifest_with_guesses_listed():
    outputs = (TensorSpec("out", (1, 8400, 7), "float32"),)
    manifest, guessed = infer_manifest(
        {}, (TensorSpec("x", (1, 3, 640, 640), "float32"),), outputs, "yolox_s.onnx"
    )
    assert manifest.output.format == "yolox"
    assert manifest.preprocess.color == "BGR" and manifest.preprocess.scale == 1.0
    assert manifest.preprocess.pad_position == "top_left"
    assert set(guessed) == {"output.format", "classes", "preprocess"}


def test_dynamic_size_without_metadata_needs_imgsz():
    images = TensorSpec("images", ("batch", 3, "h", "w"), "float32")
    outputs = (TensorSpec("output0", ("batch", 84, "n"), "float32"),)
    with pytest.raises(JetkitError, match="--imgsz"):
        infer_manifest({}, (images,), outputs, "m.onnx", Overrides(format="yolov8"))
    manifest, _ = infer_manifest(
        {}, (images,), outputs, "m.onnx", Overrides(format="yolov8", imgsz_hw=(480, 640))
    )
    assert manifest.input.size_hw == (480, 640)


def test_class_names_must_match_the_output():
    outputs = (TensorSpec("output0", (1, 84, 8400), "float32"),)
    with pytest.raises(JetkitError, match="3 class names for an output with 80 classes"):
        infer_manifest({}, (IMAGES,), outputs, "m.onnx", Overrides(classes=("a", "b", "c")))


def test_non_image_input_is_refused():
    with pytest.raises(JetkitError, match=r"expected an image tensor"):
        infer_manifest(
            {},
            (TensorSpec("tokens", (1, 128), "int64"),),
            (TensorSpec("o", (1, 2), "float32"),),
            "bert.onnx",
        )


def test_parse_imgsz_and_classes(tmp_path):
    assert parse_imgsz("640") == (640, 640)
    assert parse_imgsz("384x640") == (384, 640)
    with pytest.raises(JetkitError, match="--imgsz"):
        parse_imgsz("big")
    assert parse_classes("cat, dog") == ("cat", "dog")
    names = tmp_path / "names.txt"
    names.write_text("cat\n\ndog\n")
    assert parse_classes(str(names)) == ("cat", "dog")


def test_embedded_manifest_wins(blob_onnx):
    resolved = resolve_manifest(blob_onnx, open_backend(str(blob_onnx)))
    assert resolved.origin == "embedded" and resolved.guessed == ()
    assert resolved.manifest.classes == ("red", "green", "blue")


def test_sidecar_is_used_when_nothing_is_embedded(tmp_path):
    path = tmp_path / "side.onnx"
    build_blob_detector(path, manifest_in="sidecar")
    resolved = resolve_manifest(path, open_backend(str(path)))
    assert resolved.origin == "sidecar"
    assert resolved.manifest.artifact.sha256 is not None


def test_ultralytics_like_model_is_inferred_from_its_metadata(tmp_path):
    path = tmp_path / "ultra.onnx"
    metadata = dict(
        ULTRALYTICS_METADATA, names="{0: 'red', 1: 'green', 2: 'blue'}", imgsz="[320, 320]"
    )
    build_blob_detector(path, manifest_in="none", metadata=metadata)
    resolved = resolve_manifest(path, open_backend(str(path)))
    assert resolved.origin == "inferred"
    assert resolved.manifest.classes == ("red", "green", "blue")
    assert resolved.manifest.output.format == "yolov8"
    assert len(resolved.manifest.artifact.sha256) == 64


def test_a_sidecar_naming_a_missing_output_is_refused(tmp_path):
    path = tmp_path / "m.onnx"
    build_blob_detector(path, manifest_in="sidecar")
    manifest = load_manifest(sidecar_path(path))
    data = manifest.to_dict()
    data["output"]["names"] = ["boxes"]
    sidecar_path(path).write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="'boxes' is not an output") as info:
        resolve_manifest(path, open_backend(str(path)))
    assert "m.json" in str(info.value)
    save_manifest(
        manifest.replace(input=manifest.input.__class__(shape=(1, 3, 640, 640))), sidecar_path(path)
    )
    with pytest.raises(ManifestError, match="does not match the model"):
        resolve_manifest(path, open_backend(str(path)))
