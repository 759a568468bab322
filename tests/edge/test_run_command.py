"""`jetkit run` as a user runs it: files through GStreamer read in full, several streams at once,
the table and the JSON summary, Ctrl-C as the normal end of a live run, and start-up mistakes as
one-line errors."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
from cli_helpers import assert_user_error, jetkit, popen_interruptible

from edge.samples import draw_blob_scene
from edge.sources import gstreamer_available

RED_BOX = (100, 96, 420, 336)


@pytest.fixture(scope="module")
def scenes_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scenes")
    for i in range(5):
        cv2.imwrite(str(folder / f"{i:02d}.png"), draw_blob_scene((640, 480), {"red": RED_BOX}, i))
    return folder


@pytest.fixture(scope="module")
def scenes_video(tmp_path_factory):
    """12 frames of a red box as MJPG in AVI, which GStreamer's good plugins decode."""
    path = tmp_path_factory.mktemp("video") / "scenes.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    for i in range(12):
        writer.write(draw_blob_scene((640, 480), {"red": RED_BOX}, i))
    writer.release()
    return path


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_stills_to_jsonl_with_the_table_and_the_summary(blob_onnx, scenes_dir, tmp_path):
    out, summary = tmp_path / "out.jsonl", tmp_path / "summary.json"
    result = jetkit(
        "run", f"images://{scenes_dir}", "--model", blob_onnx,
        "--sink", f"jsonl://{out}", "--summary", summary,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = _lines(out)
    assert [line["frame"] for line in lines] == list(range(5))
    assert all(line["detections"][0]["class_name"] == "red" for line in lines)
    for stage in ("preprocess", "infer", "postprocess", "e2e"):
        assert stage in result.stdout
    metrics = json.loads(summary.read_text())
    assert metrics["streams"]["s0"]["frames"] == 5 and metrics["stages"]["infer"]["count"] >= 1
    # All-time histograms come with the summary: every frame's end-to-end latency in a bucket.
    e2e = metrics["histograms"]["e2e"]["s0"]
    assert sum(e2e["counts"]) == e2e["count"] == 5
    assert len(e2e["counts"]) == len(e2e["bounds_ms"]) + 1
    infer = metrics["histograms"]["stages"]["infer"]
    assert sum(infer["counts"]) == metrics["stages"]["infer"]["count"]
    # And in fine buckets for plots, the same frames.
    fine = metrics["fine_histograms"]["e2e"]["s0"]
    assert sum(fine["counts"]) == 5 and len(fine["bounds_ms"]) > len(e2e["bounds_ms"])


def test_tracking_gives_each_object_one_id_for_the_whole_run(blob_onnx, tmp_path):
    """The synthetic camera's three boxes (one per colour) slide and bounce; with --track every
    reported detection carries its object's id, the same from first frame to last, and the
    table has the tracker's row."""
    out, summary = tmp_path / "out.jsonl", tmp_path / "summary.json"
    result = jetkit(
        "run", "test://?fps=30&count=45&size=640x480", "--model", blob_onnx, "--track",
        "--sink", f"jsonl://{out}", "--summary", summary,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    ids_by_class: dict[str, set[int]] = {}
    for line in _lines(out):
        for found in line["detections"]:
            ids_by_class.setdefault(found["class_name"], set()).add(found["track_id"])
    assert sorted(ids_by_class) == ["blue", "green", "red"]
    assert all(len(ids) == 1 for ids in ids_by_class.values())
    assert set().union(*ids_by_class.values()) == {1, 2, 3}
    assert re.search(r"^track\b", result.stdout, re.MULTILINE)
    analytics = json.loads(summary.read_text())["analytics"]
    assert analytics["s0"]["tracks"] == 3


def test_motion_gating_comes_with_tracking_and_is_counted(blob_onnx, tmp_path):
    summary = tmp_path / "summary.json"
    assert_user_error(jetkit("run", "--model", blob_onnx, "--motion"), "give --track too")
    result = jetkit(
        "run", "test://?fps=30&count=30&size=640x480", "--model", blob_onnx, "--track",
        "--motion", "--summary", summary,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    stream = json.loads(summary.read_text())["streams"]["s0"]
    assert sum(stream["motion"].values()) == stream["frames"] and stream["motion"]["full"] >= 1


@pytest.mark.skipif(not gstreamer_available(), reason="GStreamer's Python bindings are missing")
def test_a_video_file_and_a_synthetic_camera_at_once(blob_onnx, scenes_video, tmp_path):
    out, summary = tmp_path / "out.jsonl", tmp_path / "summary.json"
    result = jetkit(
        "run", f"file://{scenes_video}?id=video", "test://?fps=30&count=15&id=cam",
        "--model", blob_onnx, "--sink", f"jsonl://{out}", "--summary", summary,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    by_stream: dict[str, list[int]] = {}
    for line in _lines(out):
        by_stream.setdefault(line["stream"], []).append(line["frame"])
    assert by_stream["video"] == list(range(12))  # a file never drops
    streams = json.loads(summary.read_text())["streams"]
    assert streams["cam"]["frames"] + sum(streams["cam"]["drops"].values()) == 15


def test_ctrl_c_ends_a_live_run_with_the_table(blob_onnx, tmp_path):
    script = Path(sys.executable).with_name("jetkit")
    process = popen_interruptible(
        [script, "run", "test://?fps=30", "--model", str(blob_onnx), "--log-interval", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait for the first periodic log line
            line = process.stderr.readline()
            if line.startswith("s0:"):
                break
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert "stopping" in stderr and "Traceback" not in stderr
    assert "e2e" in stdout and "fps" in stdout


def test_start_up_mistakes_are_one_line_errors(blob_onnx, tmp_path):
    model = ("--model", blob_onnx)
    assert_user_error(jetkit("run", "ftp://camera", *model), "ftp://camera")
    assert_user_error(jetkit("run", tmp_path / "missing.mp4", *model), "missing.mp4")
    assert_user_error(jetkit("run", "v4l2:///dev/video9", *model), "/dev/video9")
    assert_user_error(jetkit("run", "test://", "--model", tmp_path / "no.onnx"), "no.onnx")
    assert_user_error(
        jetkit("run", "test://", *model, "--sink", "udp://host:1"), "unknown scheme 'udp'"
    )
    unwritable = tmp_path / "file-not-dir"
    unwritable.write_text("")
    assert_user_error(
        jetkit("run", "test://", *model, "--sink", f"jsonl://{unwritable}/out.jsonl"),
        "cannot write",
    )
    assert_user_error(jetkit("run", "test://", *model, "--max-frames", "0"), "--max-frames")
    assert_user_error(jetkit("run", "test://", *model, "--max-batch", "64"), "--max-batch 64")


def test_on_a_jetson_power_and_energy_per_frame_come_with_the_summary(blob_onnx, tmp_path):
    """Where `tegrastats` runs (here a stand-in printing an Orin line, a real process on PATH),
    the summary reports board power and energy per frame."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tegrastats = bin_dir / "tegrastats"
    line = (
        "11-23-2025 22:47:56 RAM 1729/15657MB (lfb 8x4MB) SWAP 0/7828MB (cached 0MB) "
        "CPU [1%@1420,2%@1420,off,off] GR3D_FREQ 37% cpu@46.125C gpu@43C tj@46.937C "
        "VDD_IN 6120mW/6120mW VDD_CPU_GPU_CV 436mW/436mW VDD_SOC 2464mW/2464mW"
    )
    tegrastats.write_text(f"#!/bin/sh\nwhile true; do echo '{line}'; sleep 0.05; done\n")
    tegrastats.chmod(0o755)
    summary = tmp_path / "summary.json"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    script = Path(sys.executable).with_name("jetkit")
    result = subprocess.run(
        [script, "run", "test://?fps=30&count=30", "--model", str(blob_onnx), "--summary",
         str(summary)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    power = json.loads(summary.read_text())["power"]
    assert power["power_mw"] == 6120 and power["gpu_load_pct"] == 37
    assert power["energy_mj_per_frame"] > 0


@pytest.mark.skipif(not gstreamer_available(), reason="GStreamer's Python bindings are missing")
def test_an_rtsp_host_that_refuses_is_a_start_up_error(blob_onnx):
    result = jetkit("run", "rtsp://127.0.0.1:1/stream", "--model", blob_onnx)
    assert_user_error(result, "rtsp://127.0.0.1:1/stream", "check that it is running and reachable")
    assert result.stderr.count("rtsp://127.0.0.1:1/stream") == 1


# --- bad frames, failing sinks, limits ------------------------------------------------------------


def test_a_corrupt_still_is_skipped_and_counted_and_the_others_go_through(
    scenes_dir, blob_onnx, tmp_path
):
    folder = tmp_path / "stills"
    folder.mkdir()
    for still in sorted(scenes_dir.iterdir()):
        (folder / still.name).write_bytes(still.read_bytes())
    (folder / "02b.png").write_bytes(b"\x89PNG\r\n\x1a\n cut off by a full disk")
    out, summary = tmp_path / "out.jsonl", tmp_path / "summary.json"
    result = jetkit(
        "run", f"images://{folder}", "--model", blob_onnx,
        "--sink", f"jsonl://{out}", "--summary", summary,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(_lines(out)) == 5
    assert json.loads(summary.read_text())["streams"]["s0"]["errors"] == {"bad_frame": 1}
    assert "02b.png cannot be read" in result.stderr and "errors: 1 (bad_frame 1)" in result.stdout


def test_a_file_source_without_a_single_readable_frame_fails_the_run(blob_onnx, tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    for name in ("a.png", "b.jpg", "c.png"):
        (folder / name).write_bytes(b"not an image")
    result = jetkit("run", f"images://{folder}", "--model", blob_onnx)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"jetkit: error: source 'images://{folder}' (stream s0) ended without a readable frame; "
        "nothing of it was processed"
    )


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
def test_a_sink_that_fails_every_frame_logs_a_few_lines_not_one_per_frame(blob_onnx):
    result = jetkit(
        "run", "test://?fps=100&count=60&size=160x120", "--model", blob_onnx,
        "--sink", "jsonl:///dev/full",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    failures = [line for line in result.stderr.splitlines() if "/dev/full" in line]
    failed_writes = int(re.search(r"errors: (\d+) \(sink \d+\)", result.stdout).group(1))
    assert failed_writes > 30
    assert 2 <= len(failures) <= 4, result.stderr  # the first, the rest counted, the close
    assert failures[0] == "sink jsonl:///dev/full: [Errno 28] No space left on device"
    assert any("more failures" in line for line in failures)


@pytest.mark.parametrize(
    ("args", "limit"),
    [
        (("--threads", "-1"), "--threads must be in [1, 256], got -1"),
        (("--threads", "100000"), "--threads must be in [1, 256], got 100000"),
        (("--duration", "nan"), "--duration must be a finite number of seconds > 0, got nan"),
        (("--log-interval", "inf"), "--log-interval must be a finite number of seconds > 0"),
    ],
)
def test_resource_options_past_their_limits_are_one_line_errors(blob_onnx, args, limit):
    assert_user_error(jetkit("run", "test://?count=1", "--model", blob_onnx, *args), limit)


def test_a_synthetic_frame_size_past_the_limit_is_a_one_line_error(blob_onnx):
    assert_user_error(
        jetkit("run", "test://?size=100000x100000", "--model", blob_onnx),
        "size must be at most 8192x8192, got 100000x100000",
    )
