"""`jetkit train/distill/eval/export` through the real console script, and their bad-input
cases: one line `jetkit: error: …`, exit status 2, no traceback."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import assert_user_error, jetkit

from trainer.commands import (
    _train_config,
    check_host_name_resolves,
    register_distill,
    strip_option,
)


def test_train_then_eval_and_export_from_the_command_line(tiny_data, tmp_path):
    out = tmp_path / "run"
    trained = jetkit(
        "train", "--data", tiny_data, "--model", "t", "--epochs", "1", "--imgsz", "64",
        "--batch", "8", "--out", out,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-2000:]
    summary = json.loads(trained.stdout)
    assert summary["best"] == str(out / "best.pt") and summary["epochs"] == 1
    assert "epoch 1/1" in trained.stderr and "val mAP50-95" in trained.stderr

    checkpoint_eval = jetkit("eval", out / "best.pt", "--data", tiny_data, "--json")
    assert checkpoint_eval.returncode == 0, checkpoint_eval.stderr
    from_checkpoint = json.loads(checkpoint_eval.stdout)
    assert set(from_checkpoint) >= {"map50_95", "map50", "per_class"}

    exported = jetkit("export", out / "best.pt", "--out", tmp_path / "onnx")
    assert exported.returncode == 0, exported.stderr
    assert "parity on" in exported.stderr
    onnx_eval = jetkit("eval", tmp_path / "onnx" / "model.onnx", "--data", tiny_data, "--json")
    assert onnx_eval.returncode == 0, onnx_eval.stderr
    from_onnx = json.loads(onnx_eval.stdout)
    # The same evaluator, decode and NMS: FP32 ONNX measures what the checkpoint measures.
    assert from_onnx["map50_95"] == pytest.approx(from_checkpoint["map50_95"], abs=2e-3)
    assert from_onnx["map50"] == pytest.approx(from_checkpoint["map50"], abs=2e-3)
    table = jetkit("eval", out / "best.pt", "--data", tiny_data)
    assert "mAP50-95" in table.stdout and "hexagon" in table.stdout


def test_bad_training_input_is_one_clear_line(tiny_data, tiny_run, tmp_path):
    assert_user_error(jetkit("train", "--epochs", "1"), "needs --data")
    assert_user_error(
        jetkit("train", "--data", tmp_path / "nothing.yaml", "--out", tmp_path / "r"),
        "nothing.yaml",
    )
    assert_user_error(jetkit("train", "--data", tiny_data, "--imgsz", "100"), "--imgsz 100")
    assert_user_error(jetkit("train", "--data", tiny_data, "--model", "xxl"), "--model 'xxl'")
    assert_user_error(jetkit("train", "--data", tiny_data, "--epochs", "0"), "--epochs")
    assert_user_error(
        jetkit("train", "--data", tiny_data, "--optimizer", "lion"), "--optimizer 'lion'"
    )
    assert_user_error(
        jetkit("train", "--data", tiny_data, "--nominal-batch", "-1"), "--nominal-batch"
    )
    assert_user_error(jetkit("distill", "--data", tiny_data, "--out", tmp_path / "d"), "--teacher")
    assert_user_error(
        jetkit("distill", "--data", tiny_data, "--teacher", tmp_path / "missing.pt"),
        "missing.pt",
    )
    assert_user_error(
        jetkit("train", "--data", tiny_data, "--out", tiny_run.out_dir), "already holds", "--resume"
    )


def test_damaged_or_foreign_checkpoints_are_refused(tiny_data, tiny_run, tmp_path):
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(tiny_run.best_path.read_bytes()[:1000])
    assert_user_error(jetkit("eval", truncated, "--data", tiny_data), "truncated.pt", "truncated")
    foreign = tmp_path / "foreign.pt"
    import torch

    torch.save({"model": torch.zeros(3)}, foreign)
    assert_user_error(jetkit("export", foreign, "--out", tmp_path / "x"), "not a jetkit checkpoint")
    onnx_file = tmp_path / "model.onnx"
    onnx_file.write_bytes(b"onnx")
    assert_user_error(jetkit("export", onnx_file, "--out", tmp_path / "x"), "is an ONNX model")


def test_eval_of_a_model_for_other_classes_is_refused(tiny_data, blob_onnx):
    assert_user_error(jetkit("eval", blob_onnx, "--data", tiny_data), "red", "classes")


def test_eval_reads_only_the_split_it_evaluates(blob_onnx, blob_val, tmp_path):
    """A data set whose training images are not labelled yet still evaluates on `val`."""
    unlabelled = tmp_path / "unlabelled" / "images"
    unlabelled.mkdir(parents=True)
    for image in sorted((blob_val.parent / "images").iterdir())[:2]:
        (unlabelled / image.name).write_bytes(image.read_bytes())
    data = tmp_path / "data.yaml"
    names = blob_val.read_text().split("names:", 1)[1]
    data.write_text(
        f"train: {unlabelled}\nval: {blob_val.parent / 'images'}\nnames:{names}", encoding="utf-8"
    )
    result = jetkit("eval", blob_onnx, "--data", data, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["map50_95"] > 0.5
    assert_user_error(jetkit("eval", blob_onnx, "--data", data, "--split", "train"), "label file")


def test_nproc_is_removed_from_the_command_torchrun_repeats():
    assert strip_option(["train", "--nproc", "2", "--data", "d"], "--nproc") == [
        "train",
        "--data",
        "d",
    ]
    assert strip_option(["train", "--nproc=2"], "--nproc") == ["train"]


def test_eval_agrees_with_pycocotools_on_a_hand_made_coco_case(tmp_path, blob_onnx):
    """Three blob scenes and a COCO json whose ground truth is partly wrong on purpose (one box
    shifted, one object that is not in the image): `jetkit eval` must report exactly what
    pycocotools computes from the same detections."""
    import contextlib
    import io

    import cv2
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from edge.detector import Detector
    from edge.evaluate import EVAL_THRESHOLDS
    from edge.samples import draw_blob_scene

    scenes = [
        ((640, 480), {"red": (40, 40, 240, 200), "blue": (300, 260, 600, 440)}),
        ((480, 640), {"green": (60, 300, 400, 600)}),
        ((800, 450), {"red": (500, 50, 760, 400), "green": (40, 40, 200, 160)}),
    ]
    category_of = {"red": 1, "green": 3, "blue": 7}  # sparse ids, as COCO has
    images, annotations = [], []
    for image_id, (size_wh, boxes) in enumerate(scenes, start=1):
        path = tmp_path / "images" / f"scene{image_id}.png"
        path.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(path), draw_blob_scene(size_wh, boxes, seed=image_id))
        images.append(
            {"id": image_id, "file_name": path.name, "width": size_wh[0], "height": size_wh[1]}
        )
        for name, (x0, y0, x1, y1) in boxes.items():
            annotations.append(
                {
                    "image_id": image_id,
                    "category_id": category_of[name],
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                }
            )
    annotations[0]["bbox"][0] += 60  # a shifted box: IoU ~0.5 with what is drawn
    annotations.append({"image_id": 2, "category_id": 1, "bbox": [10, 10, 50, 50]})  # not drawn
    for ann_id, annotation in enumerate(annotations, start=1):
        annotation.update(id=ann_id, iscrowd=0, area=annotation["bbox"][2] * annotation["bbox"][3])
    categories = [{"id": i, "name": n} for n, i in category_of.items()]
    instances = tmp_path / "instances.json"
    instances.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )

    result = jetkit("eval", blob_onnx, "--data", instances, "--json")
    assert result.returncode == 0, result.stderr
    reported = json.loads(result.stdout)

    t = EVAL_THRESHOLDS
    detector = Detector.open(blob_onnx, conf=t.conf, iou=t.iou, max_detections=t.max_detections)
    detections = []
    for image in images:
        found = detector(cv2.imread(str(tmp_path / "images" / image["file_name"])))
        for (x0, y0, x1, y1), score, k in zip(
            found.xyxy, found.scores, found.class_ids, strict=True
        ):
            detections.append(
                {
                    "image_id": image["id"],
                    "category_id": [1, 3, 7][k],
                    "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                    "score": float(score),
                }
            )
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(instances))
        evaluator = COCOeval(gt, gt.loadRes(detections), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    assert 0 < evaluator.stats[0] < 0.9
    assert reported["map50_95"] == pytest.approx(evaluator.stats[0], abs=1e-4)
    assert reported["map50"] == pytest.approx(evaluator.stats[1], abs=1e-4)


def test_ddp_refuses_a_host_name_that_does_not_resolve_and_names_the_fix(tmp_path):
    check_host_name_resolves("localhost")
    # The real command on a machine whose name does not resolve: a UTS namespace of its own.
    name = "jetkit-no-such-host.invalid"  # RFC 2606: never resolves
    probe = subprocess.run(["unshare", "--uts", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"unshare --uts is not permitted here: {probe.stderr.strip()}")
    script = Path(sys.executable).with_name("jetkit")
    data = tmp_path / "data.yaml"
    result = subprocess.run(
        ["unshare", "--uts", "sh", "-c", f'hostname {name} && exec "$0" "$@"', script,
         "train", "--data", data, "--nproc", "2"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert_user_error(result, f"`127.0.1.1 {name}` to /etc/hosts")


def test_distill_options_reach_the_distillation_config(tiny_data):
    subparsers = argparse.ArgumentParser().add_subparsers()
    register_distill(subparsers)
    parser = subparsers.choices["distill"]
    common = ["--data", str(tiny_data), "--teacher", "t.onnx"]

    def config(*options: str):
        args = parser.parse_args([*common, *options])
        args.verb = "distill"
        return _train_config(args, distill=True).distill

    assert config().calibrate and config().box_score_threshold == 0.25
    changed = config("--no-teacher-calibration", "--box-score-threshold", "0.4")
    assert not changed.calibrate and changed.box_score_threshold == 0.4
