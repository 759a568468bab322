"""Fuzzing the manifest readers: any JSON document, any manifest file and any Ultralytics-style
`metadata_props` give a valid manifest or a ManifestError / JetkitError, never a traceback."""

from __future__ import annotations

import json
import math

import fuzz
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from edge.backends.base import TensorSpec
from edge.manifest import MANIFEST_KEY, SCHEMA, Manifest, ManifestError, load_manifest
from edge.models import Overrides, infer_manifest, open_manifest
from edge.samples import blob_manifest, build_blob_detector

VALID = blob_manifest((320, 320), 8, True, "blob.onnx").to_dict()
SECTIONS = ("input", "preprocess", "output", "postprocess", "artifact", "target")
VALID["target"] = {"tensorrt": "10.3.0", "compute_capability": "8.7", "l4t": "36.4", "dla_core": 0}


def _assert_valid(manifest: Manifest) -> None:
    """A manifest that came back is one the kit can use: typed fields, and it survives being
    written and read again."""
    assert isinstance(manifest.name, str)
    assert all(isinstance(c, str) for c in manifest.classes) and manifest.classes
    assert isinstance(manifest.provenance, dict)
    if manifest.target is not None:
        assert manifest.target.l4t is None or isinstance(manifest.target.l4t, str)
    again = Manifest.from_json(manifest.to_json())
    assert again.to_json() == manifest.to_json()


def _same(a: object, b: object) -> bool:
    """Equal as JSON values (a tuple is a list, 1 is 1.0), NaN equal to NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if {type(a), type(b)} == {int, float}:
        return float(a) == float(b)  # a float field holds what float() makes of an integer
    return a == b


def _assert_says(document: dict, manifest: Manifest) -> None:
    """Each field the document gives is the manifest's (no string taken as a list of names)."""
    data = manifest.to_dict()
    for key, value in document.items():
        if key in SECTIONS and isinstance(value, dict):
            for field, given in value.items():
                assert _same(data[key][field], given), (key, field)
        else:
            assert _same(data[key], value), key


def test_the_valid_document_is_a_manifest():
    _assert_valid(Manifest.from_dict(VALID))


@settings(max_examples=fuzz.examples(500))
@given(fuzz.mutated(VALID, max_changes=3))
@example({**VALID, "postprocess": {"conf_threshold": 10**400}})  # float() overflowed
@example({**VALID, "preprocess": {"scale": 10**400}})
@example({**VALID, "preprocess": {"mean": [0, 0, -(10**400)]}})
@example({**VALID, "name": ["not", "a", "name"]})  # was accepted
@example({**VALID, "target": {**VALID["target"], "l4t": {}}})  # was accepted
@example({**VALID, "output": {"format": "yolov8", "names": 7}})  # blamed "output.strides"
@example({**VALID, "output": {"format": "yolov8", "names": "output0"}})  # 7 names, o u t p u t 0
def test_any_change_to_a_valid_manifest_gives_a_manifest_or_a_manifest_error(document):
    manifest = fuzz.user_error_or(lambda: Manifest.from_dict(document, "fuzz.json"))
    if manifest is not None:
        _assert_valid(manifest)
        _assert_says(document, manifest)


@settings(max_examples=fuzz.examples(300))
@given(fuzz.json_values)
def test_any_json_value_is_a_manifest_or_a_manifest_error(document):
    try:
        _assert_valid(Manifest.from_dict(document))
    except ManifestError as error:
        assert "manifest field" in str(error)


json_text = st.one_of(
    st.text(max_size=200),
    fuzz.mutated(VALID).map(json.dumps),
    # Some of a valid document's text, or the text with a character changed.
    st.tuples(st.just(json.dumps(VALID)), st.integers(0, 2000), fuzz.tricky_text).map(
        lambda t: t[0][: t[1]] + t[2] + t[0][t[1] + 1 :]
    ),
)


@settings(max_examples=fuzz.examples(400))
@given(json_text)
@example('{"schema": "jetkit.manifest/1", "provenance": ' + "1" * 5000 + "}")  # ValueError
@example(fuzz.deep_nesting("[", "]"))  # RecursionError
@example('{"provenance": ' + fuzz.deep_nesting("[", "]", 600) + "}")
def test_any_text_is_a_manifest_or_a_manifest_error(text):
    manifest = fuzz.user_error_or(lambda: Manifest.from_json(text, "m.json"))
    if manifest is not None:
        _assert_valid(manifest)


@settings(
    max_examples=fuzz.examples(100), suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=300) | json_text.map(lambda t: t.encode("utf-8", "surrogatepass")))
@example(b"\xff\xfe{}")
def test_any_file_is_a_manifest_or_a_manifest_error(tmp_path, data):
    path = tmp_path / "m.json"
    path.write_bytes(data)
    manifest = fuzz.user_error_or(lambda: load_manifest(path))
    if manifest is not None:
        _assert_valid(manifest)


# --- Ultralytics metadata_props: Python literals read with ast.literal_eval ------------------------

