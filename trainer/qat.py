"""Quantization-aware fine-tuning of a jetkit student for `jetkit calibrate --qat EPOCHS`.

Calibration quantizes the exported model first (PTQ) and hands over, per INT8 convolution, the
input quantization it chose and the float weights it saw (`calibration.qat_plan.ConvFakeQuant`,
plain data: the trainer parses no Q/DQ graph). Here the checkpoint's BatchNorms are folded into
their convolutions, so that the weights trained are the weights deployed (TensorRT and ONNX
Runtime quantize the folded convolution); each planned convolution is found by those weights,
its input fake-quantized with the fixed calibrated scale and zero point and its weights
per-channel symmetric INT8 as both runtimes quantize them; the model is fine-tuned with the
detection loss at a small learning rate (straight-through gradients), then exported in float,
node for node the graph calibration quantized, for calibration to write with the same ranges.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from edge.datasets import load_dataset
from edge.errors import JetkitError
from edge.manifest import Manifest
from trainer.checkpoint import load_checkpoint, model_from_checkpoint, preprocess_of
from trainer.config import TrainConfig
from trainer.dataset import DetectionDataset, make_loader, normalize_batch, set_loader_epoch
from trainer.engine import select_device
from trainer.export import export_proto
from trainer.loss import DetectionLoss
from trainer.model import ConvBNAct
from trainer.optim import lr_at, parameter_groups, plan_optimizer
from trainer.progress import ProgressBar

# Weights: symmetric INT8 on [-127, 127], one scale per output channel (ONNX Runtime's
# `WeightSymmetric` per-channel quantization and TensorRT's weight Q/DQ alike).
WEIGHT_QMAX = 127
# Relative tolerance when matching a torch convolution to a graph's by their folded weights: the
# exporter folds BatchNorm in float32 too, so they agree to rounding.
WEIGHT_MATCH_RTOL = 1e-4


class ConvPlan(Protocol):
    """What `calibration.qat_plan.ConvFakeQuant` carries (the trainer does not import it)."""

    node: str
    weight_oihw: np.ndarray
    input_scale: float
    input_zero_point: int
    input_qmin: int
    input_qmax: int


@dataclass(frozen=True)
class QatConfig:
    epochs: int
    lr: float = 1e-4
    batch: int = 16
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise JetkitError(f"--qat must be a whole number of epochs >= 1, got {self.epochs!r}")
        if not isinstance(self.batch, int) or self.batch < 1:
            raise JetkitError(f"--qat-batch must be an integer >= 1, got {self.batch!r}")
        if not self.lr > 0:
            raise JetkitError(f"--qat-lr must be > 0, got {self.lr}")


def fold_batchnorm(model: nn.Module) -> int:
    """Fold every `ConvBNAct`'s BatchNorm into its convolution, in place, leaving the BatchNorm an
    identity (zero mean, unit scale, frozen) so the module tree, and the exported graph, keep
    their shape. Returns how many were folded. Call in eval mode; keep the BatchNorms in eval."""
    folded = 0
    for block in model.modules():
        if not isinstance(block, ConvBNAct):
            continue
        conv, bn = block[0], block[1]
        with torch.no_grad():
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            bias = bn.bias - bn.running_mean * scale
            if conv.bias is not None:
                bias = bias + conv.bias * scale
            conv.weight.mul_(scale[:, None, None, None])
            conv.bias = nn.Parameter(bias.clone())
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)
            bn.weight.fill_(1.0)
            bn.bias.zero_()
        bn.requires_grad_(False)
        folded += 1
    return folded


class PerChannelInt8(nn.Module):
    """A weight parametrization: `weight (O, …)` fake-quantized to symmetric INT8 per output
    channel, the scale following the weights as they train."""

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        reduce_dims = tuple(range(1, weight.dim()))
        scale = (weight.detach().abs().amax(dim=reduce_dims) / WEIGHT_QMAX).clamp(min=1e-12)
        zero = torch.zeros(weight.shape[0], dtype=torch.int32, device=weight.device)
        return torch.fake_quantize_per_channel_affine(
            weight, scale.float(), zero, 0, -WEIGHT_QMAX, WEIGHT_QMAX
        )


def match_convolutions(
    model: nn.Module, plans: Sequence[ConvPlan]
) -> list[tuple[nn.Conv2d, ConvPlan]]:
    """Each plan's torch convolution, found by its (folded) weights; an error naming how many
    found none when the checkpoint is not the one the graph was exported from."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    weights = [conv.weight.detach().cpu().numpy() for conv in convs]
    used: set[int] = set()
    pairs, missing = [], []
    for plan in plans:
        target = plan.weight_oihw
        tolerance = WEIGHT_MATCH_RTOL * max(1.0, float(np.abs(target).max()))
        for index, (conv, weight) in enumerate(zip(convs, weights, strict=True)):
            if index in used or weight.shape != target.shape:
                continue
            if float(np.abs(weight - target).max()) <= tolerance:
                used.add(index)
                pairs.append((conv, plan))
                break
        else:
            missing.append(plan.node)
    if missing:
        raise JetkitError(
            f"the checkpoint does not hold the model that was exported: {len(missing)} of "
            f"{len(plans)} INT8 convolutions (e.g. {missing[0]}) have no layer with the same "
            "weights; pass --checkpoint with the best.pt/last.pt the ONNX was exported from"
        )
    return pairs


