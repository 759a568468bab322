"""Shared fixtures, and the `jetson`/`gpu` markers: such tests run only with `--run-device` on a
machine that has TensorRT (jetson) or a CUDA GPU (gpu), and skip with the reason elsewhere."""

from __future__ import annotations

import importlib.util
import os

import numpy as np

# Before torch and GStreamer: with torch imported and then Gst.init() run, an onnxruntime loaded
# afterwards crashes the process (SIGSEGV) when it raises an error, e.g. on a truncated model.
# The suite imports all three; the edge runtime, which never imports torch, is not affected.
import onnxruntime  # noqa: F401  (isort: keep first)
import pytest
from hypothesis import settings

from edge.samples import BLOB_CLASSES, build_blob_detector, draw_blob_scene

# The parser fuzzers (tests/**/test_*_fuzz.py): the same examples on every run (a failure
# reproduces; nothing is stored in a .hypothesis folder), no per-example deadline on a busy
# 2-core machine. Each fuzzer sets its own max_examples through `fuzz.examples`, which
# JETKIT_FUZZ_SCALE multiplies; HYPOTHESIS_PROFILE=explore draws new examples on each run.
settings.register_profile("ci", deadline=None, derandomize=True, database=None)
settings.register_profile("explore", deadline=None, derandomize=False, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-device",
        action="store_true",
        help="run the tests marked jetson/gpu (make test-jetson on a device)",
    )


def _tensorrt_missing() -> str | None:
    if importlib.util.find_spec("tensorrt") is None:
        return "TensorRT is not installed here"
    import tensorrt

    if not hasattr(tensorrt, "Builder"):
        return "only TensorRT type stubs are installed here, not TensorRT"
    return None


def _cuda_missing() -> str | None:
    for module in ("pycuda", "cuda"):
        if importlib.util.find_spec(module) is not None:
            return None
    return "neither pycuda nor cuda-python is installed (no CUDA here)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run_device = config.getoption("--run-device")
    missing_by_item = {}
    for item in items:
        reasons = []
        if "jetson" in item.keywords:
            reasons += [r for r in (_tensorrt_missing(), _cuda_missing()) if r]
        if "gpu" in item.keywords:
            reasons += [r for r in (_cuda_missing(),) if r]
        missing_by_item[item] = reasons
    if run_device:
        # On a device, a missing TensorRT or CUDA is the failure to report, not a skip: a run
        # that skipped every device test would look green.
        missing = sorted({reason for reasons in missing_by_item.values() for reason in reasons})
        if missing:
            raise pytest.UsageError(
                f"--run-device: {'; '.join(missing)}; run the device tests where TensorRT and "
                'CUDA are (`make test-jetson` on a Jetson, README "Jetson install")'
            )
        return
    for item, reasons in missing_by_item.items():
        if "jetson" in item.keywords or "gpu" in item.keywords:
            # The trainer's TensorRT tests need torch too, which the Jetson environment lacks.
            if "gpu" in item.keywords:
                target = "test-gpu"
            elif item.nodeid.startswith("tests/trainer/"):
                target = "test-trainer-tensorrt"
            else:
                target = "test-jetson"
            reasons.append(f"device test: run with `make {target}` (pytest --run-device)")
        if reasons:
            item.add_marker(pytest.mark.skip(reason="; ".join(reasons)))


# --- shared artifacts ----------------------------------------------------------------------------

# The scene every end-to-end test looks at: a 1280x720 frame with a red and a blue box.
SCENE_SIZE_WH = (1280, 720)
SCENE_BOXES = {"red": (100, 96, 420, 336), "blue": (760, 400, 1160, 688)}


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def blob_onnx(models_dir):
    """The sample detector with its manifest embedded: 320x320, dynamic batch up to 8."""
    path = models_dir / "blob.onnx"
    build_blob_detector(path, input_hw=(320, 320), max_batch=8, dynamic_batch=True)
    return path


@pytest.fixture(scope="session")
def ultralytics_like_onnx(models_dir):
    """The sample detector as an Ultralytics export ships a model: no jetkit manifest, and
    Ultralytics' own metadata_props (Python reprs) from which `jetkit inspect` infers one."""
    path = models_dir / "ultralytics" / "yolov8n.onnx"
    path.parent.mkdir()
    metadata = {
        "description": "Ultralytics YOLOv8n model trained on blobs.yaml",
        "author": "Ultralytics",
        "task": "detect",
        "stride": "32",
        "batch": "1",
        "imgsz": "[320, 320]",
        "names": repr(dict(enumerate(BLOB_CLASSES))),
    }
    build_blob_detector(
        path, dynamic_batch=False, max_batch=1, manifest_in="none", metadata=metadata
    )
    return path


@pytest.fixture(scope="session")
def scene_bgr() -> np.ndarray:
    return draw_blob_scene(SCENE_SIZE_WH, SCENE_BOXES)


@pytest.fixture(scope="session")
def scene_png(tmp_path_factory: pytest.TempPathFactory, scene_bgr: np.ndarray):
    import cv2

    path = tmp_path_factory.mktemp("images") / "scene.png"
    cv2.imwrite(str(path), scene_bgr)
    return path


@pytest.fixture(scope="session")
def scene_boxes() -> dict[str, tuple[int, int, int, int]]:
    """Where `scene_bgr` has its objects, as class name → xyxy in frame pixels."""
    return SCENE_BOXES


@pytest.fixture(scope="session")
def blob_val(tmp_path_factory):
    """Twelve blob scenes as a YOLO data set, boxes known exactly."""
    import cv2

    root = tmp_path_factory.mktemp("blobs")
    rng = np.random.default_rng(1)
    for i in range(12):
        (root / "images").mkdir(exist_ok=True)
        (root / "labels").mkdir(exist_ok=True)
        lines, boxes = [], {}
        for k, name in enumerate(BLOB_CLASSES):
            if rng.random() < 0.7:
                x, y = (int(v) for v in rng.integers(0, 420, 2))
                w, h = (int(v) for v in rng.integers(60, 200, 2))
                boxes[name] = (x, y, x + w, y + h)
                lines.append(f"{k} {(x + w / 2) / 640} {(y + h / 2) / 640} {w / 640} {h / 640}\n")
        cv2.imwrite(str(root / "images" / f"s{i}.png"), draw_blob_scene((640, 640), boxes, seed=i))
        (root / "labels" / f"s{i}.txt").write_text("".join(lines))
    names = ", ".join(BLOB_CLASSES)
    (root / "data.yaml").write_text(f"train: images\nval: images\nnames: [{names}]\n")
    return root / "data.yaml"
