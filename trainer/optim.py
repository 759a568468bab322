"""The optimizer a run uses (`optimizer=auto` as Ultralytics chooses it), its parameter groups,
gradient accumulation to a nominal batch, the learning-rate schedule and the EMA of the weights.

The schedule is a pure function of the global step, so a resumed run continues exactly where it
stopped without a scheduler object to save.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from edge.errors import JetkitError

OPTIMIZERS = ("auto", "adamw", "sgd")
# (lr, weight decay, momentum or Adam's beta1, the biases' learning rate at the start of warm-up).
# AdamW's are jetkit's, measured on its short schedules; SGD's are YOLOv8's (its default.yaml:
# lr0 0.01, momentum 0.937, weight_decay 5e-4 at nbs 64, warmup_bias_lr 0.1).
OPTIMIZER_DEFAULTS = {
    "adamw": (2e-3, 0.05, 0.9, 0.0),
    "sgd": (0.01, 5e-4, 0.937, 0.1),
}
# Ultralytics' optimizer=auto: SGD for runs longer than this many nominal-batch iterations,
# AdamW below (ultralytics/engine/trainer.py, build_optimizer).
AUTO_SGD_ITERATIONS = 10_000
# SGD warms its momentum up from here (YOLOv8's warmup_momentum).
WARMUP_MOMENTUM = 0.8


@dataclass(frozen=True)
class OptimizerPlan:
    """What a run's optimizer settings resolve to. `accumulate`: micro-batches per optimizer
    step; `loss_scale`: what the loss is multiplied by before backward (SGD: the micro-batch
    size, because YOLOv8's lr0 0.01 is tuned for its loss, which is summed over the batch)."""

    name: str
    lr: float
    weight_decay: float
    momentum: float
    warmup_bias_lr: float
    accumulate: int
    loss_scale: float


def plan_optimizer(
    name: str,
    train_images: int,
    batch: int,
    epochs: int,
    nominal_batch: int = 0,
    lr: float | None = None,
    weight_decay: float | None = None,
) -> OptimizerPlan:
    """`auto` picks SGD when the run is longer than `AUTO_SGD_ITERATIONS` optimizer steps at
    the nominal batch, else AdamW. With `nominal_batch` (YOLOv8's nbs, 64), gradients of
    `round(nominal_batch / batch)` micro-batches make one step and weight decay is scaled by
    the batch they add up to over the nominal one, so the recipe holds at any `--batch`."""
    accumulate = max(round(nominal_batch / batch), 1) if nominal_batch else 1
    steps_per_epoch = max(1, train_images // batch)
    accumulate = min(accumulate, steps_per_epoch * epochs)
    if name == "auto":
        iterations = math.ceil(train_images / max(batch, nominal_batch)) * epochs
        name = "sgd" if iterations > AUTO_SGD_ITERATIONS else "adamw"
    default_lr, default_decay, momentum, warmup_bias_lr = OPTIMIZER_DEFAULTS[name]
    decay = default_decay if weight_decay is None else weight_decay
    if nominal_batch:
        decay *= batch * accumulate / nominal_batch
    return OptimizerPlan(
        name,
        default_lr if lr is None else lr,
        decay,
        momentum,
        warmup_bias_lr,
        accumulate,
        float(batch) if name == "sgd" else 1.0,
    )


def build_optimizer(groups: list[dict], plan: OptimizerPlan) -> torch.optim.Optimizer:
    if plan.name == "sgd":
        return torch.optim.SGD(groups, lr=plan.lr, momentum=plan.momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=plan.lr, betas=(plan.momentum, 0.999))


def accumulate_at(step: int, warmup_steps: int, accumulate: int) -> int:
    """Micro-batches per optimizer step at `step`: rising from 1 to `accumulate` over warm-up,
    as YOLOv8 does, so the first steps are not four times rarer."""
    if warmup_steps and step < warmup_steps:
        return max(1, round(1 + (accumulate - 1) * step / warmup_steps))
    return accumulate


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on convolution/linear weights only; none on BatchNorm parameters and biases
    (decaying them only pulls normalisation towards zero). Three groups — weights, norms,
    biases (marked `bias`, for their own warm-up) — the empty ones left out."""
    decay, norms, biases = [], [], []
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            if name == "bias":
                biases.append(param)
            elif isinstance(module, nn.modules.batchnorm._BatchNorm):
                norms.append(param)
            else:
                decay.append(param)
    groups = [
        {"params": decay, "weight_decay": weight_decay, "bias": False},
        {"params": norms, "weight_decay": 0.0, "bias": False},
        {"params": biases, "weight_decay": 0.0, "bias": True},
    ]
    return [group for group in groups if group["params"]]


def load_optimizer_state(
    optimizer: torch.optim.Optimizer, state: dict[str, Any], source: str
) -> None:
    """Restore `state` into `optimizer`, refusing one whose parameter groups differ: a run
    written before biases had their own warm-up group (two groups, not three) would otherwise
    fail deep inside torch, or, with equal counts in another order, resume with moments swapped
    between tensors."""
    saved = [len(group["params"]) for group in state["param_groups"]]
    current = [len(group["params"]) for group in optimizer.param_groups]
    if saved != current:
        raise JetkitError(
            f"{source} was written by another jetkit version (optimizer parameter groups "
            f"{saved}, this version {current}) and cannot resume exactly; start a new run from "
            "its weights with `jetkit train --weights CHECKPOINT`"
        )
    optimizer.load_state_dict(state)


def lr_at(
    step: int,
    total_steps: int,
    warmup_steps: int,
    base_lr: float,
    final_ratio: float,
    warmup_start_lr: float = 0.0,
) -> float:
    """Linear warm-up from `warmup_start_lr` over `warmup_steps`, then cosine decay to
    `base_lr * final_ratio`."""
    if warmup_steps and step < warmup_steps:
        return warmup_start_lr + (base_lr - warmup_start_lr) * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return base_lr * (final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


class ModelEMA:
    """Exponential moving average of the weights (and BN buffers), decay ramping up as
    `1 - exp(-updates / tau)` so early noisy weights are forgotten fast."""

    def __init__(
        self, model: nn.Module, tau: float, decay: float = 0.9999, updates: int = 0
    ) -> None:
        self.model = copy.deepcopy(model).eval()
        for param in self.model.parameters():
            param.requires_grad_(False)
        self.tau = tau
        self.decay = decay
        self.updates = updates

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / self.tau))
        source = model.state_dict()
        for name, value in self.model.state_dict().items():
            if value.dtype.is_floating_point:
                value.mul_(d).add_(source[name].detach(), alpha=1 - d)
            else:
                value.copy_(source[name])
