"""The demo's plan: the chain in order as `jetkit` command lines, each artifact gated, the
flash going to a local device root and the daemon serving what was flashed."""

from __future__ import annotations

import dataclasses

import pytest

from demo.plan import DemoSettings, Paths, next_release_version, plan, serve_config_text
from edge.errors import JetkitError

SETTINGS = DemoSettings(
    recipe="test", train_images=16, val_images=4, imgsz=96, batch=8, teacher_model="n",
    teacher_epochs=2, student_model="t", student_epochs=1,
)  # fmt: skip


def test_the_chain_runs_in_order_from_data_to_the_daemon(tmp_path):
    steps = plan(SETTINGS, Paths(tmp_path, SETTINGS.data_key), "1.0.3")
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
    bundle = by_key["bundle"]
    assert bundle[bundle.index("--version") + 1] == "1.0.3"
    assert bundle[bundle.index("-o") + 1] == by_key["flash"][1]
    assert steps[-1].run_s == SETTINGS.serve_s


def test_a_refused_artifact_is_tried_again_then_left_out(tmp_path):
    """Training and calibration differ from machine to machine, so a gate refusal is a result:
    INT8 is tried again as the refusal advises (within a time budget), a refused artifact's
    benchmark is skipped, the sample frames come from FP32 instead, and the flash takes what
    the device can run from what passed."""
    paths = Paths(tmp_path, SETTINGS.data_key)
    by_key = {s.key: s for s in plan(dataclasses.replace(SETTINGS, max_map_drop=0.5), paths)}
    for gated in ("fp16", "int8"):
        step = by_key[gated]
        assert step.optional and step.argv[step.argv.index("--max-map-drop") + 1] == "0.5"
        assert step.argv[step.argv.index("--report") + 1] == str(paths.try_report(gated, 0))
        assert by_key[f"bench-{gated}"].needs == gated and by_key[f"bench-{gated}"].instead is None
    int8 = by_key["int8"]
    assert [r.argv[len(int8.argv) - 2 :] for r in int8.retries] == [
        ("--qat", "2", "--report", str(paths.try_report("int8", 1))),
    ]
    assert all(r.argv[: len(int8.argv) - 2] == int8.argv[:-2] for r in int8.retries)
    assert 0 < int8.retry_budget_s <= 600
    assert not by_key["bench-fp32"].needs and not by_key["export"].optional
    detect = by_key["detect"]
    assert detect.needs == "int8" and str(paths.artifact("fp32")) in detect.instead
    flash = by_key["flash"].argv
    assert flash[flash.index("--precision") + 1] == "auto"


def test_the_daemon_serves_the_flashed_release(tmp_path):
    config = serve_config_text(SETTINGS, Paths(tmp_path, SETTINGS.data_key))
    assert f"model: {tmp_path / 'device' / 'current'}" in config
    assert 'listen: "127.0.0.1:0"' in config and "summary:" in config


def test_settings_are_checked():
    with pytest.raises(JetkitError, match="multiple of 32"):
        dataclasses.replace(SETTINGS, imgsz=100)
    with pytest.raises(JetkitError, match="student_epochs must be >= 1"):
        dataclasses.replace(SETTINGS, student_epochs=0)


def test_other_settings_get_their_own_data_set(tmp_path):
    quick = Paths(tmp_path, SETTINGS.data_key)
    larger = Paths(tmp_path, dataclasses.replace(SETTINGS, train_images=32).data_key)
    assert (
        quick.data != larger.data and quick.data.parent == larger.data.parent == tmp_path / "data"
    )
    data_argv = plan(SETTINGS, quick)[0].argv
    assert data_argv[:3] == ("data", "synth", str(quick.data))


def test_every_run_flashes_the_next_release_and_ignores_other_releases():
    assert next_release_version([]) == "1.0.0"
    assert next_release_version([("demo-detector", "1.0.0")]) == "1.0.1"
    installed = [("demo-detector", "1.0.2"), ("demo-detector", "1.0.10"), ("demo-detector", "2.0"),
                 ("other", "1.0.99")]  # fmt: skip
    assert next_release_version(installed) == "1.0.11"
