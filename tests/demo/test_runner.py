"""Running the demo's steps: each a real `jetkit` process with its output logged and shown, and a
failing step stopping the demo with the step, its exit status and the end of its log."""

from __future__ import annotations

import pytest

from demo.plan import Step
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
