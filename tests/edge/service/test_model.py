"""Which model a release pointer stands for, and noticing when it changes."""

import json
import os

import pytest

from edge.errors import JetkitError
from edge.service.model import identify, model_file, pick_model


def test_pick_model_prefers_the_index_then_an_engine_with_tensorrt_then_the_onnx():
    names = ["model.json", "model.onnx", "model-trt-fp16.engine"]
    assert pick_model(names, {"model": "model.onnx"}, tensorrt=True) == "model.onnx"
    assert pick_model(names, None, tensorrt=True) == "model-trt-fp16.engine"
    assert pick_model(names, None, tensorrt=False) == "model.onnx"
    with pytest.raises(JetkitError, match="several models"):
        pick_model(["a.onnx", "b.onnx"], None, tensorrt=False)
    with pytest.raises(JetkitError, match="holds no model"):
        pick_model(["notes.txt"], None, tensorrt=False)
    with pytest.raises(JetkitError, match="names model 'gone.onnx'"):
        pick_model(names, {"model": "gone.onnx"}, tensorrt=False)


def test_a_current_pointer_is_followed_and_a_switch_changes_the_identity(tmp_path):
    for version in ("v1", "v2"):
        release = tmp_path / "releases" / version
        release.mkdir(parents=True)
        (release / "model.onnx").write_bytes(version.encode() * 10)
        (release / "release.json").write_text(json.dumps({"model": "model.onnx"}))
    current = tmp_path / "current"
    current.symlink_to(tmp_path / "releases" / "v1")
    first = identify(current, tensorrt=False)
    assert first.path == (tmp_path / "releases/v1/model.onnx").resolve()
    # The switch deploy makes: a new link renamed over the old one.
    (tmp_path / "next").symlink_to(tmp_path / "releases" / "v2")
    os.replace(tmp_path / "next", current)
    second = identify(current, tensorrt=False)
    assert second.path == (tmp_path / "releases/v2/model.onnx").resolve() and second != first
    assert model_file(second.path, tensorrt=False) == second.path  # a file stands for itself
    with pytest.raises(JetkitError, match="does not exist"):
        model_file(tmp_path / "absent", tensorrt=False)
