"""What the demo measured, gathered from the files its steps wrote into one JSON-ready summary,
and the table printed at the end. `collect` reads files; `format_table` is pure."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from demo.plan import ARTIFACTS, GATED, MODELS, DemoSettings, Paths
from demo.runner import StepTiming, tries_text


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
    outcomes = {t.key: t for t in timings}
    # Each try's gate report, passed or refused (a try that failed otherwise wrote none).
    reports = {
        precision: [
            _json(path)
            for attempt in range(len(outcomes[precision].tries))
            if (path := paths.try_report(precision, attempt)).is_file()
        ]
        for precision in GATED
    }
    fp32_accuracy = next((r[0]["fp32"] for r in reports.values() if r), None)
    artifacts, refused = {}, {}
    for precision in ARTIFACTS:
        gate = reports[precision][-1] if reports.get(precision) else None
        tries = len(outcomes[precision].tries) if precision in GATED else 1
        if precision in GATED and outcomes[precision].outcome == "refused":
            refused[precision] = {
                "tries": tries,
                "map50_95": gate["artifact"]["map50_95"] if gate else None,
                "map_drop_points": gate["map_drop_points"] if gate else None,
                "max_map_drop_points": gate["max_map_drop_points"] if gate else None,
            }
            continue
        bench = _json(paths.result(f"bench-{precision}.json"))
        accuracy = gate["artifact"] if gate else fp32_accuracy
        artifacts[precision] = {
            "file": str(paths.artifact(precision)),
            "size_bytes": paths.artifact(precision).stat().st_size,
            "map50_95": accuracy["map50_95"] if accuracy else None,
            "map50": accuracy["map50"] if accuracy else None,
            "map_drop_points": gate["map_drop_points"] if gate else 0.0,
            "tries": tries,
            "latency_p50_ms": bench["latency_ms"]["median"],
            "latency_p99_ms": bench["latency_ms"]["p99"],
            "throughput_fps": bench["throughput_fps"],
        }
    serve = _json(paths.result("serve-summary.json"))
    flash = _json(paths.result("flash.json"))
    plan = flash.get("plan") or {}
    return {
        "settings": asdict(settings),
        "models": models,
        "artifacts": artifacts,
        "refused": refused,
        "samples_artifact": "fp32" if "int8" in refused else "int8",
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
        "flash": {
            "release": flash.get("release"),
            "precision": plan.get("precision"),
            "plan": plan,
        },
        "steps": [asdict(t) for t in timings],
        "total_s": sum(t.wall_s for t in timings),
        "files": {
            "report": str(paths.out / "report.html"),
            "bundle": str(paths.bundle),
            "device": str(paths.device),
        },
    }


def format_or_dash(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def refusal_text(refused: dict[str, Any]) -> str:
    """What became of an artifact the gate refused, in one line."""
    loss = (
        f"loses {refused['map_drop_points']:.2f} mAP50-95 points (limit "
        f"{refused['max_map_drop_points']:.2f})"
        if refused["map_drop_points"] is not None
        else "no gate report"
    )
    return f"refused by the accuracy gate: {loss} after {tries_text(refused['tries'])}; not bundled"


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
            f"{precision:<8}  {a['size_bytes'] / 2**20:>7.2f}  {format_or_dash(a['map50_95'], '>8.4f')}  "
            f"{a['map_drop_points']:>13.2f}  {a['latency_p50_ms']:>6.2f}  "
            f"{a['latency_p99_ms']:>6.2f}  {a['throughput_fps']:>14.1f}"
            + (f"  (passed on try {a['tries']})" if a["tries"] > 1 else "")
        )
    lines += [f"{precision:<8}  {refusal_text(r)}" for precision, r in summary["refused"].items()]
    pipe = summary["pipeline"]
    lines += [
        "",
        f"jetkit serve on {pipe['stream']}: {pipe['frames']} frames, {format_or_dash(pipe['fps'], '.1f')} "
        f"fps, end to end p50 {format_or_dash(pipe['e2e_p50_ms'], '.1f')} ms, p99 "
        f"{format_or_dash(pipe['e2e_p99_ms'], '.1f')} ms",
        f"flashed {summary['flash']['release']} ({summary['flash']['precision']}) to "
        f"{summary['files']['device']}; "
        f"{len(summary['steps'])} steps in {summary['total_s'] / 60:.1f} min",
        f"report: {summary['files']['report']}",
    ]
    return "\n".join(lines)
