"""The README cannot rot: every `jetkit …` command it shows parses with the real command line
(verbs, options, choices), every `make` target and repository file it names exists, and its
daemon configuration example passes the daemon's own validation. What the commands do is tested
elsewhere and by the demo."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from edge.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _code_lines() -> list[str]:
    """Indented code lines, continuation lines (`\\`) joined."""
    lines, current = [], ""
    for raw in README.splitlines():
        if not raw.startswith("    "):
            current = ""
            continue
        line = raw.strip()
        current = f"{current} {line}" if current else line
        if current.endswith("\\"):
            current = current[:-1]
            continue
        lines.append(current)
        current = ""
    return lines


COMMANDS = [line for line in _code_lines() if line.startswith("jetkit ")]


def test_the_readme_shows_every_verb():
    verbs = {shlex.split(c)[1] for c in COMMANDS}
    assert verbs >= {
        "inspect", "detect", "bench", "run", "serve", "service", "data", "train", "distill",
        "eval", "export", "calibrate", "build", "bundle", "flash", "status", "rollback",
    }  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS)
def test_every_readme_command_parses(command):
    # `[--to 1.1.0]` marks an optional part: shown, so it must parse too.
    argv = [a for a in shlex.split(command, comments=True)[1:] if a not in ("[", "]")]
    argv = [a.strip("[]") for a in argv]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse's way of refusing
        raise AssertionError(f"the README's `{command}` does not parse") from exc
    assert callable(args.handler)


def test_every_make_target_it_names_exists():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, flags=re.M))
    named = set(re.findall(r"`make ([a-z][a-z-]*)", README)) | {
        line.split()[1] for line in _code_lines() if line.startswith("make ")
    }
    assert named and named <= targets


def test_every_repository_file_it_names_exists():
    # Paths in backticks under the project's own folders, and the Markdown files beside it.
    folders = "scripts|benchmarks|deploy|edge|trainer|calibration|demo|tests"
    named = re.findall(rf"`((?:{folders})/[\w./-]+|[A-Z]+\.md)`", README)
    assert "scripts/setup.sh" in named
    missing = [path for path in named if not (ROOT / path).exists()]
    assert not missing, f"the README names files that do not exist: {missing}"


def test_the_daemon_configuration_example_is_valid(tmp_path):
    from edge.service.config import load_config

    example = next(e for e in re.findall(r"```yaml\n(.*?)```", README, flags=re.S)
                   if e.startswith("model:"))  # fmt: skip
    path = tmp_path / "jetkit.yaml"
    path.write_text(example)
    config = load_config(path)
    assert [s.uri for s in config.streams] == ["csi://0", "rtsp://cam.local/stream"]
    assert config.http.host == "127.0.0.1"


def test_the_tracking_configuration_example_is_valid(tmp_path):
    from edge.service.config import load_config

    example = next(e for e in re.findall(r"```yaml\n(.*?)```", README, flags=re.S)
                   if e.startswith("tracker:"))  # fmt: skip
    path = tmp_path / "jetkit.yaml"
    path.write_text(f"model: model.onnx\nstreams: ['test://']\n{example}")
    analytics = load_config(path).analytics
    assert analytics is not None and analytics.tracker is not None
    assert [z.name for z in analytics.zones] == ["porch"]
    assert [line.name for line in analytics.lines] == ["gate"]
