"""What the demo measured, gathered from the files its steps wrote into one JSON-ready summary,
and the table printed at the end. `collect` reads files; `format_table` is pure."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from demo.plan import ARTIFACTS, MODELS, DemoSettings, Paths
from demo.runner import StepTiming


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def model_parameters(checkpoint: Path) -> int:
    """Parameters of a trained checkpoint (read with `weights_only=True`)."""
    from trainer.checkpoint import load_checkpoint, model_from_checkpoint
    from trainer.model import count_parameters

    return count_parameters(model_from_checkpoint(load_checkpoint(checkpoint)))


def collect(
    settings: DemoSettings, paths: Paths, timings: list[StepTiming], params: dict[str, int]
) -> dict[str, Any]:
    models = {}
    for name in MODELS:
        results = _json(paths.run(name) / "results.json")
        models[name] = {
            "size": settings.teacher_model if name == "teacher" else settings.student_model,
            "params": params[name],
            "epochs": results["epochs"],
            "map50_95": results["map50_95"],
            "map50": results["map50"],
        }
    gates = {p: _json(paths.gate_report(p)) for p in ARTIFACTS if p != "fp32"}
    artifacts = {}
    for precision in ARTIFACTS:
        bench = _json(paths.result(f"bench-{precision}.json"))
        gate = gates.get(precision)
        accuracy = gate["artifact"] if gate else next(iter(gates.values()))["fp32"]
        artifacts[precision] = {
            "file": str(paths.artifact(precision)),
            "size_bytes": paths.artifact(precision).stat().st_size,
            "map50_95": accuracy["map50_95"],
            "map50": accuracy["map50"],
            "map_drop_points": gate["map_drop_points"] if gate else 0.0,
            "latency_p50_ms": bench["latency_ms"]["median"],
            "latency_p99_ms": bench["latency_ms"]["p99"],
            "throughput_fps": bench["throughput_fps"],
        }
    serve = _json(paths.result("serve-summary.json"))
    flash = _json(paths.result("flash.json"))
    return {
        "settings": asdict(settings),
        "models": models,
        "artifacts": artifacts,
        "pipeline": {
            "stream": settings.stream,
            "frames": serve["frames"],
            "fps": serve["total_fps"],
            "e2e_p50_ms": serve["e2e"]["p50_ms"],
            "e2e_p99_ms": serve["e2e"]["p99_ms"],
            "stages": {
                stage: {"p50_ms": v["p50_ms"], "p99_ms": v["p99_ms"]}
                for stage, v in serve["stages"].items()
                if v["count"]
            },
        },
        "flash": {"release": flash.get("release"), "plan": flash.get("plan")},
        "steps": [asdict(t) for t in timings],
        "total_s": sum(t.wall_s for t in timings),
        "files": {
            "report": str(paths.out / "report.html"),
            "bundle": str(paths.bundle),
            "device": str(paths.device),
        },
    }


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_table(summary: dict[str, Any]) -> str:
    """The tables printed when the demo ends: models, artifacts, the pipeline."""
    lines = ["model              size  params M  mAP50-95  mAP50"]
    for name, m in summary["models"].items():
        lines.append(
            f"{name + ' ' + ('student' if name != 'teacher' else ''):<18} {m['size']:>4}  "
            f"{m['params'] / 1e6:>8.2f}  {m['map50_95']:>8.4f}  {m['map50']:>6.4f}"
        )
    lines += [
        "",
        "artifact  size MB  mAP50-95  drop (points)  p50 ms  p99 ms  throughput fps",
    ]
    for precision, a in summary["artifacts"].items():
        lines.append(
            f"{precision:<8}  {a['size_bytes'] / 2**20:>7.2f}  {a['map50_95']:>8.4f}  "
            f"{a['map_drop_points']:>13.2f}  {a['latency_p50_ms']:>6.2f}  "
            f"{a['latency_p99_ms']:>6.2f}  {a['throughput_fps']:>14.1f}"
        )
    pipe = summary["pipeline"]
    lines += [
        "",
        f"jetkit serve on {pipe['stream']}: {pipe['frames']} frames, {_fmt(pipe['fps'], '.1f')} "
        f"fps, end to end p50 {_fmt(pipe['e2e_p50_ms'], '.1f')} ms, p99 "
        f"{_fmt(pipe['e2e_p99_ms'], '.1f')} ms",
        f"flashed {summary['flash']['release']} to {summary['files']['device']}; "
        f"{len(summary['steps'])} steps in {summary['total_s'] / 60:.1f} min",
        f"report: {summary['files']['report']}",
    ]
    return "\n".join(lines)
