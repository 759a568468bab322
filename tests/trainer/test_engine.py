"""Real (tiny) training runs: what a run writes, the loss falling, exact resume, transfer
learning, distillation, and DDP with gloo on two CPU processes."""

from __future__ import annotations

import csv
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edge.errors import JetkitError
from trainer.augment import AugmentConfig
from trainer.checkpoint import load_checkpoint, save_checkpoint
from trainer.engine import Trainer, resume, train
from trainer.model import DetectionModel, ModelConfig
from trainer.optim import (
    WARMUP_MOMENTUM,
    accumulate_at,
    build_optimizer,
    lr_at,
    parameter_groups,
    plan_optimizer,
)
from trainer.synth import SYNTH_CLASSES


def quiet(_message: str) -> None:
    pass


def read_csv(path: Path) -> list[dict[str, float]]:
    with open(path, newline="") as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def test_a_run_writes_checkpoints_log_and_plots(tiny_run):
    out = tiny_run.out_dir
    for name in (
        "best.pt",
        "last.pt",
        "epoch1.pt",
        "results.csv",
        "results.json",
        "losses.png",
        "metrics.png",
        "pr_curve.png",
    ):
        assert (out / name).is_file(), name
    rows = read_csv(out / "results.csv")
    assert [row["epoch"] for row in rows] == [1.0, 2.0]
    assert all(row["train/box"] > 0 and row["train/cls"] > 0 for row in rows)
    assert all(0 <= row["val/map50_95"] <= row["val/map50"] <= 1 for row in rows)
    best = load_checkpoint(out / "best.pt")
    assert "train_state" not in best and "train_state" in load_checkpoint(out / "last.pt")
    assert best["names"] == list(SYNTH_CLASSES)
    assert set(tiny_run.metrics) >= {"map50_95", "map50", "per_class"}


def test_checkpoints_are_plain_data_that_load_with_weights_only(tiny_run):
    checkpoint = torch.load(tiny_run.best_path, weights_only=True)
    assert checkpoint["format"] == "jetkit.checkpoint/1"
    assert all(isinstance(v, torch.Tensor) for v in checkpoint["state_dict"].values())


def test_training_lowers_the_loss(tiny_data, tiny_config, tmp_path):
    """Thirty steps over the same eight images, unaugmented: the loss falls well below where it
    began."""
    import yaml

    from edge.datasets import load_dataset

    eight = tmp_path / "eight.txt"
    eight.write_text("".join(f"{s.image_path}\n" for s in load_dataset(tiny_data).train[:8]))
    config = yaml.safe_load(Path(tiny_data).read_text())
    config.update(path=str(Path(tiny_data).parent), train=str(eight))
    data = tmp_path / "eight.yaml"
    data.write_text(yaml.safe_dump(config))
    run = tiny_config(
        data,
        tmp_path / "run",
        epochs=30,
        batch=8,
        lr=5e-3,
        augment=AugmentConfig(hsv_gains=(0, 0, 0), flip_lr=0, scale=0, translate=0, mosaic=0),
        close_mosaic=0,
        patience=0,
        warmup_epochs=1,
    )
    losses = [
        row["train/box"] * 7.5 + row["train/cls"] * 0.5 for row in train(run, log=quiet).history
    ]
    # The last epochs together, not one: a single epoch's loss moves with the CPU's arithmetic.
    assert np.mean(losses[-3:]) < 0.7 * losses[0], losses


