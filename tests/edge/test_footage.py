"""The frame extractor on real video files (OpenCV-written MJPG), `images://` folders and `test://`
streams: every N-th frame, near-duplicates of a static camera dropped, and nothing written when a
source fails."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.errors import JetkitError
from edge.footage import FramesConfig, extract_frames, frame_name, is_near_duplicate, thumbnail
from edge.samples import draw_blob_scene

SIZE_WH = (320, 240)
STATIC, MOVING = 10, 10


def camera_frame(index: int, box_x: int | None) -> np.ndarray:
    """A fixed scene with fresh sensor noise (σ 4 levels), with a red box at `box_x` or none."""
    boxes = {} if box_x is None else {"red": (box_x, 100, box_x + 40, 140)}
    frame = draw_blob_scene(SIZE_WH, boxes, seed=7).astype(np.int16)
    noise = np.random.default_rng(index).normal(0, 4, frame.shape)
    return np.clip(frame + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def static_camera_video(tmp_path_factory) -> Path:
    """10 frames of an empty scene, 10 with a box crossing it 20 px a frame, 10 empty again."""
    path = tmp_path_factory.mktemp("footage") / "gate cam.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, SIZE_WH)
    frames = [camera_frame(i, None) for i in range(STATIC)]
    frames += [camera_frame(STATIC + i, 20 + 20 * i) for i in range(MOVING)]
    frames += [camera_frame(STATIC + MOVING + i, None) for i in range(STATIC)]
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def test_noise_is_a_near_duplicate_and_a_moved_object_is_not():
    still = thumbnail(camera_frame(0, None))
    assert is_near_duplicate(still, thumbnail(camera_frame(1, None)))
    assert not is_near_duplicate(thumbnail(camera_frame(0, 100)), thumbnail(camera_frame(0, 120)))
    assert not is_near_duplicate(still, thumbnail(camera_frame(0, 100)))


def test_every_nth_frame_is_kept_under_its_source_index(static_camera_video, tmp_path):
    report = extract_frames([str(static_camera_video)], tmp_path / "out", FramesConfig(every=7))
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [f"gate_cam_{i:07d}.jpg" for i in (0, 7, 14, 21, 28)]
    assert report.read[str(static_camera_video)] == 30
    assert cv2.imread(str(tmp_path / "out" / names[0])).shape == (240, 320, 3)


def test_dedupe_keeps_one_frame_per_still_scene_and_every_moving_one(static_camera_video, tmp_path):
    report = extract_frames([str(static_camera_video)], tmp_path / "out", FramesConfig(dedupe=True))
    kept = sorted(int(p.stem.rsplit("_", 1)[1]) for p in report.written)
    # The first still frame, the ten moving ones, the first frame of the empty scene after.
    assert kept == [0, *range(STATIC, STATIC + MOVING), STATIC + MOVING]
    assert report.duplicates[str(static_camera_video)] == 30 - len(kept)


def test_images_and_test_sources_with_limits(tmp_path):
    folder = tmp_path / "stills"
    folder.mkdir()
    for i in range(4):
        cv2.imwrite(str(folder / f"{i}.png"), camera_frame(i, None if i < 3 else 60))
    report = extract_frames(
        [f"images://{folder}", "test://?size=64x48&fps=50"],
        tmp_path / "out",
        FramesConfig(dedupe=True, max_frames=3),
    )
    by_source = sorted(p.name for p in report.written)
    assert sum(name.startswith("stills_") for name in by_source) == 2  # one still, the box
    assert sum(not name.startswith("stills_") for name in by_source) == 3


def test_a_live_source_needs_a_limit(tmp_path):
    with pytest.raises(JetkitError, match="--duration"):
        extract_frames(["test://?size=64x48"], tmp_path / "out", FramesConfig())
    assert not (tmp_path / "out").exists()


def test_an_undecodable_video_writes_nothing(static_camera_video, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(2000))
    out = tmp_path / "out"
    with pytest.raises(JetkitError, match="broken.mp4"):
        extract_frames([str(static_camera_video), str(broken)], out, FramesConfig())
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["broken.mp4"]  # no staging left


def test_bad_settings_name_the_option():
    with pytest.raises(JetkitError, match="--every"):
        FramesConfig(every=0)
    with pytest.raises(JetkitError, match="--max-frames"):
        FramesConfig(max_frames=0)


def test_frame_names_are_safe_file_names():
    assert frame_name("rtsp://user:pw@cam/stream 1?x=1", 3) == "stream_1_0000003.jpg"
    assert frame_name("images:///data/../", 12) == "frames_0000012.jpg"
