"""Video files as users have them: MPEG-4 part 2 (OpenCV's `mp4v`), H.264 in MP4 and MKV, H.265
in MKV, all written here; and a file GStreamer cannot decode read with OpenCV instead, said once."""

from __future__ import annotations

import os
import subprocess

import numpy as np
import pytest
from cli_helpers import jetkit

from edge.errors import JetkitError
from edge.sources import FileSource, open_source
from edge.sources.gst import gst_modules

from .conftest import CLIP_FRAMES, CLIP_SIZE_WH, read_all

MPEG4_CAPS = "video/mpeg, mpegversion=(int)4, systemstream=(boolean)false"


def encode_with_gstreamer(path, encoder: str, muxer: str) -> None:
    """CLIP_FRAMES frames of a moving ball, encoded and muxed by GStreamer's own elements."""
    width, height = CLIP_SIZE_WH
    subprocess.run(
        [
            "gst-launch-1.0",
            "-q",
            "videotestsrc",
            f"num-buffers={CLIP_FRAMES}",
            "pattern=ball",
            "!",
            f"video/x-raw,width={width},height={height},framerate=25/1",
            "!",
            "videoconvert",
            "!",
            *encoder.split(),
            "!",
            muxer,
            "!",
            "filesink",
            f"location={path}",
        ],
        check=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def videos(tmp_path_factory, clip_frames) -> dict[str, object]:
    import cv2

    folder = tmp_path_factory.mktemp("videos")
    mpeg4 = folder / "clip mpeg4.mp4"
    writer = cv2.VideoWriter(str(mpeg4), cv2.VideoWriter.fourcc(*"mp4v"), 25.0, CLIP_SIZE_WH)
    for frame in clip_frames:
        writer.write(frame)
    writer.release()
    files = {"mpeg4-mp4": mpeg4}
    for name, encoder, muxer in [
        ("h264-mp4", "x264enc ! h264parse", "mp4mux"),
        ("h264-mkv", "x264enc ! h264parse", "matroskamux"),
        ("h265-mkv", "x265enc ! h265parse", "matroskamux"),
    ]:
        files[name] = folder / f"clip {name}.{muxer[:3].replace('mat', 'mkv')}"
        encode_with_gstreamer(files[name], encoder, muxer)
    return files


@pytest.fixture
def mpeg4_decoders_hidden():
    """GStreamer as on a machine without an MPEG-4 part 2 decoder: each one's rank set to NONE,
    so decodebin does not pick it (restored afterwards). Yields their names."""
    gst, _, _ = gst_modules()
    caps = gst.Caps.from_string(MPEG4_CAPS)
    decoders = [
        factory
        for factory in gst.ElementFactory.list_get_elements(
            gst.ELEMENT_FACTORY_TYPE_DECODER, gst.Rank.MARGINAL
        )
        if factory.can_sink_any_caps(caps)
    ]
    assert decoders, (
        "no MPEG-4 part 2 decoder to hide: scripts/setup.sh installs gstreamer1.0-libav"
    )
    ranks = [factory.get_rank() for factory in decoders]
    for factory in decoders:
        factory.set_rank(gst.Rank.NONE)
    yield [factory.get_name() for factory in decoders]
    for factory, rank in zip(decoders, ranks, strict=True):
        factory.set_rank(rank)


@pytest.mark.parametrize("name", ["mpeg4-mp4", "h264-mp4", "h264-mkv", "h265-mkv"])
def test_common_video_files_play_through_gstreamer(videos, name):
    heard = []
    source = open_source(str(videos[name]), log=heard.append)
    assert isinstance(source, FileSource) and source.reader == "gstreamer"
    frames = read_all(source)
    assert len(frames) == CLIP_FRAMES and heard == []
    width, height = CLIP_SIZE_WH
    assert all(frame.shape == (height, width, 3) and frame.dtype == np.uint8 for frame in frames)


def test_a_file_gstreamer_cannot_decode_is_read_with_opencv_and_said_once(
    videos, clip_frames, mpeg4_decoders_hidden
):
    heard = []
    source = open_source(str(videos["mpeg4-mp4"]), log=heard.append)
    assert source.reader == "opencv"
    frames = read_all(source)
    assert len(frames) == CLIP_FRAMES
    # The same pictures as written (MPEG-4 part 2 at OpenCV's default quality is lossy).
    assert (
        np.mean(
            [np.abs(f.astype(int) - w).mean() for f, w in zip(frames, clip_frames, strict=True)]
        )
        < 12
    )
    assert len(heard) == 1
    assert "missing a plug-in" in heard[0] and "gstreamer1.0-libav" in heard[0]
    assert heard[0].endswith("reading the file with OpenCV instead")


def test_a_file_neither_can_decode_names_both_failures(tmp_path):
    garbage = tmp_path / "broken.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes())
    with pytest.raises(JetkitError, match=r"broken\.mp4.*OpenCV cannot (open|decode)"):
        open_source(str(garbage), log=lambda _message: None)


def test_jetkit_run_plays_an_mp4_without_gstreamers_decoder(
    videos, blob_onnx, tmp_path, mpeg4_decoders_hidden
):
    """The user's command on a machine whose GStreamer lacks the decoder (the variable makes the
    child's GStreamer rank the decoders NONE, as the fixture does here)."""
    results = tmp_path / "results.jsonl"
    env = dict(
        os.environ,
        GST_PLUGIN_FEATURE_RANK=",".join(f"{name}:NONE" for name in mpeg4_decoders_hidden),
    )
    result = jetkit(
        "run", videos["mpeg4-mp4"], "--model", blob_onnx, "--sink", f"jsonl://{results}", env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("reading the file with OpenCV instead") == 1, result.stderr
    assert len(results.read_text().splitlines()) == CLIP_FRAMES