def test_resume_reproduces_an_uninterrupted_run_exactly(tiny_run, tmp_path):
    interrupted = tmp_path / "interrupted"
    shutil.copytree(tiny_run.out_dir, interrupted)
    (interrupted / "last.pt").unlink()
    result = resume(interrupted / "epoch1.pt", log=quiet)
    assert result.epochs_run == 2
    straight = load_checkpoint(tiny_run.last_path)
    resumed = load_checkpoint(interrupted / "last.pt")
    for key, value in straight["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key
    for key, value in straight["train_state"]["model"].items():
        assert torch.equal(value, resumed["train_state"]["model"][key]), key

    def without_timing(rows):
        return [{k: v for k, v in row.items() if k != "images_per_s"} for row in rows]

    assert without_timing(read_csv(interrupted / "results.csv")) == without_timing(
        read_csv(tiny_run.out_dir / "results.csv")
    )


def test_a_run_from_a_version_with_other_optimizer_groups_is_refused_not_garbled(
    tiny_run, tmp_path
):
    # Runs written before biases had their own warm-up group saved two groups (decay, no decay).
    older = tmp_path / "older"
    shutil.copytree(tiny_run.out_dir, older)
    (older / "last.pt").unlink()
    checkpoint = load_checkpoint(older / "epoch1.pt")
    groups = checkpoint["train_state"]["optimizer"]["param_groups"]
    assert len(groups) == 3
    groups[1]["params"] += groups.pop(2)["params"]
    save_checkpoint(checkpoint, older / "epoch1.pt")
    with pytest.raises(JetkitError, match=r"groups \[\d+, \d+\].*jetkit train --weights"):
        resume(older / "epoch1.pt", log=quiet)
    assert not (older / "last.pt").exists()


def test_early_stopping_ends_a_run_that_stops_improving(tiny_data, tiny_config, tmp_path):
    # With a learning rate this small only BatchNorm statistics move: mAP50-95 soon stops rising.
    config = tiny_config(tiny_data, tmp_path / "flat", epochs=12, lr=1e-12, patience=2)
    result = train(config, log=quiet)
    # Which epoch is best depends on the last bits of the CPU's arithmetic (the score barely
    # moves): the stop is checked against the rule applied to the scores this run saw.
    history = [row["val/map50_95"] for row in result.history]
    best, since_best, expected_stop = -1.0, 0, None
    for epoch, score in enumerate(history, 1):
        best, since_best = (score, 0) if score > best else (best, since_best + 1)
        if since_best >= 2:
            expected_stop = epoch
            break
    assert expected_stop is not None, history  # 12 epochs of a frozen model do not keep improving
    assert result.stopped_early and result.epochs_run == expected_stop < 12
    best_epoch = load_checkpoint(result.best_path)["epoch"]
    assert history[best_epoch - 1] == max(history) and best_epoch == expected_stop - 2


def test_a_finished_or_foreign_run_is_not_resumed_or_overwritten(tiny_run, tiny_data, tiny_config):
    with pytest.raises(JetkitError, match="finished all 2 epochs"):
        resume(tiny_run.last_path, log=quiet)
    with pytest.raises(JetkitError, match="best.pt never does"):
        resume(tiny_run.best_path, log=quiet)
    with pytest.raises(JetkitError, match="already holds a training run"):
        train(tiny_config(tiny_data, tiny_run.out_dir), log=quiet)


def test_transfer_learning_loads_matching_tensors_and_freezes_stages(
    tiny_run, tiny_data, tiny_config, tmp_path
):
    messages = []
    result = train(
        tiny_config(
            tiny_data, tmp_path / "ft", epochs=1, weights=str(tiny_run.best_path), freeze=2
        ),
        log=messages.append,
    )
    assert any("transfer:" in m and "tensors loaded" in m for m in messages)
    before = load_checkpoint(tiny_run.best_path)["state_dict"]
    after = load_checkpoint(result.last_path)["train_state"]["model"]
    stem = "backbone.stages.0.0.weight"
    assert torch.equal(before[stem], after[stem])  # frozen
    head = "head.cls.0.2.weight"
    assert not torch.equal(before[head], after[head])  # trained


def test_distillation_logs_its_terms_saves_only_the_student_and_turns_off_at_the_end(
    tiny_run, tiny_data, tiny_config, tmp_path
):
    from trainer.distill import DistillConfig

    config = tiny_config(
        tiny_data,
        tmp_path / "student",
        teacher=str(tiny_run.best_path),
        distill=DistillConfig(off_epochs=1, box_score_threshold=0.0),
    )
    result = train(config, log=quiet)
    first, last = result.history
    assert (
        first["train/kd_logit"] > 0 and first["train/kd_feature"] > 0 and first["train/kd_box"] > 0
    )
    assert last["train/kd_logit"] == 0 and last["train/kd_feature"] == 0
    checkpoint = load_checkpoint(result.best_path)
    student_keys = set(DetectionModel(ModelConfig(6, "t")).state_dict())
    assert set(checkpoint["state_dict"]) == student_keys
    assert checkpoint["provenance"]["teacher"]["path"] == str(tiny_run.best_path)
    assert len(checkpoint["provenance"]["teacher"]["sha256"]) == 64


def test_a_teacher_is_calibrated_to_where_it_agrees_with_the_val_set(
    tiny_run, tiny_data, tiny_config, tmp_path
):
    """tiny_run made confident (class biases +6) and a copy of the data whose val labels are
    exactly its detections above 0.1: the run finds its best F1 (1.0) below them, shifts its logits so
    that point reads as the box gate, says so and records it."""
    from edge.datasets import label_path, load_dataset
    from edge.manifest import PreprocessSpec
    from trainer.distill import DistillConfig
    from trainer.synth import yolo_label_lines
    from trainer.teachers import open_teacher

    checkpoint = load_checkpoint(tiny_run.best_path)
    for key, tensor in checkpoint["state_dict"].items():
        if key.startswith("head.cls.") and key.endswith(".2.bias"):
            tensor += 6.0
    confident = tmp_path / "confident.pt"
    save_checkpoint(checkpoint, confident)
    data = tmp_path / "data" / tiny_data.name
    shutil.copytree(tiny_data.parent, data.parent)
    val = load_dataset(data, splits=("val",)).val
    teacher = open_teacher(str(confident), None, (96, 96), PreprocessSpec(), torch.device("cpu"))
    label_scores = []
    for sample, found in zip(val, teacher.predict(val), strict=True):
        keep = found.scores > 0.1
        text = yolo_label_lines(found.xyxy[keep], found.class_ids[keep], sample.size_wh)
        label_path(sample.image_path).write_text(text)
        label_scores += found.scores[keep].tolist()
    assert label_scores

    logs: list[str] = []
    config = tiny_config(data, tmp_path / "student", epochs=1, teacher=str(confident),
                         distill=DistillConfig(off_epochs=0), cache_dir=str(tmp_path / "cache"))  # fmt: skip
    result = train(config, log=logs.append)
    record = load_checkpoint(result.best_path)["provenance"]["teacher"]["operating_point"]
    assert record["f1"] == 1.0 and record["val_images"] == len(val)
    assert 0.05 <= record["confidence"] <= min(label_scores)  # the floor, up to the labels
    logit = math.log(record["confidence"] / (1 - record["confidence"]))
    assert record["logit_shift"] == pytest.approx(math.log(0.25 / 0.75) - logit, abs=1e-3)
    assert any(f"teacher calibration on (logits {record['logit_shift']:+.2f}" in line
               for line in logs)  # fmt: skip


def test_a_teacher_for_other_classes_is_refused(tiny_run, tiny_data, tiny_config, tmp_path):
    import yaml

    config = yaml.safe_load(Path(tiny_data).read_text())
    config["path"] = str(Path(tiny_data).parent)
    config["names"] = [f"other{k}" for k in range(len(config["names"]))]
    renamed = tmp_path / "renamed.yaml"
    renamed.write_text(yaml.safe_dump(config))
    from trainer.distill import DistillConfig

    with pytest.raises(JetkitError, match="classes"):
        train(
            tiny_config(
                renamed, tmp_path / "s", teacher=str(tiny_run.best_path), distill=DistillConfig()
            ),
            log=quiet,
        )


def test_ddp_with_gloo_on_two_cpu_processes(tiny_data, tmp_path):
    script = Path(sys.executable).with_name("jetkit")
    out = tmp_path / "ddp"
    result = subprocess.run(
        [
            script,
            "train",
            "--data",
            tiny_data,
            "--model",
            "t",
            "--epochs",
            "1",
            "--imgsz",
            "64",
            "--batch",
            "8",
            "--out",
            out,
            "--nproc",
            "2",
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "over 2 processes" in result.stderr
    assert (out / "best.pt").is_file() and len(read_csv(out / "results.csv")) == 1


def test_learning_rate_warms_up_then_decays_to_the_floor():
    rates = [lr_at(step, 100, 10, 1e-3, 0.1) for step in range(100)]
    assert rates[0] == pytest.approx(1e-4) and rates[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(rates[10:], rates[11:], strict=False))
    assert rates[-1] == pytest.approx(1e-4, rel=0.01)


def test_weight_decay_skips_batchnorm_and_biases():
    model = DetectionModel(ModelConfig(2, "t"))
    weights, norms, biases = parameter_groups(model, 0.05)
    assert weights["weight_decay"] == 0.05 and all(p.ndim == 4 for p in weights["params"])
    assert norms["weight_decay"] == biases["weight_decay"] == 0.0
    assert all(p.ndim == 1 for p in norms["params"] + biases["params"])
    assert biases["bias"] and not norms["bias"] and not weights["bias"]
    total = sum(len(group["params"]) for group in (weights, norms, biases))
    assert total == len(list(model.parameters()))


def test_auto_picks_adamw_for_short_runs_and_sgd_for_long_ones_as_ultralytics_does():
    """Ultralytics' rule: more than 10000 steps of the nominal batch (64) means SGD."""
    short = plan_optimizer("auto", 800, 16, 40, nominal_batch=64)
    assert (short.name, short.lr, short.loss_scale) == ("adamw", 2e-3, 1.0)
    coco = plan_optimizer("auto", 118_287, 16, 300, nominal_batch=64)
    assert (coco.name, coco.lr, coco.momentum, coco.warmup_bias_lr) == ("sgd", 0.01, 0.937, 0.1)
    assert coco.loss_scale == 16  # YOLOv8's lr0 assumes a loss summed over the batch
    assert plan_optimizer("sgd", 800, 16, 40, lr=0.02).lr == 0.02


def test_a_nominal_batch_accumulates_micro_batches_and_scales_weight_decay():
    plan = plan_optimizer("adamw", 800, 16, 40, nominal_batch=64)
    assert plan.accumulate == 4 and plan.weight_decay == pytest.approx(0.05)
    odd = plan_optimizer("sgd", 800, 24, 40, nominal_batch=64)
    assert odd.accumulate == 3 and odd.weight_decay == pytest.approx(5e-4 * 72 / 64)
    assert plan_optimizer("adamw", 800, 16, 40).accumulate == 1  # off by default
    assert plan_optimizer("adamw", 16, 16, 2, nominal_batch=64).accumulate == 2  # all it has


def test_accumulation_ramps_up_over_warm_up():
    ramp = [accumulate_at(step, 100, 4) for step in range(0, 120, 10)]
    assert ramp[0] == 1 and ramp[-1] == 4 and ramp == sorted(ramp)


def test_biases_can_warm_down_while_weights_warm_up():
    weights = [lr_at(step, 100, 10, 0.01, 0.1) for step in range(12)]
    biases = [lr_at(step, 100, 10, 0.01, 0.1, warmup_start_lr=0.1) for step in range(12)]
    assert weights[0] < weights[9] and biases[0] > biases[9]
    assert weights[9:] == pytest.approx(biases[9:])


def test_a_run_with_a_nominal_batch_steps_once_per_accumulated_batch(
    tiny_data, tiny_config, tmp_path
):
    """32 images in micro-batches of 4 with a nominal batch of 8: 8 backward passes, 4 optimizer
    steps (each one EMA update), on YOLOv8's SGD."""
    config = tiny_config(
        tiny_data, tmp_path / "nbs", epochs=1, batch=4, nominal_batch=8, warmup_epochs=0,
        optimizer="sgd", close_mosaic=0,
    )  # fmt: skip
    train(config, log=quiet)
    assert load_checkpoint(tmp_path / "nbs" / "last.pt")["train_state"]["ema_updates"] == 4


def test_sgd_warm_up_lowers_the_bias_rate_and_raises_momentum_as_yolov8_does(
    tiny_data, tiny_config, tmp_path
):
    model = DetectionModel(ModelConfig(2, "t"))
    plan = plan_optimizer("sgd", 800, 16, 40)
    optimizer = build_optimizer(parameter_groups(model, plan.weight_decay), plan)
    trainer = Trainer(tiny_config(tiny_data, tmp_path / "unused"))
    for step, expect_momentum in ((0, WARMUP_MOMENTUM), (99, plan.momentum)):
        lr = trainer._set_learning_rates(optimizer, plan, step, 1000, 100)
        rates = {group["bias"]: group["lr"] for group in optimizer.param_groups}
        momenta = [group["momentum"] for group in optimizer.param_groups]
        assert rates[False] == lr
        assert momenta == pytest.approx([expect_momentum] * len(momenta), abs=0.002)
    assert rates[True] == pytest.approx(rates[False])  # both at the peak when warm-up ends
    trainer._set_learning_rates(optimizer, plan, 0, 1000, 100)
    rates = {group["bias"]: group["lr"] for group in optimizer.param_groups}
    assert rates[True] > 0.09 and rates[False] < 0.001


def copy_train_images(data, folder: Path, count: int) -> Path:
    """The first `count` train images of `data` in `folder`, without labels: footage."""
    from edge.datasets import load_dataset

    folder.mkdir()
    for sample in load_dataset(data, splits=("train",)).train[:count]:
        shutil.copy(sample.image_path, folder / sample.image_path.name)
    return folder


def test_distilling_from_an_onnx_teacher_with_unlabeled_footage(
    tiny_data, tiny_config, teacher_onnx, tmp_path
):
    """The teacher runs in ONNX Runtime on every augmented batch (logit and box terms; no
    features to imitate), pseudo-labels the footage, and the student's checkpoint and exported
    manifest record both."""
    from edge.models import file_sha256
    from trainer.distill import DistillConfig
    from trainer.export import export_checkpoint

    footage = copy_train_images(tiny_data, tmp_path / "footage", 16)
    logs: list[str] = []
    config = tiny_config(
        tiny_data,
        tmp_path / "student",
        teacher=str(teacher_onnx),
        distill=DistillConfig(off_epochs=1, box_score_threshold=0.0),
        unlabeled=str(footage),
        pseudo_threshold=0.001,
        cache_dir=str(tmp_path / "cache"),
    )
    result = train(config, log=logs.append)
    first, last = result.history
    assert first["train/kd_logit"] > 0 and first["train/kd_box"] > 0
    assert first["train/kd_feature"] == 0 and last["train/kd_logit"] == 0
    assert any("feature imitation off (only a jetkit checkpoint" in line for line in logs)
    assert any("48 images" in line for line in logs if line.startswith("training"))
    provenance = load_checkpoint(result.best_path)["provenance"]
    assert provenance["teacher"]["format"] == "onnx (yolov8)"
    assert provenance["teacher"]["sha256"] == file_sha256(teacher_onnx)
    footage_record = provenance["unlabeled"]
    assert footage_record["frames"] == 16 and footage_record["pseudo_boxes"] > 0
    assert footage_record["threshold_from"] == "--pseudo-threshold"
    exported = export_checkpoint(result.best_path, tmp_path / "onnx", sorted(footage.iterdir())[:2])
    manifest = exported.manifest
    assert manifest.provenance["unlabeled"]["source"] == str(footage.resolve())
    assert manifest.provenance["teacher"]["path"] == str(teacher_onnx)
    # A second student from the same teacher and footage does not run the teacher on it again.
    again: list[str] = []
    train(config.replace(out=str(tmp_path / "second"), epochs=1), log=again.append)
    assert any("16 from the cache" in line and "0 computed" in line for line in again)


def test_footage_alone_validates_on_held_out_teacher_labels(
    tiny_data, tiny_config, teacher_onnx, tmp_path
):
    from trainer.distill import DistillConfig

    footage = copy_train_images(tiny_data, tmp_path / "footage", 20)
    logs: list[str] = []
    result = train(
        tiny_config(
            None,
            tmp_path / "student",
            epochs=1,
            teacher=str(teacher_onnx),
            distill=DistillConfig(off_epochs=0),
            unlabeled=str(footage),
            pseudo_threshold=0.001,
            cache_dir=str(tmp_path / "cache"),
        ),
        log=logs.append,
    )
    assert any("validation is the teacher's pseudo-labels on 2 held-out" in line for line in logs)
    provenance = load_checkpoint(result.best_path)["provenance"]
    assert provenance["dataset"] is None
    assert provenance["unlabeled"]["validation"] == "teacher pseudo-labels on 2 held-out frames"
    assert load_checkpoint(result.best_path)["names"] == list(SYNTH_CLASSES)
