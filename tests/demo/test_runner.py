"""Running the demo's steps: each a real `jetkit` process with its output logged and shown, and a
failing step stopping the demo with the step, its exit status and the end of its log."""

from __future__ import annotations

import json

import pytest

from demo.plan import Retry, Step
from demo.runner import run_steps
from edge.errors import JetkitError


def test_steps_run_in_order_with_their_output_logged_and_shown(blob_onnx, tmp_path):
    shown = []
    steps = [
        Step("inspect", "inspect the sample model", ("inspect", str(blob_onnx))),
        Step(
            "json",
            "its manifest as JSON, kept in a file",
            ("inspect", str(blob_onnx), "--json"),
            stdout=tmp_path / "results" / "manifest.json",
        ),
    ]
    timings = run_steps(steps, tmp_path / "logs", shown.append)
    assert [t.key for t in timings] == ["inspect", "json"]
    assert shown[0] == "[1/2] inspect the sample model"
    assert any(line.startswith("    ") and "letterbox" in line for line in shown)
    assert (tmp_path / "results" / "manifest.json").read_text().lstrip().startswith("{")
    log = (tmp_path / "logs" / "01-inspect.log").read_text()
    assert log.startswith("$ ") and "inspect" in log.splitlines()[0]


def test_a_failing_step_stops_the_demo_and_names_its_log(tmp_path):
    shown = []
    steps = [
        Step("broken", "a model that is not there", ("inspect", str(tmp_path / "none.onnx"))),
        Step("never", "not reached", ("inspect", "x")),
    ]
    with pytest.raises(
        JetkitError,
        match=r"demo step 1 \(broken: jetkit inspect .*\) failed "
        r"with exit status 2; its log: .*01-broken.log",
    ):
        run_steps(steps, tmp_path / "logs", shown.append, echo=False)
    assert any("none.onnx" in line for line in shown)  # the end of its log
    assert not (tmp_path / "logs" / "02-never.log").exists()


def _calibrate(model, data, report, *extra):
    """A real gated INT8 calibration on `data` (train and val); `*extra` may set a limit no
    artifact meets (`--max-map-drop -100`), which the gate refuses with exit 1."""
    return (
        "calibrate", str(model), "--precision", "int8", "--runtime", "cpu", "--data", str(data),
        "--images", "8", "--method", "minmax", "--val", str(data), "--report", str(report),
        *extra,
    )  # fmt: skip


UNREACHABLE = ("--max-map-drop", "-100")


def test_a_refused_step_is_tried_again_as_planned(blob_onnx, blob_val, tmp_path):
    out = tmp_path / "out"
    argv = _calibrate(blob_onnx, blob_val, tmp_path / "r0.json", *UNREACHABLE, "--out", str(out))
    good = _calibrate(blob_onnx, blob_val, tmp_path / "r1.json", "--out", str(out))
    step = Step("int8", "INT8", argv, optional=True, retries=(Retry("a reachable limit", good),),
                retry_budget_s=600)  # fmt: skip
    shown = []
    (timing,) = run_steps([step], tmp_path / "logs", shown.append, echo=False)
    assert timing.outcome == "ok" and len(timing.tries) == 2
    assert "    refused; trying again with a reachable limit" in shown
    assert not json.loads((tmp_path / "r0.json").read_text())["passed"]
    assert json.loads((tmp_path / "r1.json").read_text())["passed"]
    assert (out / "blob-int8.onnx").is_file()


def test_a_step_refused_every_time_is_left_out_and_what_needs_it_adapts(
    blob_onnx, blob_val, tmp_path
):
    """The demo goes on: a step that needs the refused one runs its alternative, or is skipped;
    a retry budget already spent starts no more tries."""
    refused = _calibrate(blob_onnx, blob_val, tmp_path / "r.json", *UNREACHABLE)
    inspect = ("inspect", str(blob_onnx))
    steps = [
        Step(
            "int8",
            "INT8",
            refused,
            optional=True,
            retries=(Retry("again", refused),),
            retry_budget_s=0.0,
        ),  # fmt: skip
        Step("bench-int8", "bench it", ("inspect", "missing.onnx"), needs="int8"),
        Step("detect", "show it", ("inspect", "missing.onnx"), needs="int8", instead=inspect),
    ]
    shown = []
    timings = run_steps(steps, tmp_path / "logs", shown.append, echo=False)
    assert [(t.key, t.outcome, len(t.tries)) for t in timings] == [
        ("int8", "refused", 1),
        ("bench-int8", "skipped", 0),
        ("detect", "ok", 1),
    ]
    assert any(line.startswith("    refused after 1 try") for line in shown)
    assert "[2/3] bench it: skipped, int8 was refused" in shown


def test_a_gate_refusal_of_a_step_that_must_pass_stops_the_demo(blob_onnx, blob_val, tmp_path):
    step = Step("int8", "INT8", _calibrate(blob_onnx, blob_val, tmp_path / "r.json", *UNREACHABLE))
    with pytest.raises(JetkitError, match="exit status 1"):
        run_steps([step], tmp_path / "logs", lambda _line: None, echo=False)
