"""`make demo` runs scripts/demo.sh: it must run through and leave its outputs."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_runs_end_to_end(tmp_path):
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, PY=sys.executable, JETKIT=str(bin_dir / "jetkit"))
    result = subprocess.run(
        ["bash", "scripts/demo.sh", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "street.jpg: 2 detections" in result.stdout
    assert sorted(p.name for p in (tmp_path / "annotated").iterdir()) == [
        "portrait.jpg",
        "square.jpg",
        "street.jpg",
    ]
    assert json.loads((tmp_path / "bench.json").read_text())["iterations"] >= 10
