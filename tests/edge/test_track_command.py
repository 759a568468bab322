"""`jetkit track` as a user runs it on sequences in the MOT17/MOT20 layout: tracked with a model
through the pipeline or on the sequences' public detections, written in MOTChallenge's result
format, scored per sequence and combined; mistakes as one-line errors."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from cli_helpers import assert_user_error, jetkit

from edge.analytics.bytetrack import ByteTracker, TrackerConfig
from edge.analytics.mot import read_mot_rows, tracks_to_rows, write_mot_rows
from edge.analytics.mot_eval import prepared, score
from edge.detector import Detector
from edge.samples_tracking import MovingScene, build_moving_detector

SIZE_WH = (640, 480)
FRAMES = 40


def write_sequence(folder, seed, detections=True):
    """The moving scene as a MOT17-style sequence: PNG frames, ground truth and, as public
    detections, the truth's boxes with a detector-like score."""
    scene = MovingScene(SIZE_WH, objects=4, seed=seed)
    (folder / "img1").mkdir(parents=True)
    for k in range(FRAMES):
        cv2.imwrite(str(folder / "img1" / f"{k + 1:06d}.png"), scene.draw(k))
    gt = np.concatenate([scene.gt_rows(k) for k in range(FRAMES)])
    write_mot_rows(folder / "gt" / "gt.txt", gt)
    if detections:
        det = gt.copy()
        det[:, 1], det[:, 6], det[:, 7:] = -1, 0.9, -1
        write_mot_rows(folder / "det" / "det.txt", det)
    (folder / "seqinfo.ini").write_text(
        f"[Sequence]\nname={folder.name}\nimDir=img1\nframeRate=30\nseqLength={FRAMES}\n"
        f"imWidth={SIZE_WH[0]}\nimHeight={SIZE_WH[1]}\nimExt=.png\n"
    )
    return folder


@pytest.fixture(scope="module")
def mot_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("MOT") / "train"
    for seed in (0, 1):
        write_sequence(root / f"SYN-0{seed}", seed)
    return root


@pytest.fixture(scope="module")
def moving_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "moving.onnx"
    build_moving_detector(path, input_hw=(480, 640), max_batch=4)
    return path


def test_public_detections_of_a_folder_of_sequences_are_tracked_written_and_scored(
    mot_root, tmp_path
):
    out, scores_json = tmp_path / "tracks", tmp_path / "scores.json"
    result = jetkit("track", mot_root, "--public-detections", "--out", out, "--json", scores_json)
    assert result.returncode == 0, result.stderr
    table = result.stdout.splitlines()
    assert table[0].split()[:3] == ["sequence", "HOTA", "DetA"]
    assert [line.split()[0] for line in table[1:]] == ["SYN-00", "SYN-01", "COMBINED"]
    scores = {s["name"]: s for s in json.loads(scores_json.read_text())}
    for name in ("SYN-00", "SYN-01"):
        written = read_mot_rows(out / f"{name}.txt")
        assert written[:, 0].min() >= 1 and written[:, 0].max() <= FRAMES
        # What was printed is what the written file scores.
        gt = read_mot_rows(mot_root / name / "gt" / "gt.txt")
        again = score(name, *prepared(gt, written))
        assert scores[name]["hota"] == pytest.approx(again.hota)
        # Exact boxes: every miss is a track not yet confirmed or one lost behind the pillar.
        assert scores[name]["hota"] > 0.7 and scores[name]["idf1"] > 0.7
    combined = scores["COMBINED"]
    assert combined["gt_objects"] == scores["SYN-00"]["gt_objects"] + scores["SYN-01"]["gt_objects"]


def test_a_model_through_the_pipeline_tracks_a_sequence(mot_root, moving_onnx, tmp_path):
    result = jetkit("track", mot_root / "SYN-00", "--model", moving_onnx, "--classes",
                    "red,green,blue", "--out", tmp_path, "--json", tmp_path / "s.json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    (scores,) = json.loads((tmp_path / "s.json").read_text())
    assert scores["name"] == "SYN-00" and scores["idf1"] > 0.5
    # The pipeline's tracks are ByteTrack's on the model's detections at the tracker's low
    # threshold, frame after frame.
    detector, tracker = Detector.open(moving_onnx, conf=TrackerConfig().low), ByteTracker()
    expected = []
    for k in range(FRAMES):
        found = detector(cv2.imread(str(mot_root / "SYN-00" / "img1" / f"{k + 1:06d}.png")))
        ids = tracker.update(found.xyxy, found.scores, found.class_ids)
        expected.append(tracks_to_rows(k + 1, ids[ids > 0], found.xyxy[ids > 0],
                                       found.scores[ids > 0]))  # fmt: skip
    written = read_mot_rows(tmp_path / "SYN-00.txt")
    np.testing.assert_allclose(written, np.concatenate(expected), atol=2e-3)


def test_mistakes_are_one_line_errors(mot_root, moving_onnx, tmp_path):
    assert_user_error(jetkit("track", tmp_path / "nothing", "--public-detections"),
                      "is neither a MOTChallenge sequence nor a folder of them")  # fmt: skip
    assert_user_error(jetkit("track", mot_root), "give --model MODEL or --public-detections")
    bare = write_sequence(tmp_path / "SYN-09", 9, detections=False)
    assert_user_error(jetkit("track", bare, "--public-detections"),
                      "--public-detections needs det/det.txt; SYN-09 has none")  # fmt: skip
    assert_user_error(jetkit("track", bare, "--model", moving_onnx, "--classes", "person"),
                      "--classes person: the model detects red, green, blue")  # fmt: skip
    (bare / "gt" / "gt.txt").write_text("1,2,3\n")
    assert_user_error(jetkit("track", bare, "--model", moving_onnx), "gt.txt:1: expected 6 to 10")
