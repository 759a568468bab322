"""`make demo` runs scripts/demo.sh: it must run through and leave its outputs."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_runs_end_to_end(tmp_path):
    bin_dir = Path(sys.executable).parent
    env = dict(
        os.environ,
        PY=sys.executable,
        JETKIT=str(bin_dir / "jetkit"),
        DEMO_EPOCHS="1",
        DEMO_IMAGES="16",
        DEMO_IMGSZ="96",
    )
    result = subprocess.run(
        ["bash", "scripts/demo.sh", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "street.jpg: 2 detections" in result.stdout
    assert sorted(p.name for p in (tmp_path / "annotated").iterdir()) == [
        "portrait.jpg",
        "square.jpg",
        "street.jpg",
    ]
    assert json.loads((tmp_path / "bench.json").read_text())["iterations"] >= 10
    evaluation = json.loads((tmp_path / "student-eval.json").read_text())
    assert set(evaluation) >= {"map50_95", "map50", "per_class"}
    assert (tmp_path / "student" / "onnx" / "model.onnx").is_file()
    assert len(list((tmp_path / "student-annotated").iterdir())) == 4
    assert json.loads((tmp_path / "student-bench.json").read_text())["iterations"] >= 10
