"""video:// — the URI, per-stream names and playback rate, and real files that OpenCV reads back
with every frame, the annotations on them, and nothing at PATH before close."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.errors import JetkitError
from edge.sinks import open_sink
from edge.sinks.video_uri import DEFAULT_FPS, VideoConfig, parse_video_uri, playback_fps

from .conftest import RED_BOX, SCENE_SIZE_WH, assert_shows_annotations


def _read_back(path: Path) -> tuple[list[np.ndarray], float]:
    import cv2

    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(image)
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    return frames, fps


def test_uri_gives_path_fps_and_codec():
    config = parse_video_uri("video:///data/run%201/out.avi?fps=12.5")
    assert config == VideoConfig(Path("/data/run 1/out.avi"), 12.5)
    assert config.fourcc == "MJPG" and VideoConfig(Path("a.MP4")).fourcc == "mp4v"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("video://out.mov", "'out.mov' is no video file name; end it in .mp4, .mkv, .avi"),
        ("video://out.mp4?fps=0", "param 'fps' must be > 0, got 0"),
        ("video://out.mp4?fps=fast", "param 'fps' must be a number, got 'fast'"),
        ("video://out.mp4?rate=30", "unknown param 'rate' for video://; params: fps, overlay"),
        ("video://out.mp4?overlay=maybe", "param 'overlay' must be 1 or 0, got 'maybe'"),
        ("video://?fps=30", "names no file"),
    ],
)
def test_bad_uris_name_the_problem(uri, message):
    with pytest.raises(JetkitError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse_video_uri(uri)


def test_several_streams_get_the_stream_id_before_the_suffix():
    config = VideoConfig(Path("/out/run.mp4"))
    assert config.path_for("s0", several=False) == Path("/out/run.mp4")
    assert config.path_for("door", several=True) == Path("/out/run-door.mp4")


def test_playback_rate_follows_the_capture_times():
    assert playback_fps([10.0, 10.1, 10.2, 10.3]) == pytest.approx(10.0)
    assert playback_fps([5.0]) == DEFAULT_FPS and playback_fps([5.0, 5.0]) == DEFAULT_FPS
    assert playback_fps([0.0, 100.0]) == 1.0  # a stall, not a rate


def test_an_annotated_avi_has_every_frame_and_appears_only_at_close(tmp_path, make_results):
    path = tmp_path / "videos" / "out.avi"
    sink = open_sink(f"video://{path}")
    results = make_results(12, period_s=1 / 15)
    for result in results:
        sink.write(result)
    assert not path.exists()
    sink.close()
    sink.close()  # a second close does nothing
    assert sink.dropped == 0

    frames, fps = _read_back(path)
    assert [p.name for p in path.parent.iterdir()] == ["out.avi"]  # no temporary left
    assert len(frames) == 12 and frames[0].shape == (SCENE_SIZE_WH[1], SCENE_SIZE_WH[0], 3)
    assert fps == pytest.approx(15.0, abs=0.01)
    assert_shows_annotations(frames[3], results[3])


def test_several_streams_write_one_mp4_each_at_the_given_fps(tmp_path, make_results):
    path = tmp_path / "run.mp4"
    sink = open_sink(f"video://{path}?fps=10")
    for door, yard in zip(make_results(4, "door"), make_results(4, "yard"), strict=True):
        sink.write(door)
        sink.write(yard)
    sink.close()

    assert sorted(p.name for p in tmp_path.iterdir()) == ["run-door.mp4", "run-yard.mp4"]
    for name in ("run-door.mp4", "run-yard.mp4"):
        frames, fps = _read_back(tmp_path / name)
        assert len(frames) == 4 and fps == pytest.approx(10.0)


def test_overlay_off_records_the_frames_as_captured_for_training(tmp_path, make_results):
    path = tmp_path / "footage.avi"
    assert parse_video_uri(f"video://{path}?overlay=0").overlay is False
    sink = open_sink(f"video://{path}?overlay=0")
    results = make_results(3)
    for result in results:
        sink.write(result)
    sink.close()
    frames, _ = _read_back(path)
    x0, y0, _, _ = RED_BOX
    caption = (slice(y0 - 12, y0), slice(x0, x0 + 40))  # where the label would be drawn
    decoded = frames[1].astype(int)[caption]
    raw = results[1].frame.image_bgr.astype(int)[caption]
    annotated = results[1].annotated_bgr().astype(int)[caption]
    assert np.abs(decoded - raw).mean() * 3 < np.abs(decoded - annotated).mean()


def test_an_unwritable_directory_fails_at_open(tmp_path):
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("")
    with pytest.raises(JetkitError, match=f"sink 'video://{blocker}/out.mp4': cannot write in"):
        open_sink(f"video://{blocker}/out.mp4")
