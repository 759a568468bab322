"""Footage and pseudo-labels: which frames a footage folder or video gives, how a teacher's
detections become boxes, and the held-out share when there are no labels."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.datasets import Sample
from edge.errors import JetkitError
from edge.evaluate import ImageDetections
from trainer.pseudo import (
    HOLDOUT_EVERY,
    box_count,
    footage_images,
    holdout_split,
    pseudo_labelled,
    to_student_classes,
)


def write_video(path: Path, frames: int, size_wh=(96, 64)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, size_wh)
    for i in range(frames):
        frame = np.full((size_wh[1], size_wh[0], 3), 100, np.uint8)
        frame[10:30, 5 * i : 5 * i + 20] = (0, 0, 255)  # a box that moves: no duplicates
        writer.write(frame)
    writer.release()
    return path


def test_a_folder_gives_its_images_and_its_videos_frames_extracted_once(tmp_path):
    footage = tmp_path / "footage"
    (footage / "cam1").mkdir(parents=True)
    cv2.imwrite(str(footage / "a.png"), np.zeros((32, 32, 3), np.uint8))
    write_video(footage / "cam1" / "clip.avi", 12)
    (footage / "notes.txt").write_text("not footage")
    cache = tmp_path / "cache"
    logs: list[str] = []
    first = footage_images(str(footage), 4, cache, logs.append)
    assert first[0] == footage / "a.png"
    assert [p.name for p in first[1:]] == [f"clip_{i:07d}.jpg" for i in (0, 4, 8)]
    assert all(cache in p.parents for p in first[1:])
    again = footage_images(str(footage), 4, cache, logs.append)
    assert again == first and "earlier extraction" in logs[-1]
    # Another sampling rate is another extraction.
    assert len(footage_images(str(footage / "cam1" / "clip.avi"), 6, cache)) == 2


def test_footage_that_is_not_there_or_holds_nothing_is_an_error(tmp_path):
    with pytest.raises(JetkitError, match="does not exist"):
        footage_images(str(tmp_path / "none"), 1, tmp_path / "cache")
    (tmp_path / "empty").mkdir()
    with pytest.raises(JetkitError, match="holds no images"):
        footage_images(str(tmp_path / "empty"), 1, tmp_path / "cache")
    (tmp_path / "labels.txt").write_text("0 0.5 0.5 0.1 0.1")
    with pytest.raises(JetkitError, match="neither a folder nor a video"):
        footage_images(str(tmp_path / "labels.txt"), 1, tmp_path / "cache")
    broken = tmp_path / "broken" / "cam.mp4"
    broken.parent.mkdir()
    broken.write_bytes(bytes(4000))
    with pytest.raises(JetkitError, match="cam.mp4"):
        footage_images(str(broken.parent), 1, tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("*.jpg"))


def test_teacher_classes_map_to_the_students_and_others_are_dropped():
    found = ImageDetections(
        np.arange(16, dtype=np.float32).reshape(4, 4),
        np.array([0.9, 0.8, 0.7, 0.6], np.float32),
        np.array([0, 2, 5, 2]),
    )
    mapped = to_student_classes(found, np.array([2, 0]))  # student: (teacher 2, teacher 0)
    np.testing.assert_array_equal(mapped.class_ids, [1, 0, 0])
    np.testing.assert_array_equal(mapped.scores, np.float32([0.9, 0.8, 0.6]))
    empty = ImageDetections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, int))
    assert len(to_student_classes(empty, np.array([1])).scores) == 0


def test_pseudo_labels_keep_confident_boxes_clipped_to_the_image():
    frame = Sample(Path("f.jpg"), (100, 50), np.zeros((0, 4), np.float32), np.zeros(0, np.int64))
    found = ImageDetections(
        np.array([[-5, 10, 40, 60], [10, 10, 20, 20], [99.5, 0, 120, 10]], np.float32),
        np.array([0.8, 0.2, 0.9], np.float32),
        np.array([1, 0, 2]),
    )
    (labelled,) = pseudo_labelled([frame], [found], threshold=0.5)
    # The third box keeps half a pixel inside the image: under a pixel, dropped.
    np.testing.assert_array_equal(labelled.xyxy, [[0, 10, 40, 50]])
    np.testing.assert_array_equal(labelled.class_ids, [1])
    assert box_count([labelled, labelled]) == 2


def test_every_tenth_frame_is_held_out():
    frames = [
        Sample(Path(f"{i}.jpg"), (8, 8), np.zeros((0, 4), np.float32), np.zeros(0, np.int64))
        for i in range(25)
    ]
    train, held = holdout_split(frames)
    assert [s.image_path.name for s in held] == ["9.jpg", "19.jpg"]
    assert len(train) + len(held) == 25 and HOLDOUT_EVERY == 10
