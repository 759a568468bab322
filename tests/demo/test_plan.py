"""The demo's plan: the chain in order as `jetkit` command lines, each artifact gated, the
flash going to a local device root and the daemon serving what was flashed."""

from __future__ import annotations

import dataclasses

import pytest

from demo.plan import DemoSettings, Paths, plan, serve_config_text
from edge.errors import JetkitError

SETTINGS = DemoSettings(
    recipe="test", train_images=16, val_images=4, imgsz=96, batch=8, teacher_model="s",
    teacher_epochs=2, student_model="n", student_epochs=1,
)  # fmt: skip


def test_the_chain_runs_in_order_from_data_to_the_daemon(tmp_path):
    steps = plan(SETTINGS, Paths(tmp_path))
    assert [s.key for s in steps] == [
        "data", "teacher", "plain", "distilled", "eval", "export", "fp16", "int8",
        "bench-fp32", "bench-fp16", "bench-int8", "detect", "bundle", "flash", "serve",
    ]  # fmt: skip
    verbs = {s.key: s.argv[0] for s in steps}
    assert verbs["teacher"] == "train" and verbs["distilled"] == "distill"
    by_key = {s.key: s.argv for s in steps}
    teacher_ckpt = str(tmp_path / "runs" / "teacher" / "best.pt")
    assert by_key["distilled"][by_key["distilled"].index("--teacher") + 1] == teacher_ckpt
    # The plain and the distilled student share model size, schedule and seed.
    for option in ("--model", "--epochs", "--seed", "--imgsz", "--batch"):
        plain, distilled = by_key["plain"], by_key["distilled"]
        assert plain[plain.index(option) + 1] == distilled[distilled.index(option) + 1]
    for gated in ("fp16", "int8"):
        assert "--val" in by_key[gated]
    assert by_key["flash"][by_key["flash"].index("--target") + 1] == f"file://{tmp_path / 'device'}"
    assert steps[-1].run_s == SETTINGS.serve_s


def test_the_daemon_serves_the_flashed_release(tmp_path):
    config = serve_config_text(SETTINGS, Paths(tmp_path))
    assert f"model: {tmp_path / 'device' / 'current'}" in config
    assert 'listen: "127.0.0.1:0"' in config and "summary:" in config


def test_settings_are_checked():
    with pytest.raises(JetkitError, match="multiple of 32"):
        dataclasses.replace(SETTINGS, imgsz=100)
    with pytest.raises(JetkitError, match="student_epochs must be >= 1"):
        dataclasses.replace(SETTINGS, student_epochs=0)
