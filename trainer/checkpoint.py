"""Checkpoints: plain dicts of tensors and JSON-like values, so that `torch.load(weights_only=True)`
reads them (no pickled classes, nothing executed on load).

`best.pt`/`last.pt` hold the EMA weights of the model (what evaluation and export use), its
`ModelConfig`, the class names and preprocessing, the training config and the metrics. `last.pt`
also holds `train_state` (raw weights, optimizer, EMA, AMP scaler, adapters, early-stopping state)
for an exact `--resume`. The teacher of a distillation is never saved, only its path and digest.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edge.atomic import write_bytes_atomic
from edge.errors import JetkitError
from edge.manifest import PreprocessSpec
from trainer.model import UNCAPPED, DetectionModel, ModelConfig

CHECKPOINT_FORMAT = "jetkit.checkpoint/1"


def save_checkpoint(checkpoint: dict[str, Any], path: Path) -> None:
    """Write atomically: a crash mid-write leaves the previous checkpoint intact."""
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a jetkit checkpoint safely (`weights_only=True`), with clear errors for the usual
    mistakes: a missing file, an ONNX model, a foreign or damaged file."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                return load_checkpoint(path / name)
        raise JetkitError(f"{path} holds no best.pt or last.pt; pass a checkpoint file")
    if not path.is_file():
        raise JetkitError(f"checkpoint {path} does not exist")
    if path.suffix == ".onnx":
        raise JetkitError(
            f"{path} is an ONNX model, not a training checkpoint; pass the .pt file written by "
            "`jetkit train`"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for truncated or foreign files
        raise JetkitError(
            f"{path} cannot be read as a jetkit checkpoint ({type(exc).__name__}); it may be "
            "truncated or come from another tool: retrain, or pass best.pt/last.pt of a jetkit run"
        ) from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise JetkitError(
            f"{path} is not a jetkit checkpoint (expected format {CHECKPOINT_FORMAT!r}); "
            "Ultralytics/other weights can be used through their ONNX export instead"
        )
    return checkpoint


def model_config_of(checkpoint: dict[str, Any]) -> ModelConfig:
    """The checkpoint's model. Its width and depth are stored, so a size whose multipliers
    changed since still loads as trained; one written before channel caps was uncapped, one
    written before box distributions has one softplus distance per side (`reg_max` 1)."""
    return ModelConfig(**{"max_channels": UNCAPPED, "reg_max": 1, **checkpoint["model"]})


def preprocess_of(checkpoint: dict[str, Any]) -> PreprocessSpec:
    return PreprocessSpec(**checkpoint["preprocess"])


def model_from_checkpoint(checkpoint: dict[str, Any]) -> DetectionModel:
    model = DetectionModel(model_config_of(checkpoint))
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()


def load_matching(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> tuple[int, list[str]]:
    """Copy every tensor whose name and shape match (transfer learning across class counts or
    sizes); returns how many were loaded and the names skipped."""
    own = model.state_dict()
    matched = {k: v for k, v in state_dict.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(matched, strict=False)
    skipped = sorted(set(own) - set(matched))
    return len(matched), skipped
