"""Expensive trainer artifacts, made once per session: a small synthetic data set and a tiny
model really trained on it for two epochs (what eval, export and distillation tests consume),
and that model exported to ONNX (a teacher file)."""

from __future__ import annotations

import pytest

from trainer.config import TrainConfig
from trainer.synth import SynthConfig, write_synth_dataset

TINY_IMGSZ = 96


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory):
    """data.yaml of 32 train / 12 val synthetic images around 128 px."""
    out = tmp_path_factory.mktemp("data") / "synth"
    return write_synth_dataset(out, SynthConfig(train_images=32, val_images=12, imgsz=128, seed=3))


def make_tiny_config(data, out, **changes) -> TrainConfig:
    """Two quick epochs of the smallest model (`t`) at 96 px."""
    values = dict(
        data=None if data is None else str(data),
        out=str(out),
        model="t",
        epochs=2,
        imgsz=TINY_IMGSZ,
        batch=8,
        warmup_epochs=0.5,
        close_mosaic=1,
        seed=0,
    )
    values.update(changes)
    return TrainConfig(**values)


@pytest.fixture(scope="session")
def tiny_config():
    """`tiny_config(data, out, **changes)`: the config of the tiny runs, with changes."""
    return make_tiny_config


@pytest.fixture(scope="session")
def tiny_run(tiny_data, tmp_path_factory: pytest.TempPathFactory):
    from trainer.engine import train

    out = tmp_path_factory.mktemp("runs") / "tiny"
    return train(make_tiny_config(tiny_data, out, save_period=1), log=lambda _message: None)


@pytest.fixture(scope="session")
def teacher_onnx(tiny_run, tiny_data, tmp_path_factory):
    """`tiny_run`'s best.pt exported to ONNX (dynamic batch up to 4): a teacher file as a user
    would hand `jetkit distill --teacher`."""
    from edge.datasets import load_dataset
    from trainer.export import export_checkpoint

    val = [s.image_path for s in load_dataset(tiny_data, splits=("val",)).val]
    out = tmp_path_factory.mktemp("teacher-onnx")
    return export_checkpoint(
        tiny_run.best_path, out, val, dynamic_batch=True, max_batch=4
    ).onnx_path
