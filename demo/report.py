"""`report.html`: one static page with its PNGs in `report/`, opened from disk with no server.
Training curves, PR curves, the teacher / plain / distilled comparison, latency histograms per
artifact (every `jetkit bench` call) and per pipeline stage (the daemon's all-time histograms),
and annotated sample frames. Every figure is drawn from the files the demo's steps wrote."""

from __future__ import annotations

import csv
import html
import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from demo.plan import MODELS, Paths
from demo.summary import format_or_dash, refusal_text
from edge.atomic import write_text_atomic
from trainer.plots import pyplot, save_figure

SAMPLE_FRAMES = 6
COLOURS = {"teacher": "#4c72b0", "plain": "#dd8452", "distilled": "#55a868"}
STAGE_ORDER = ("queue_wait", "preprocess", "infer", "postprocess", "sink")


def _history(run: Path) -> list[dict[str, float]]:
    with open(run / "results.csv", newline="", encoding="utf-8") as handle:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(handle)]


def plot_training(paths: Paths, out: Path) -> Path:
    """Validation mAP50-95 and the box loss per epoch, the three models on the same axes."""
    plt = pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    for name in MODELS:
        rows = _history(paths.run(name))
        epochs = [r["epoch"] for r in rows]
        left.plot(epochs, [r["val/map50_95"] for r in rows], marker=".", color=COLOURS[name],
                  label=name)  # fmt: skip
        right.plot(epochs, [r["train/box"] for r in rows], marker=".", color=COLOURS[name],
                   label=name)  # fmt: skip
    left.set(title="validation mAP50-95", xlabel="epoch")
    right.set(title="training box loss", xlabel="epoch")
    left.legend()
    figure.tight_layout()
    save_figure(figure, out)
    plt.close(figure)
    return out


def plot_comparison(summary: dict[str, Any], out: Path) -> Path:
    plt = pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4))
    names = list(summary["models"])
    colours = [COLOURS[n] for n in names]
    left.bar(names, [summary["models"][n]["map50_95"] for n in names], color=colours)
    left.set(title="mAP50-95 (validation)")
    right.bar(names, [summary["models"][n]["params"] / 1e6 for n in names], color=colours)
    right.set(title="parameters (millions)")
    figure.tight_layout()
    save_figure(figure, out)
    plt.close(figure)
    return out


def plot_artifact_latency(paths: Paths, precisions: Iterable[str], out: Path) -> Path:
    """Histograms of every model call `jetkit bench` timed, one per artifact made."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(8, 3.6))
    samples = {
        p: np.asarray(json.loads(paths.result(f"bench-{p}.json").read_text())["latency_samples_ms"])
        for p in precisions
    }
    high = max(float(np.percentile(s, 99.5)) for s in samples.values())
    low = min(float(s.min()) for s in samples.values())
    bins = np.linspace(low, high, 60)
    for precision, values in samples.items():
        axis.hist(values, bins=bins, histtype="step", linewidth=1.6,
                  label=f"{precision} (p50 {np.median(values):.2f} ms)")  # fmt: skip
    axis.set(title="model latency per call (jetkit bench, batch 1)", xlabel="ms", ylabel="calls")
    axis.legend()
    figure.tight_layout()
    save_figure(figure, out)
    plt.close(figure)
    return out


def plot_stage_latency(serve_summary: dict[str, Any], out: Path) -> Path:
    """The daemon's all-time latency per pipeline stage, and end to end, in the fine buckets
    (`edge.metrics.stats.FINE_BUCKETS_MS`) on a log axis: the bars between the fastest and the
    slowest sample."""
    plt = pyplot()
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    histograms = serve_summary["fine_histograms"]
    panels = [(s, histograms["stages"][s]) for s in STAGE_ORDER if histograms["stages"][s]["count"]]
    panels += [(f"end to end ({stream})", h) for stream, h in histograms["e2e"].items()]
    figure, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 3), squeeze=False)
    for axis, (name, histogram) in zip(axes[0], panels, strict=True):
        # counts[k] covers (bounds[k-1], bounds[k]]; the first and the +Inf one get a bucket's
        # width beyond the ends, so every bar has edges.
        bounds = np.asarray(histogram["bounds_ms"])
        ratio = bounds[1] / bounds[0]
        edges = np.concatenate([[bounds[0] / ratio], bounds, [bounds[-1] * ratio]])
        counts = np.asarray(histogram["counts"])
        used = np.flatnonzero(counts)
        first, last = (used[0], used[-1] + 1) if used.size else (0, 1)
        axis.stairs(counts[first:last], edges[first : last + 1], fill=True, color="#4c72b0")
        axis.set_xscale("log")
        # Plain numbers at 1, 2, 5 × 10^k: a stage's range is often within one decade.
        axis.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axis.xaxis.set_minor_formatter(NullFormatter())
        axis.set_title(name, fontsize=9)
        axis.set_xlabel("ms", fontsize=8)
        axis.tick_params(labelsize=7)
    figure.suptitle("jetkit serve: latency per stage (all frames)")
    figure.tight_layout()
    save_figure(figure, out)
    plt.close(figure)
    return out


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(src: str, caption: str) -> str:
    return (
        f'<figure><img src="{html.escape(src)}" alt="{html.escape(caption)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5rem 0; }
th, td { padding: 0.25rem 0.7rem; border-bottom: 1px solid #eee; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure { margin: 0.8rem 0; } img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.85rem; color: #555; }
.samples { display: grid; grid-template-columns: repeat(3, 1fr); gap: 0.5rem; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 0.5rem; }
.samples img { width: 100%; }
"""


