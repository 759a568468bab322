"""PNG plots of a run: losses and validation metrics per epoch, PR curves per class.

matplotlib is imported lazily with the Agg backend (no display needed); files are written
atomically.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge.atomic import write_bytes_atomic
from edge.evaluate import EvalResult


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (files only, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, path: Path) -> None:
    """Write `figure` as a PNG, atomically."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    write_bytes_atomic(path, buffer.getvalue())


def plot_history(history: Sequence[dict[str, float]], out_dir: Path) -> list[Path]:
    """`losses.png` (every non-zero training loss term) and `metrics.png` (mAP50-95, mAP50,
    precision, recall) against the epoch."""
    plt = pyplot()
    if not history:
        return []
    epochs = [row["epoch"] for row in history]
    written = []
    loss_keys = [k for k in history[0] if k.startswith("train/") and any(r[k] for r in history)]
    figure, axes = plt.subplots(
        1, max(1, len(loss_keys)), figsize=(3.2 * max(1, len(loss_keys)), 3)
    )
    for axis, key in zip(np.atleast_1d(axes), loss_keys, strict=False):
        axis.plot(epochs, [row[key] for row in history], marker=".")
        axis.set_title(key.removeprefix("train/"))
        axis.set_xlabel("epoch")
    figure.suptitle("training losses")
    figure.tight_layout()
    save_figure(figure, out_dir / "losses.png")
    plt.close(figure)
    written.append(out_dir / "losses.png")

    figure, axis = plt.subplots(figsize=(5, 3.4))
    for key in ("val/map50_95", "val/map50", "val/precision", "val/recall"):
        axis.plot(epochs, [row[key] for row in history], marker=".", label=key.removeprefix("val/"))
    axis.set_xlabel("epoch")
    axis.set_ylim(0, 1)
    axis.legend(loc="lower right")
    axis.set_title("validation (EMA weights)")
    figure.tight_layout()
    save_figure(figure, out_dir / "metrics.png")
    plt.close(figure)
    written.append(out_dir / "metrics.png")
    return written


def plot_pr_curves(result: EvalResult, path: Path) -> Path:
    """Precision against recall at IoU 0.5 for each class, and their mean."""
    plt = pyplot()
    recall = np.linspace(0, 1, 101)
    figure, axis = plt.subplots(figsize=(5, 4))
    curves = []
    for metrics in result.per_class:
        curve = result.pr_curves.get(metrics.name)
        if curve is None or metrics.num_gt == 0:
            continue
        curves.append(curve)
        axis.plot(recall, curve, linewidth=1, label=f"{metrics.name} {metrics.ap50:.3f}")
    if curves:
        axis.plot(
            recall,
            np.mean(curves, axis=0),
            color="black",
            linewidth=2.5,
            label=f"all classes {result.map50:.3f} mAP50",
        )
    axis.set_xlabel("recall")
    axis.set_ylabel("precision")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.01)
    axis.legend(loc="upper right", fontsize=7)
    axis.set_title("PR curves (IoU 0.5)")
    figure.tight_layout()
    save_figure(figure, path)
    plt.close(figure)
    return path
