"""Optimizer parameter groups, the learning-rate schedule and the EMA of the weights.

The schedule is a pure function of the global step, so a resumed run continues exactly where it
stopped without a scheduler object to save.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on convolution/linear weights only; none on BatchNorm parameters and biases
    (decaying them only pulls normalisation towards zero)."""
    decay, no_decay = [], []
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            is_norm = isinstance(module, nn.modules.batchnorm._BatchNorm)
            (no_decay if is_norm or name == "bias" else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def lr_at(
    step: int, total_steps: int, warmup_steps: int, base_lr: float, final_ratio: float
) -> float:
    """Linear warm-up from 0 over `warmup_steps`, then cosine decay to `base_lr * final_ratio`."""
    if warmup_steps and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
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
