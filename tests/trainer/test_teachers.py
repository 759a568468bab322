"""Teachers: a jetkit model exported to ONNX and run through ONNX Runtime gives the student the same
targets as its checkpoint in torch, on the same augmented batch; classes map by name; models whose
outputs cannot serve the student's grid are refused at open, naming the file and the fix."""

import numpy as np
import pytest
import torch

from edge.errors import JetkitError
from edge.manifest import PreprocessSpec
from edge.samples import build_blob_detector
from tests.trainer.conftest import TINY_IMGSZ
from trainer.augment import AugmentConfig
from trainer.dataset import DetectionDataset, collate, normalize_batch
from trainer.teachers import CheckpointTeacher, RuntimeTeacher, open_teacher

CPU = torch.device("cpu")
SPEC = PreprocessSpec()


def augmented_batch(tiny_data, imgsz=TINY_IMGSZ, count=4):
    from edge.datasets import load_dataset

    samples = load_dataset(tiny_data, splits=("train",)).train
    dataset = DetectionDataset(samples, (imgsz, imgsz), SPEC, augment=AugmentConfig(), seed=1)
    images_u8, _targets, _ = collate([dataset[i] for i in range(count)])
    return images_u8, normalize_batch(images_u8, SPEC)


def test_an_onnx_teacher_gives_the_targets_its_checkpoint_gives(tiny_run, tiny_data, teacher_onnx):
    images_u8, images = augmented_batch(tiny_data)
    names = None
    in_torch = open_teacher(str(tiny_run.best_path), names, (TINY_IMGSZ,) * 2, SPEC, CPU)
    in_ort = open_teacher(str(teacher_onnx), names, (TINY_IMGSZ,) * 2, SPEC, CPU)
    assert isinstance(in_torch, CheckpointTeacher) and isinstance(in_ort, RuntimeTeacher)
    with torch.no_grad():
        want = in_torch.targets(images_u8, images)
    got = in_ort.targets(images_u8, images)
    assert got.cls_logits.shape == want.cls_logits.shape and got.features is None
    torch.testing.assert_close(
        got.cls_logits.sigmoid(), want.cls_logits.sigmoid(), atol=1e-4, rtol=0
    )
    torch.testing.assert_close(got.xyxy, want.xyxy, atol=2e-3, rtol=1e-4)
    assert want.features is not None and in_torch.neck_channels and in_ort.neck_channels is None
    assert in_ort.info["format"] == "onnx (yolov8)" and len(in_ort.info["sha256"]) == 64


def test_a_student_of_some_classes_gets_those_columns_in_its_order(
    tiny_run, tiny_data, teacher_onnx
):
    images_u8, images = augmented_batch(tiny_data, count=2)
    every = open_teacher(str(teacher_onnx), None, (TINY_IMGSZ,) * 2, SPEC, CPU)
    names = every.names
    subset = (names[3], names[0])
    some = open_teacher(str(teacher_onnx), subset, (TINY_IMGSZ,) * 2, SPEC, CPU)
    full, part = every.targets(images_u8, images), some.targets(images_u8, images)
    torch.testing.assert_close(part.cls_logits, full.cls_logits[..., [3, 0]])
    in_torch = open_teacher(str(tiny_run.best_path), subset, (TINY_IMGSZ,) * 2, SPEC, CPU)
    with torch.no_grad():
        assert in_torch.targets(images_u8, images).cls_logits.shape[-1] == 2
    with pytest.raises(JetkitError, match="'zebra'"):
        open_teacher(str(teacher_onnx), ("zebra",), (TINY_IMGSZ,) * 2, SPEC, CPU)


