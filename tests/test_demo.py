"""`jetkit demo` end to end on a tiny schedule, twice into the same folder (a rerun must work, also
with other settings), and its report opened in a real headless Chromium: a page whose figures
render."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import cv2
import numpy as np
import pytest
from cli_helpers import jetkit

TINY = ("--quick", "--epochs", "1", "--imgsz", "96", "--serve-s", "5")
# Two demo runs in the fixture: each has its own 600 s limit, which pyproject's 300 s per test
# would cut short on a slow machine.
pytestmark = pytest.mark.timeout(2000)


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    """Two runs into one folder: the tiny schedule, then another data set whose gate demands a
    gain no artifact can show (a negative limit), so that FP16 and INT8 are both refused."""
    out = tmp_path_factory.mktemp("demo")
    runs = []
    for extra in (("--images", "16"), ("--images", "20", "--max-map-drop", "-100")):
        result = jetkit("demo", "--out", out, *TINY, *extra, "--bench-s", "0.5", "--quiet",
                        timeout=900)  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        state = json.loads((out / "device" / "state.json").read_text())
        runs.append((result, json.loads((out / "results" / "summary.json").read_text()), state))
    return out, runs


def test_the_demo_runs_the_whole_chain_and_prints_the_summary(demo_out):
    _, [(result, summary, state), _] = demo_out
    for step in ("[1/15] synthetic data set", "[14/15] flash to a local device root",
                 "[15/15] jetkit serve"):  # fmt: skip
        assert step in result.stderr
    assert set(summary["models"]) == {"teacher", "plain", "distilled"}
    assert summary["models"]["teacher"]["params"] > summary["models"]["distilled"]["params"]
    assert set(summary["artifacts"]) == {"fp32", "fp16", "int8"} and summary["refused"] == {}
    sizes = {p: a["size_bytes"] for p, a in summary["artifacts"].items()}
    assert sizes["int8"] < sizes["fp16"] < sizes["fp32"]
    assert summary["pipeline"]["frames"] > 0
    # No TensorRT on the device root: its CPU runs the INT8 artifact that passed its gate.
    assert summary["flash"] == {**summary["flash"], "release": "demo-detector-1.0.0",
                                "precision": "int8"}  # fmt: skip
    assert state["active"]["version"] == "1.0.0" and state["active"]["precision"] == "int8"
    for heading in ("mAP50-95", "p99 ms", "jetkit serve on test://", "report: "):
        assert heading in result.stdout


def test_a_refusal_is_a_result_the_demo_shows_and_goes_past(demo_out):
    out, [_, (result, summary, state)] = demo_out
    assert set(summary["artifacts"]) == {"fp32"} and set(summary["refused"]) == {"fp16", "int8"}
    # INT8 was tried as the refusal advises (each try's gate report kept), FP16 once.
    assert summary["refused"]["int8"]["tries"] == 2 and summary["refused"]["fp16"]["tries"] == 1
    assert len(list((out / "results").glob("gate-int8*.json"))) == 2
    assert "refused; trying again with 2 epochs of quantization-aware fine-tuning" in result.stderr
    assert "bench of the INT8 artifact: skipped, int8 was refused" in result.stderr
    assert "refused by the accuracy gate: loses" in result.stdout
    # The release the device got holds what passed (FP32 only), and runs.
    assert summary["flash"]["release"] == "demo-detector-1.0.1"
    assert state["active"]["version"] == "1.0.1" and state["active"]["precision"] == "fp32"
    assert summary["pipeline"]["frames"] > 0 and summary["samples_artifact"] == "fp32"
    assert not (out / "runs" / "distilled" / "onnx" / "model-int8.onnx").exists()
    page = (out / "report.html").read_text()
    assert "INT8 was refused" in page and "No artifact passed the gate" in page
    # The first run's release stays installed, to roll back to; each run kept its data set.
    assert (out / "device" / "releases" / "demo-detector" / "1.0.0").is_dir()
    assert sorted(p.name for p in (out / "data").iterdir()) == [
        "16+4-96px-seed0",
        "20+5-96px-seed0",
    ]


def test_the_report_opens_from_disk_with_every_figure(demo_out):
    out, _ = demo_out
    page = (out / "report.html").read_text()
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert len(sources) >= 7
    for source in sources:
        assert (out / source).is_file(), source
    for section in ("Training curves", "Precision-recall curves", "Streaming daemon"):
        assert section in page


def test_the_report_renders_in_headless_chromium(demo_out, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.fail("Chromium is missing: `make test` installs Debian's chromium")
    out, _ = demo_out
    shot = tmp_path / "report.png"
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
         f"--screenshot={shot}", "--window-size=1200,2400", (out / "report.html").as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (2400, 1200)
    # Not blank: text and figures; and coloured pixels, which only the plots (and annotated
    # frames) bring: a page whose images failed to load is black on white.
    assert (image < 200).any(axis=2).mean() > 0.02
    saturation = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)[..., 1]
    assert (saturation > 80).mean() > 0.002, "no coloured pixels: the figures did not render"
    assert np.std(image) > 10