def attach_fake_quant(pairs: Sequence[tuple[nn.Conv2d, ConvPlan]]) -> list[Any]:
    """Fake-quantize each convolution's weights and input as its plan says; returns the input
    hooks' handles (`detach_fake_quant` removes everything)."""
    handles = []
    for conv, plan in pairs:
        parametrize.register_parametrization(conv, "weight", PerChannelInt8())

        def quantize_input(_module: nn.Module, args: tuple[Any, ...], plan: ConvPlan = plan) -> Any:
            x = torch.fake_quantize_per_tensor_affine(
                args[0],
                plan.input_scale,
                plan.input_zero_point,
                plan.input_qmin,
                plan.input_qmax,
            )
            return (x, *args[1:])

        handles.append(conv.register_forward_pre_hook(quantize_input))
    return handles


def detach_fake_quant(pairs: Sequence[tuple[nn.Conv2d, ConvPlan]], handles: Sequence[Any]) -> None:
    """Back to a float model holding the fine-tuned float weights (calibration quantizes them
    again, exactly as the fake quantization did)."""
    for handle in handles:
        handle.remove()
    for conv, _plan in pairs:
        parametrize.remove_parametrizations(conv, "weight", leave_parametrized=False)


def fine_tune(
    *,
    checkpoint: str | Path,
    data: str,
    plans: Sequence[ConvPlan],
    manifest: Manifest,
    opset: int,
    node_names: Collection[str],
    out: Path,
    config: QatConfig,
    log: Callable[[str], None] = lambda _message: None,
) -> dict[str, Any]:
    """Fine-tune `checkpoint` on `data`'s train split with `plans`' fake quantization, then
    export it in float to `out` as the source graph was exported (`manifest`'s input, `opset`;
    its nodes must be `node_names`, the source's, for calibration's ranges and islands to apply).
    Returns the provenance of the fine-tuning."""
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    device = select_device(config.device)
    weights = load_checkpoint(checkpoint)
    dataset = load_dataset(data, splits=("train",))
    if list(dataset.names) != list(weights["names"]):
        raise JetkitError(
            f"{data} names classes {list(dataset.names)}, the checkpoint {list(weights['names'])}: "
            "fine-tune on the data set the model was trained on"
        )
    model = model_from_checkpoint(weights).float()
    fold_batchnorm(model)
    pairs = match_convolutions(model, plans)
    model.to(device)
    handles = attach_fake_quant(pairs)
    trained = _train(model, weights, dataset.train, config, device, manifest)
    detach_fake_quant(pairs, handles)
    model.eval().cpu()
    proto = export_proto(
        model,
        manifest.input.size_hw,
        manifest.input.dynamic_batch,
        manifest.input.max_batch,
        opset,
        out,
    )
    exported = {node.name for node in proto.graph.node}
    if exported != set(node_names):
        raise JetkitError(
            f"{checkpoint} exports to a different graph than the model calibrated "
            f"({len(set(node_names) ^ exported)} nodes differ): re-export the checkpoint with "
            "`jetkit export` and calibrate that"
        )
    out.write_bytes(proto.SerializeToString())
    log(
        f"fine-tuned: loss {trained['loss_first_epoch']:.4f} (epoch 1) → "
        f"{trained['loss_last_epoch']:.4f} (epoch {config.epochs})"
    )
    return {
        "checkpoint": str(checkpoint),
        "data": str(data),
        "epochs": config.epochs,
        "lr": config.lr,
        "batch": config.batch,
        "int8_layers": len(pairs),
        **trained,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _train(
    model: nn.Module,
    weights: dict[str, Any],
    samples: Sequence[Any],
    config: QatConfig,
    device: torch.device,
    manifest: Manifest,
) -> dict[str, float]:
    """`config.epochs` of the detection loss without mosaic (the images as deployed), cosine from
    `config.lr`; BatchNorms stay identities. Returns the first and last epochs' mean loss."""
    recipe = TrainConfig.from_dict({**weights.get("config", {}), "data": "-"})
    spec = preprocess_of(weights)
    train_set = DetectionDataset(
        samples, manifest.input.size_hw, spec, augment=recipe.augment, seed=config.seed
    )
    loader = make_loader(
        train_set,
        config.batch,
        shuffle=True,
        seed=config.seed,
        drop_last=len(train_set) > config.batch,
    )
    adamw = plan_optimizer(
        "adamw", len(samples), config.batch, config.epochs, weight_decay=recipe.weight_decay
    )
    params = parameter_groups(model, adamw.weight_decay)
    optimizer = torch.optim.AdamW(params, lr=config.lr)
    criterion = DetectionLoss(len(weights["names"]), recipe.loss)
    total_steps = config.epochs * len(loader)
    losses = []
    for epoch in range(config.epochs):
        set_loader_epoch(loader, epoch, mosaic=False)
        model.train()
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        epoch_loss = 0.0
        bar = ProgressBar(len(loader), f"qat epoch {epoch + 1}/{config.epochs}")
        for step, (images_u8, targets, _indices) in enumerate(loader):
            lr = lr_at(epoch * len(loader) + step, total_steps, 0, config.lr, 0.1)
            for group in optimizer.param_groups:
                group["lr"] = lr
            images = normalize_batch(images_u8, spec, device=device)
            loss, _parts = criterion(model(images, raw=True), targets.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
            optimizer.step()
            epoch_loss += float(loss.detach())
            bar.update(step + 1, f"loss {epoch_loss / (step + 1):.4f}")
        losses.append(epoch_loss / max(1, len(loader)))
        bar.close(len(loader), f"loss {losses[-1]:.4f}")
        if not math.isfinite(losses[-1]):
            raise JetkitError(
                f"quantization-aware fine-tuning diverged (loss {losses[-1]}); lower --qat-lr"
            )
    return {"loss_first_epoch": round(losses[0], 4), "loss_last_epoch": round(losses[-1], 4)}