def test_a_teacher_at_another_size_is_resampled_onto_the_students_grid(tiny_data, teacher_onnx):
    """A 192 px student batch through the 96 px teacher: what the teacher says about the batch
    scaled to 96 px, each student cell taking the nearest teacher cell, boxes doubled."""
    import cv2

    from edge.dense import DenseGrid, resample_cells

    student = 2 * TINY_IMGSZ
    images_u8, images = augmented_batch(tiny_data, imgsz=student, count=2)
    teacher = open_teacher(str(teacher_onnx), None, (student, student), SPEC, CPU)
    got = teacher.targets(images_u8, images)
    cells = sum((student // s) ** 2 for s in (8, 16, 32))
    assert got.cls_logits.shape == (2, cells, len(teacher.names))

    hwc = images_u8.permute(0, 2, 3, 1).numpy()
    small = np.stack(
        [cv2.resize(im, (TINY_IMGSZ,) * 2, interpolation=cv2.INTER_LINEAR) for im in hwc]
    )
    small_u8 = torch.from_numpy(small).permute(0, 3, 1, 2).contiguous()
    at_96 = open_teacher(str(teacher_onnx), None, (TINY_IMGSZ,) * 2, SPEC, CPU)
    own = at_96.targets(small_u8, normalize_batch(small_u8, SPEC))
    want = resample_cells(
        DenseGrid(own.xyxy.numpy(), own.cls_logits.numpy()),
        (TINY_IMGSZ,) * 2,
        (student, student),
        (8, 16, 32),
    )
    np.testing.assert_allclose(got.cls_logits.numpy(), want.scores, atol=1e-5)
    np.testing.assert_allclose(got.xyxy.numpy(), want.xyxy, atol=1e-3)


def test_models_that_cannot_serve_the_grid_are_refused(tmp_path):
    wide = tmp_path / "wide.onnx"
    build_blob_detector(wide, input_hw=(64, 96))
    with pytest.raises(JetkitError, match=r"64x96 input.*square"):
        open_teacher(str(wide), None, (96, 96), SPEC, CPU)
    odd_grid = tmp_path / "blobs.onnx"  # three colour anchors + one stride-8 grid: not P3-P5
    build_blob_detector(odd_grid, input_hw=(64, 64))
    with pytest.raises(JetkitError, match=r"blobs.onnx: yolov8 output .*\(84 cells\)"):
        open_teacher(str(odd_grid), None, (96, 96), SPEC, CPU)
    with pytest.raises(JetkitError, match="missing.onnx does not exist"):
        open_teacher(str(tmp_path / "missing.onnx"), None, (96, 96), SPEC, CPU)


def test_predictions_on_unaugmented_images_match_between_runtimes(
    tiny_run, tiny_data, teacher_onnx
):
    from edge.datasets import load_dataset

    samples = load_dataset(tiny_data, splits=("val",)).val[:3]
    in_torch = open_teacher(str(tiny_run.best_path), None, (TINY_IMGSZ,) * 2, SPEC, CPU)
    in_ort = open_teacher(str(teacher_onnx), None, (TINY_IMGSZ,) * 2, SPEC, CPU)
    for a, b in zip(in_torch.predict(samples), in_ort.predict(samples), strict=True):
        top_a, top_b = np.argsort(-a.scores)[:5], np.argsort(-b.scores)[:5]
        np.testing.assert_allclose(a.scores[top_a], b.scores[top_b], atol=1e-4)
        np.testing.assert_allclose(a.xyxy[top_a], b.xyxy[top_b], atol=0.05)


@pytest.mark.jetson
def test_a_tensorrt_engine_teacher_gives_the_targets_its_onnx_gives(
    tiny_data, teacher_onnx, tmp_path
):
    """On a device: the ONNX teacher built into an FP32 engine by `jetkit build` teaches the
    same through the TensorRT backend as through ONNX Runtime."""
    from cli_helpers import jetkit

    engine = tmp_path / "teacher.engine"
    built = jetkit(
        "build", teacher_onnx, "--precision", "fp32", "--max-batch", "4", "--out", engine
    )
    assert built.returncode == 0, built.stderr
    images_u8, images = augmented_batch(tiny_data)
    in_ort = open_teacher(str(teacher_onnx), None, (TINY_IMGSZ,) * 2, SPEC, CPU)
    in_trt = open_teacher(str(engine), None, (TINY_IMGSZ,) * 2, SPEC, CPU)
    assert in_trt.info["format"] == "tensorrt (yolov8)" and in_trt.neck_channels is None
    want, got = in_ort.targets(images_u8, images), in_trt.targets(images_u8, images)
    torch.testing.assert_close(
        got.cls_logits.sigmoid(), want.cls_logits.sigmoid(), atol=1e-3, rtol=0
    )
    torch.testing.assert_close(got.xyxy, want.xyxy, atol=0.05, rtol=1e-3)