ULTRALYTICS = {
    "description": "Ultralytics YOLOv8n model trained on blobs.yaml",
    "author": "Ultralytics",
    "task": "detect",
    "stride": "32",
    "batch": "1",
    "imgsz": "[320, 320]",
    "names": "{0: 'red', 1: 'blue'}",
}
METADATA_KEYS = ["names", "imgsz", "stride", "batch"]
python_literals = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(max_size=8),
        st.complex_numbers(),
        st.binary(max_size=4),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=4).map(tuple),
        st.dictionaries(st.integers() | st.text(max_size=4), children, max_size=4),
        st.sets(st.integers() | st.text(max_size=4), max_size=3),
    ),
    max_leaves=8,
)
literal_text = st.one_of(
    python_literals.map(repr),
    fuzz.tricky_text,
    st.sampled_from(["{[1]: 'a'}", "{{1}}", "{0: 'a', True: 'b'}", "[-1, 0]", "[1e400, 2]"]),
)
metadata = st.one_of(
    st.dictionaries(st.sampled_from(METADATA_KEYS), literal_text, max_size=4).map(
        lambda changes: {**ULTRALYTICS, **changes}
    ),
    st.dictionaries(st.sampled_from(METADATA_KEYS) | st.text(max_size=6), literal_text),
)
# A dynamic-size image input (so imgsz comes from the metadata) and a few output layouts.
images = st.sampled_from(
    [
        TensorSpec("images", ("batch", 3, "height", "width"), "float32"),
        TensorSpec("images", (1, 3, "height", "width"), "float16"),
        TensorSpec("images", (1, 3, 320, 320), "float32"),
    ]
)
outputs = st.sampled_from(
    [
        (TensorSpec("output0", ("batch", 6, "anchors"), "float32"),),
        (TensorSpec("output0", (1, 6, 2100), "float32"),),
        (TensorSpec("output0", (1, 2100, 7), "float32"),),
        (TensorSpec("output0", (1, 100, 6), "float32"),),
    ]
)
overrides = st.sampled_from(
    [Overrides(), Overrides(format="yolov8"), Overrides(format="yolox"), Overrides(format="yolov5")]
)


@settings(max_examples=fuzz.examples(500))
@given(metadata, images, outputs, overrides)
@example(  # ast.literal_eval raised TypeError (unhashable type: 'list')
    {**ULTRALYTICS, "names": "{[1]: 'a'}"},
    TensorSpec("images", (1, 3, 320, 320), "float32"),
    (TensorSpec("output0", (1, 6, 2100), "float32"),),
    Overrides(),
)
@example(  # int(float("inf")) raised OverflowError; "['a', 1]" ValueError, "[None, 1]" TypeError
    {**ULTRALYTICS, "imgsz": "[1e400, 320]"},
    TensorSpec("images", ("batch", 3, "height", "width"), "float32"),
    (TensorSpec("output0", ("batch", 6, "anchors"), "float32"),),
    Overrides(format="yolov8"),
)
def test_any_ultralytics_metadata_gives_a_manifest_or_a_jetkit_error(meta, image, output, override):
    result = fuzz.user_error_or(
        lambda: infer_manifest(meta, (image,), output, "yolov8n.onnx", override)
    )
    if result is not None:
        manifest, guessed = result
        _assert_valid(manifest)
        assert manifest.schema == SCHEMA and all(isinstance(g, str) for g in guessed)


# --- a real ONNX file: what `jetkit inspect` and `jetkit bundle` read ------------------------------


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    """The blob sample (64x64, static batch 1) with no manifest, as an onnx.ModelProto."""
    import onnx

    path = tmp_path_factory.mktemp("onnx") / "blob.onnx"
    build_blob_detector(
        path, input_hw=(64, 64), max_batch=1, dynamic_batch=False, manifest_in="none"
    )
    return onnx.load(str(path)), path.parent


EMBEDDED = blob_manifest((64, 64), 1, False, "blob.onnx").to_dict()
metadata_props = st.one_of(
    fuzz.mutated(EMBEDDED).map(lambda d: {MANIFEST_KEY: json.dumps(d)}),
    json_text.map(lambda t: {MANIFEST_KEY: t}),
    st.dictionaries(st.sampled_from(METADATA_KEYS), literal_text, max_size=4).map(
        lambda changes: {**ULTRALYTICS, **changes}
    ),
)


@settings(max_examples=fuzz.examples(150))
@given(metadata_props)
def test_any_metadata_props_in_a_real_onnx_open_or_raise_a_jetkit_error(onnx_model, props):
    proto, folder = onnx_model
    model = type(proto)()
    model.CopyFrom(proto)
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    path = folder / "fuzzed.onnx"
    path.write_bytes(model.SerializeToString())
    resolved = fuzz.user_error_or(lambda: open_manifest(path))
    if resolved is not None:
        event(f"a manifest, {resolved.origin}")
        _assert_valid(resolved.manifest)
