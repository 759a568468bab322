"""One config object per experiment: everything `jetkit train`/`distill` needs, validated up front
so that a bad value fails before any data is read, naming the option to fix."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from edge.errors import JetkitError
from trainer.augment import AugmentConfig
from trainer.distill import DistillConfig
from trainer.loss import LossConfig
from trainer.model import REG_MAX, SIZES, check_input_hw, check_reg_max
from trainer.optim import OPTIMIZERS


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


@dataclass(frozen=True)
class TrainConfig:
    data: str | None
    out: str = "runs/train"
    model: str = "n"
    reg_max: int = REG_MAX
    epochs: int = 30
    imgsz: int = 320
    batch: int = 16
    optimizer: str = "auto"
    lr: float | None = None
    weight_decay: float | None = None
    nominal_batch: int = 0
    warmup_epochs: float = 3.0
    final_lr_ratio: float = 0.05
    grad_clip: float = 10.0
    ema_tau: float = 500.0
    patience: int = 15
    close_mosaic: int = 10
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    freeze: int = 0
    weights: str | None = None
    seed: int = 0
    workers: int = 0
    device: str = "auto"
    amp: bool = True
    save_period: int = 0
    loss: LossConfig = field(default_factory=LossConfig)
    teacher: str | None = None
    distill: DistillConfig | None = None
    unlabeled: str | None = None
    every: int = 1
    pseudo_threshold: float | None = None
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        positive_ints = ("epochs", "batch", "imgsz")
        for name in positive_ints:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise JetkitError(f"{_option(name)} must be an integer >= 1, got {value!r}")
        check_input_hw(self.input_hw)
        if self.model not in SIZES:
            raise JetkitError(f"--model {self.model!r} is not one of {', '.join(SIZES)}")
        check_reg_max(self.reg_max)
        if self.optimizer not in OPTIMIZERS:
            raise JetkitError(
                f"--optimizer {self.optimizer!r} is not one of {', '.join(OPTIMIZERS)}"
            )
        if self.lr is not None and self.lr <= 0:
            raise JetkitError(f"--lr must be > 0, got {self.lr}")
        if self.weight_decay is not None and self.weight_decay < 0:
            raise JetkitError(f"--weight-decay must be >= 0, got {self.weight_decay}")
        for name in ("grad_clip", "ema_tau"):
            if getattr(self, name) <= 0:
                raise JetkitError(f"{_option(name)} must be > 0, got {getattr(self, name)}")
        for name in (
            "nominal_batch",
            "warmup_epochs",
            "patience",
            "close_mosaic",
            "freeze",
            "workers",
            "save_period",
        ):
            if getattr(self, name) < 0:
                raise JetkitError(f"{_option(name)} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.final_lr_ratio <= 1:
            raise JetkitError(f"--final-lr-ratio must be in [0, 1], got {self.final_lr_ratio}")
        if self.freeze > 5:
            raise JetkitError(f"--freeze {self.freeze}: the backbone has 5 stages (0-5)")
        if (self.teacher is None) != (self.distill is None):
            raise JetkitError("distillation needs both a teacher checkpoint and its settings")
        if self.data is None and self.unlabeled is None:
            raise JetkitError("give --data (a data.yaml), --unlabeled (footage) or both")
        if self.unlabeled is not None and self.teacher is None:
            raise JetkitError(
                "--unlabeled needs a teacher to label the footage: use `jetkit distill --teacher "
                "MODEL`"
            )
        if not isinstance(self.every, int) or self.every < 1:
            raise JetkitError(f"--every must be an integer >= 1, got {self.every!r}")
        if self.pseudo_threshold is not None and not 0 < self.pseudo_threshold < 1:
            raise JetkitError(f"--pseudo-threshold must be in (0, 1), got {self.pseudo_threshold}")

    @property
    def input_hw(self) -> tuple[int, int]:
        return self.imgsz, self.imgsz

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        loss = values.get("loss", {})
        values["loss"] = loss if isinstance(loss, LossConfig) else LossConfig(**loss)
        augment = values.get("augment", {})
        values["augment"] = (
            augment if isinstance(augment, AugmentConfig) else AugmentConfig(**augment)
        )
        distill = values.get("distill")
        if isinstance(distill, dict):
            values["distill"] = DistillConfig(**distill)
        return cls(**values)

    def replace(self, **changes: Any) -> TrainConfig:
        return TrainConfig.from_dict({**self.to_dict(), **changes})
