"""What happens around TensorRT's build calls: calibration data errors kept and raised, where
DLA layers land, the engine inspector's summary, and a timing cache TensorRT refuses."""

import json

import cv2
import numpy as np
import pytest

from calibration.data import CalibrationBatches
from calibration.trt_build_plan import (
    CalibrationFeed,
    DlaPlacement,
    attach_timing_cache,
    summarize_engine_layers,
)
from edge.detector import Detector
from edge.errors import JetkitError
from edge.samples import draw_blob_scene


@pytest.fixture
def images_with_a_corrupt_one(tmp_path):
    paths = []
    for i in range(4):
        path = tmp_path / f"{i}.png"
        cv2.imwrite(str(path), draw_blob_scene((160, 120), {"red": (10, 10, 80, 80)}, seed=i))
        paths.append(path)
    paths[2].write_bytes(b"\x89PNG truncated")
    return paths


def test_a_corrupt_calibration_image_stops_the_feed_and_is_raised_by_name(
    blob_onnx, images_with_a_corrupt_one
):
    manifest = Detector.open(blob_onnx).manifest
    feed = CalibrationFeed(CalibrationBatches(images_with_a_corrupt_one, manifest, batch=1), 1)
    batches = []
    while (batch := feed.next_batch()) is not None:
        batches.append(batch)
    # What TensorRT sees: the data ends early, exactly as its wrapper would make it.
    assert len(batches) == 2 and feed.used == 2
    with pytest.raises(JetkitError, match=r"calibration stopped: image .*2\.png cannot be read"):
        feed.raise_if_failed()


def test_a_complete_feed_skips_the_short_last_batch_and_raises_nothing():
    feed = CalibrationFeed(
        [np.zeros((2, 3, 8, 8)), np.zeros((2, 3, 8, 8)), np.zeros((1, 3, 8, 8))], 2
    )
    assert feed.next_batch() is not None and feed.next_batch() is not None
    assert feed.next_batch() is None and feed.skipped == 1
    feed.raise_if_failed()


def test_an_unexpected_error_keeps_its_type_and_the_batches_used():
    def batches():
        yield np.zeros((1, 3, 8, 8))
        raise MemoryError("out of host memory")

    feed = CalibrationFeed(batches(), 1)
    assert feed.next_batch() is not None and feed.next_batch() is None
    with pytest.raises(JetkitError, match="after 1 batches: MemoryError: out of host memory"):
        feed.raise_if_failed()


def test_dla_placement_reports_the_gpu_fallbacks_and_refuses_an_all_gpu_engine():
    placement = DlaPlacement.from_layers([("conv0", True), ("relu0", True), ("decode", False)])
    assert placement.describe() == "2 of 3 layers on the DLA; on the GPU: decode"
    assert placement.to_dict() == {"dla_layers": 2, "gpu_layers": 1, "gpu_fallback": ["decode"]}
    placement.require_some_on_dla("m.onnx")
    nothing = DlaPlacement.from_layers([("gather", False), ("topk", False)])
    with pytest.raises(JetkitError, match="no layer of m.onnx can run on the DLA"):
        nothing.require_some_on_dla("m.onnx")


def test_engine_inspector_summary_counts_dla_subgraphs_not_myelin_regions():
    # The shape TensorRT's inspector gives with ProfilingVerbosity.DETAILED: a DLA subgraph is
    # a ForeignNode between copies to and from DLA memory; Myelin regions are GPU ForeignNodes.
    info = {
        "Layers": [
            {"Name": "images to nvm", "LayerType": "Reformat"},
            {"Name": "{ForeignNode[conv0...relu1]}", "LayerType": "DLA"},
            {"Name": "relu1 from nvm", "LayerType": "Reformat"},
            {"Name": "{ForeignNode[Reshape...Concat]}", "LayerType": "Myelin"},
        ],
        "Bindings": ["images", "output0"],
    }
    summary = summarize_engine_layers(json.dumps(info))
    assert summary == {
        "layers": 4,
        "by_type": {"Reformat": 2, "DLA": 1, "Myelin": 1},
        "dla_subgraphs": 1,
        "dla_copies": 2,
    }
    gpu_only = {"Layers": ["conv0", "{ForeignNode[a...b]}"]}  # LAYER_NAMES_ONLY: names only
    assert summarize_engine_layers(json.dumps(gpu_only))["dla_subgraphs"] == 0
    with pytest.raises(JetkitError, match="no JSON"):
        summarize_engine_layers("not json")


class FakeTensorRTCacheCalls:
    """`create_timing_cache`/`set_timing_cache` as TensorRT answers a cache from another
    version: it raises, returns None, or returns a cache `set_timing_cache` refuses."""

    def __init__(self, foreign):
        self.foreign = foreign
        self.attached = []

    def create(self, data):
        if data and self.foreign == "raises":
            raise RuntimeError("Version tag does not match")
        if data and self.foreign == "none":
            return None
        return ("cache", data)

    def attach(self, cache):
        if cache[1] and self.foreign == "refused":
            return False
        self.attached.append(cache)
        return True


@pytest.mark.parametrize("foreign", ["raises", "none", "refused"])
def test_a_foreign_timing_cache_falls_back_to_a_fresh_one_and_says_so(foreign):
    calls, messages = FakeTensorRTCacheCalls(foreign), []
    cache = attach_timing_cache(b"old", calls.create, calls.attach, "t.cache", messages.append)
    assert cache == ("cache", b"") and calls.attached == [("cache", b"")]
    assert any("starting a new one" in m for m in messages)


def test_a_matching_timing_cache_is_reused():
    calls, messages = FakeTensorRTCacheCalls("ok"), []
    assert attach_timing_cache(b"old", calls.create, calls.attach, "t.cache", messages.append) == (
        "cache",
        b"old",
    )
    assert messages == ["reusing timing cache t.cache"]