def write_report(paths: Paths, summary: dict[str, Any]) -> Path:
    """Draw the figures into `OUT/report/` and write `OUT/report.html` (atomically)."""
    assets = paths.out / "report"
    if assets.exists():
        shutil.rmtree(assets)  # a rerun leaves no stale figures behind
    assets.mkdir(parents=True)
    serve_summary = json.loads(paths.result("serve-summary.json").read_text())
    plot_training(paths, assets / "training.png")
    plot_comparison(summary, assets / "comparison.png")
    plot_artifact_latency(paths, summary["artifacts"], assets / "artifact-latency.png")
    plot_stage_latency(serve_summary, assets / "stage-latency.png")
    pr_curves = []
    for name in ("teacher", "distilled"):
        source = paths.run(name) / "pr_curve.png"
        if source.is_file():
            shutil.copyfile(source, assets / f"pr-{name}.png")
            pr_curves.append(
                _figure(f"report/pr-{name}.png", f"precision-recall per class, {name}")
            )
    samples = sorted(p for p in (paths.out / "samples").glob("*") if p.is_file())[:SAMPLE_FRAMES]
    for sample in samples:
        shutil.copyfile(sample, assets / f"sample-{sample.name}")

    settings = summary["settings"]
    models = _table(
        ["model", "size", "params (M)", "epochs", "mAP50-95", "mAP50"],
        [
            [name, m["size"], f"{m['params'] / 1e6:.2f}", m["epochs"], f"{m['map50_95']:.4f}",
             f"{m['map50']:.4f}"]
            for name, m in summary["models"].items()
        ],
    )  # fmt: skip
    artifacts = _table(
        ["artifact", "size (MB)", "mAP50-95", "drop (points)", "p50 ms", "p99 ms", "fps"],
        [
            [p, f"{a['size_bytes'] / 2**20:.2f}",
             format_or_dash(a["map50_95"], ".4f"),
             f"{a['map_drop_points']:.2f}", f"{a['latency_p50_ms']:.2f}",
             f"{a['latency_p99_ms']:.2f}", f"{a['throughput_fps']:.1f}"]
            for p, a in summary["artifacts"].items()
        ],
    )  # fmt: skip
    refusals = "".join(
        f"<p><b>{html.escape(p.upper())} was refused</b>: {html.escape(refusal_text(r))}. The "
        "demo went on without it; the device got what passed.</p>"
        for p, r in summary["refused"].items()
    )
    gated = [p.upper() for p in summary["artifacts"] if p != "fp32"]
    passed = (
        f"{' and '.join(gated)} passed the accuracy gate"
        if gated
        else "No artifact passed the gate"
    )
    pipe = summary["pipeline"]
    stages = _table(
        ["stage", "p50 ms", "p99 ms"],
        [[s, f"{v['p50_ms']:.2f}", f"{v['p99_ms']:.2f}"] for s, v in pipe["stages"].items()],
    )
    steps = _table(
        ["step", "seconds"], [[t["title"], f"{t['wall_s']:.1f}"] for t in summary["steps"]]
    )
    sample_html = "".join(
        f'<img src="report/sample-{html.escape(s.name)}" alt="annotated frame {html.escape(s.name)}">'
        for s in samples
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>jetkit demo report</title>
<style>{STYLE}</style></head><body>
<h1>jetkit demo: teacher → distilled student → FP16/INT8 → flashed → serving</h1>
<p>Recipe <b>{html.escape(settings["recipe"])}</b>: {settings["train_images"]} training and
{settings["val_images"]} validation images of the built-in synthetic data set at
{settings["imgsz"]} px; teacher <b>{settings["teacher_model"]}</b>
({settings["teacher_epochs"]} epochs), students <b>{settings["student_model"]}</b>
({settings["student_epochs"]} epochs). Everything ran on this machine's CPU in
{summary["total_s"] / 60:.1f} minutes.</p>
<h2>Teacher, plain student, distilled student</h2>
{models}
{_figure("report/comparison.png", "mAP50-95 and size of the three models")}
<h2>Training curves</h2>
{_figure("report/training.png", "validation mAP50-95 and training box loss per epoch")}
<h2>Precision-recall curves</h2>
<div class="pair">{"".join(pr_curves) or "<p>No PR curves were written.</p>"}</div>
<h2>Artifacts of the distilled student</h2>
<p>{passed} (mAP drop against FP32 on the validation split, limit
{settings["max_map_drop"]:.2f} points). Latency: <code>jetkit bench</code>, batch 1, ONNX Runtime
on the CPU.</p>
{artifacts}
{refusals}
{_figure("report/artifact-latency.png", "latency of every model call, per artifact")}
<h2>Streaming daemon</h2>
<p>Release <b>{html.escape(str(summary["flash"]["release"]))}</b> flashed to a local device root
(<code>--precision auto</code> chose {html.escape(str(summary["flash"]["precision"]))}),
then <code>jetkit serve</code> on <code>{html.escape(pipe["stream"])}</code>: {pipe["frames"]}
frames at {pipe["fps"] or 0:.1f} fps, end to end p50 {pipe["e2e_p50_ms"] or 0:.1f} ms, p99
{pipe["e2e_p99_ms"] or 0:.1f} ms.</p>
{stages}
{_figure("report/stage-latency.png", "the daemon's latency histograms per stage and end to end")}
<h2>Sample frames ({html.escape(summary["samples_artifact"].upper())} artifact)</h2>
<div class="samples">{sample_html}</div>
<h2>Steps</h2>
{steps}
</body></html>
"""
    report = paths.out / "report.html"
    write_text_atomic(report, page)
    return report
