"""`jetkit data frames` and `jetkit distill --unlabeled` through the real console script: frames
come out of a real video file, and bad footage is one `jetkit: error:` line with nothing written."""

from __future__ import annotations

import cv2
import numpy as np
from cli_helpers import assert_user_error, jetkit


def write_clip(path, frames=20, still_from=10):
    """A box moving 10 px a frame, standing still from frame `still_from` on."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (128, 96))
    for i in range(frames):
        frame = np.full((96, 128, 3), 90, np.uint8)
        x = 10 * min(i, still_from)
        frame[30:60, x : x + 20] = (255, 0, 0)
        writer.write(frame)
    writer.release()
    return path


def test_frames_from_a_video_with_near_duplicates_dropped(tmp_path):
    clip = write_clip(tmp_path / "door.avi")
    out = tmp_path / "frames"
    result = jetkit("data", "frames", clip, "--out", out, "--every", 2, "--dedupe")
    assert result.returncode == 0, result.stderr
    kept = sorted(p.name for p in out.iterdir())
    # Every second frame of the moving part (0, 2, …, 10), and none of the still copies after.
    assert kept == [f"door_{i:07d}.jpg" for i in range(0, 11, 2)]
    assert "6 written" in result.stderr and "4 near-duplicates dropped" in result.stderr
    assert result.stdout.strip() == str(out)


def test_bad_footage_is_one_error_line_and_nothing_is_written(tiny_data, teacher_onnx, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(bytes(3000))
    # FFmpeg's own complaint about the file may come first on stderr.
    assert_user_error(
        jetkit("data", "frames", broken, "--out", tmp_path / "frames"), "broken.mp4", progress=True
    )
    assert_user_error(
        jetkit("data", "frames", "test://?size=64x48", "--out", tmp_path / "frames"),
        "--duration",
    )
    assert not (tmp_path / "frames").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "student"
    teacher = tmp_path / "teacher.onnx"
    assert_user_error(jetkit("distill", "--unlabeled", empty, "--out", out), "--teacher MODEL")
    from edge.samples import build_blob_detector

    build_blob_detector(teacher, input_hw=(64, 64))
    assert_user_error(
        jetkit("distill", "--teacher", teacher, "--unlabeled", empty, "--out", out),
        "teacher.onnx",
        "(84 cells)",
        progress=True,
    )
    assert_user_error(
        jetkit("distill", "--teacher", teacher_onnx, "--unlabeled", empty, "--out", out),
        "holds no images",
        progress=True,
    )
    assert_user_error(
        jetkit("distill", "--teacher", teacher_onnx, "--unlabeled", empty, "--data", tiny_data,
               "--pseudo-threshold", "1.5", "--out", out),
        "--pseudo-threshold",
    )  # fmt: skip
    assert not out.exists()
