"""The training loop behind `jetkit train` and `jetkit distill` (one process, or one per rank under
`torchrun`, DDP with gloo on CPUs and NCCL on GPUs).

Per epoch: shuffled, augmented batches (mosaic closed for the last epochs), AMP on CUDA, gradient
clipping, EMA; then rank 0 validates the EMA weights through the edge runtime's decode/NMS and
the COCO evaluator, logs a CSV row, writes `last.pt` (and `best.pt` on a new best mAP50-95), and
stops early after `patience` epochs without improvement. Every random choice is a function of
(seed, epoch, step or image), and the learning rate a function of the global step, so `--resume`
from `last.pt` reproduces an uninterrupted run exactly.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edge.atomic import write_text_atomic
from edge.cli import stderr_log
from edge.datasets import DetectionSet, load_dataset, summarize
from edge.errors import JetkitError
from edge.evaluate import EvalResult, format_table
from edge.manifest import PreprocessSpec
from trainer.checkpoint import (
    CHECKPOINT_FORMAT,
    load_checkpoint,
    load_matching,
    model_config_of,
    model_from_checkpoint,
    save_checkpoint,
)
from trainer.config import TrainConfig
from trainer.dataset import DetectionDataset, make_loader, normalize_batch, set_loader_epoch
from trainer.distill import DistillLoss, FeatureAdapters, active_terms
from trainer.footage import add_footage
from trainer.loss import DetectionLoss
from trainer.model import STRIDES, DetectionModel, ModelConfig, count_parameters, freeze_stages
from trainer.operating_point import run_operating_point, student_class_predictions
from trainer.optim import (
    WARMUP_MOMENTUM,
    ModelEMA,
    OptimizerPlan,
    accumulate_at,
    build_optimizer,
    load_optimizer_state,
    lr_at,
    parameter_groups,
    plan_optimizer,
)
from trainer.progress import ProgressBar
from trainer.teacher_cache import default_cache_dir
from trainer.teachers import open_teacher
from trainer.validate import validate

Log = Callable[[str], None]
LOSS_COLUMNS = ("box", "cls", "dfl", "kd_logit", "kd_feature", "kd_box")
CSV_COLUMNS = (
    "epoch",
    "lr",
    *(f"train/{name}" for name in LOSS_COLUMNS),
    "val/map50_95",
    "val/map50",
    "val/precision",
    "val/recall",
    "images_per_s",
)


@dataclass
class DistContext:
    """This process's place under `torchrun` (RANK, WORLD_SIZE, LOCAL_RANK), or a single process."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls, device_kind: str) -> DistContext:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        context = cls(
            int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))
        )
        if world > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if device_kind == "cuda" else "gloo"
            torch.distributed.init_process_group(backend=backend)
        return context

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def broadcast_flag(self, flag: bool) -> bool:
        """Rank 0's decision (e.g. early stop) for every rank."""
        if self.world == 1:
            return flag
        value = torch.tensor([1.0 if flag else 0.0])
        torch.distributed.broadcast(value, src=0)
        return bool(value.item())

    def average_gradients(self, parameters: list[nn.Parameter]) -> None:
        """For modules outside the DDP wrapper (distillation adapters)."""
        if self.world == 1:
            return
        for param in parameters:
            if param.grad is not None:
                torch.distributed.all_reduce(param.grad)
                param.grad /= self.world

    def close(self) -> None:
        if self.world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


@dataclass
class RunResult:
    out_dir: Path
    best_path: Path
    last_path: Path
    metrics: dict[str, Any]
    epochs_run: int
    stopped_early: bool
    history: list[dict[str, float]] = field(default_factory=list)


def select_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise JetkitError(f"--device {name}: no CUDA GPU is visible here; use --device cpu")
        return torch.device("cuda", local_rank if name == "cuda" else int(name.split(":")[1]))
    if name != "cpu":
        raise JetkitError(f"--device {name!r} is not one of auto, cpu, cuda, cuda:N")
    return torch.device("cpu")


def read_history(path: Path, up_to_epoch: int) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]
    return [row for row in rows if row["epoch"] <= up_to_epoch]


def write_history(path: Path, rows: list[dict[str, float]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: f"{row.get(k, 0.0):.6g}" for k in CSV_COLUMNS})
    write_text_atomic(path, buffer.getvalue())


def metrics_of(result: EvalResult) -> dict[str, float]:
    return {
        "map50_95": result.map50_95,
        "map50": result.map50,
        "precision": result.precision,
        "recall": result.recall,
    }


class Trainer:
    """Constructed from a config; `run()` does the work."""

    def __init__(
        self,
        config: TrainConfig,
        resume_from: dict[str, Any] | None = None,
        exist_ok: bool = False,
        log: Log = stderr_log,
    ) -> None:
        self.config = config
        self.resume_from = resume_from
        self.exist_ok = exist_ok
        self.out_dir = Path(config.out)
        self._log = log

    def log(self, message: str) -> None:
        if self.dist.is_main:
            self._log(message)

    def run(self) -> RunResult:
        config = self.config
        self.dist = DistContext.from_env(select_device(config.device).type)
        try:
            return self._run(config)
        finally:
            self.dist.close()

    def _check_out_dir(self) -> None:
        last = self.out_dir / "last.pt"
        if self.resume_from is None and last.exists() and not self.exist_ok:
            raise JetkitError(
                f"{self.out_dir} already holds a training run; continue it with --resume "
                f"{last}, overwrite it with --exist-ok, or choose another --out"
            )

    def _run(self, config: TrainConfig) -> RunResult:
        torch.manual_seed(config.seed)
        device = select_device(config.device, self.dist.local_rank)
        spec = PreprocessSpec()
        if self.dist.is_main:
            self._check_out_dir()
        labelled = load_dataset(config.data) if config.data else None
        teacher = None
        if config.teacher is not None:
            teacher = open_teacher(
                config.teacher,
                labelled.names if labelled else None,
                config.input_hw,
                spec,
                device,
            )
            self.log(f"teacher: {config.teacher}, {teacher.description}, frozen")
        names = list(labelled.names if labelled else teacher.names)  # type: ignore[union-attr]
        if labelled is not None:
            self.log(summarize(labelled))
        dataset = labelled
        point = None
        footage_info: dict[str, Any] = {}
        if teacher is not None:
            cache_root = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
            predict = student_class_predictions(teacher, cache_root, self.log)
            point = run_operating_point(config, labelled, predict, self.log)
            if config.unlabeled is not None:
                dataset, footage_info = add_footage(
                    config, labelled, names, predict, point, cache_root, self.log
                )
        assert dataset is not None
        if self.dist.is_main:
            # Only now: data, teacher and footage have all been found good.
            self.out_dir.mkdir(parents=True, exist_ok=True)
        model_config = ModelConfig(
            num_classes=len(names), size=config.model, reg_max=config.reg_max
        )
        model = DetectionModel(model_config).to(device)
        teacher_info = {} if teacher is None else dict(teacher.info)
        if config.weights and self.resume_from is None:
            weights = load_checkpoint(config.weights)
            loaded, skipped = load_matching(model, weights["state_dict"])
            self.log(
                f"transfer: {loaded} tensors loaded from {config.weights}, {len(skipped)} kept "
                "fresh (different shapes or names)"
            )
        freeze_stages(model, config.freeze)

        adapters = None
        distill_loss = None
        if teacher is not None and config.distill is not None:
            if teacher.neck_channels is not None:
                adapters = FeatureAdapters(model_config.neck_channels, teacher.neck_channels).to(
                    device
                )
            shift = 0.0
            if config.distill.calibrate and point is not None:
                shift = point.logit_shift(config.distill.box_score_threshold)
                teacher_info["operating_point"] = {
                    **point.to_dict(),
                    "logit_shift": round(shift, 4),
                }
            distill_loss = DistillLoss(config.distill, adapters, shift)
            self.log(
                "distillation: "
                + "; ".join(active_terms(config.distill, teacher.neck_channels is not None, point))
            )

        plan = plan_optimizer(
            config.optimizer,
            len(dataset.train),
            config.batch,
            config.epochs,
            config.nominal_batch,
            config.lr,
            config.weight_decay,
        )
        params = parameter_groups(model, plan.weight_decay)
        if adapters is not None and config.distill and config.distill.feature_mode != "none":
            params += parameter_groups(adapters, plan.weight_decay)
        optimizer = build_optimizer(params, plan)
        trainable = [p for group in params for p in group["params"]]
        amp = config.amp and device.type == "cuda"
        scaler = torch.amp.GradScaler("cuda", enabled=amp)
        ema = ModelEMA(model, config.ema_tau)

        start_epoch, best_fitness, since_best = 0, -1.0, 0
        history: list[dict[str, float]] = []
        if self.resume_from is not None:
            state = self.resume_from["train_state"]
            model.load_state_dict(state["model"])
            ema.model.load_state_dict(self.resume_from["state_dict"])
            ema.updates = state["ema_updates"]
            load_optimizer_state(optimizer, state["optimizer"], f"the run in {self.out_dir}")
            scaler.load_state_dict(state["scaler"])
            if adapters is not None and state.get("adapters"):
                adapters.load_state_dict(state["adapters"])
            start_epoch = int(self.resume_from["epoch"])
            best_fitness, since_best = state["best_fitness"], state["since_best"]
            history = read_history(self.out_dir / "results.csv", start_epoch)
            self.log(f"resuming {self.out_dir} after epoch {start_epoch}/{config.epochs}")

        train_set = DetectionDataset(
            dataset.train, config.input_hw, spec, augment=config.augment, seed=config.seed
        )
        per_rank_batch = max(1, config.batch // self.dist.world)
        loader = make_loader(
            train_set,
            per_rank_batch,
            shuffle=True,
            seed=config.seed,
            workers=config.workers,
            distributed=self.dist.world > 1,
            drop_last=len(train_set) > per_rank_batch,
        )
        ddp_model: nn.Module = model
        if self.dist.world > 1:
            ddp_model = nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None
            )
        criterion = DetectionLoss(len(names), config.loss)
        steps_per_epoch = len(loader)
        total_steps = steps_per_epoch * config.epochs
        warmup_steps = int(config.warmup_epochs * steps_per_epoch)
        self.log(
            f"training {config.model} ({count_parameters(model) / 1e6:.2f} M "
            f"params) on {device} for {config.epochs} epochs, {len(train_set)} images, batch "
            f"{config.batch}"
            + (f" (one step per {plan.accumulate})" if plan.accumulate > 1 else "")
            + f", {plan.name} lr {plan.lr:g}"
            + (f" over {self.dist.world} processes" if self.dist.world > 1 else "")
            + (f", distilling from {config.teacher}" if teacher is not None else "")
        )

        epochs_run, stopped_early = start_epoch, False
        distill_until = config.epochs - (config.distill.off_epochs if config.distill else 0)
        best_result: EvalResult | None = None  # the best epoch's evaluation, if in this process
        for epoch in range(start_epoch, config.epochs):
            mosaic = epoch < config.epochs - config.close_mosaic
            distilling = distill_loss is not None and epoch < distill_until
            set_loader_epoch(loader, epoch, mosaic)
            model.train()
            freeze_stages(model, config.freeze)
            if adapters is not None:
                adapters.train()
            sums = dict.fromkeys(LOSS_COLUMNS, 0.0)
            bar = ProgressBar(steps_per_epoch, f"epoch {epoch + 1}/{config.epochs}")
            started, seen = time.perf_counter(), 0
            lr, pending = plan.lr, 0
            optimizer.zero_grad(set_to_none=True)
            for step, (images_u8, targets, _indices) in enumerate(loader):
                global_step = epoch * steps_per_epoch + step
                lr = self._set_learning_rates(
                    optimizer, plan, global_step, total_steps, warmup_steps
                )
                images = normalize_batch(images_u8, spec, device=device)
                targets = targets.to(device)
                with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp):
                    out = ddp_model(images, raw=True)
                    loss, parts = criterion(out, targets)
                    if distilling:
                        with torch.no_grad():
                            teacher_out = teacher.targets(images_u8, images)  # type: ignore[union-attr]
                        kd_loss, kd_parts = distill_loss(out, teacher_out, targets)  # type: ignore[misc]
                        loss = loss + kd_loss
                        parts.update(kd_parts)
                scaler.scale(loss * plan.loss_scale).backward()
                pending += 1
                last = step + 1 == steps_per_epoch
                if last or pending >= accumulate_at(global_step, warmup_steps, plan.accumulate):
                    scaler.unscale_(optimizer)
                    if adapters is not None:
                        self.dist.average_gradients(list(adapters.parameters()))
                    torch.nn.utils.clip_grad_norm_(trainable, config.grad_clip)
                    scaler.step(optimizer)
                    scaler.update()
                    optimizer.zero_grad(set_to_none=True)
                    ema.update(model)
                    pending = 0
                for name, value in parts.items():
                    sums[name] += float(value)
                seen += images.shape[0]
                if self.dist.is_main:
                    bar.update(step + 1, self._status(sums, step + 1))
            rate = seen * self.dist.world / max(time.perf_counter() - started, 1e-9)
            if self.dist.is_main:
                bar.close(
                    steps_per_epoch, self._status(sums, steps_per_epoch) + f" {rate:.1f} img/s"
                )

            stop = False
            if self.dist.is_main:
                result = validate(
                    ema.model, dataset.val, names, config.input_hw, spec, config.batch, device
                )
                fitness = result.map50_95
                row = {
                    "epoch": float(epoch + 1),
                    "lr": lr,
                    **{f"train/{k}": v / steps_per_epoch for k, v in sums.items()},
                    **{f"val/{k}": v for k, v in metrics_of(result).items()},
                    "images_per_s": rate,
                }
                history.append(row)
                write_history(self.out_dir / "results.csv", history)
                improved = fitness > best_fitness
                if improved:
                    best_fitness, since_best, best_result = fitness, 0, result
                else:
                    since_best += 1
                self.log(
                    f"  val mAP50-95 {result.map50_95:.4f}  mAP50 {result.map50:.4f}  "
                    f"P {result.precision:.3f}  R {result.recall:.3f}"
                    + ("  (best)" if improved else f"  (best {best_fitness:.4f})")
                )
                checkpoint = self._checkpoint(
                    model_config,
                    names,
                    spec,
                    ema,
                    epoch + 1,
                    metrics_of(result),
                    teacher_info,
                    footage_info,
                )
                if improved:
                    save_checkpoint(checkpoint, self.out_dir / "best.pt")
                checkpoint["train_state"] = {
                    "model": model.state_dict(),
                    "ema_updates": ema.updates,
                    "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict(),
                    "adapters": adapters.state_dict() if adapters is not None else {},
                    "best_fitness": best_fitness,
                    "since_best": since_best,
                }
                save_checkpoint(checkpoint, self.out_dir / "last.pt")
                if config.save_period and (epoch + 1) % config.save_period == 0:
                    save_checkpoint(checkpoint, self.out_dir / f"epoch{epoch + 1}.pt")
                stop = config.patience > 0 and since_best >= config.patience
            epochs_run = epoch + 1
            if self.dist.broadcast_flag(stop):
                stopped_early = True
                self.log(f"early stop: no better mAP50-95 for {config.patience} epochs")
                break

        metrics: dict[str, Any] = {}
        if self.dist.is_main:
            metrics = self._finish(dataset, names, spec, device, history, best_result)
        return RunResult(
            self.out_dir,
            self.out_dir / "best.pt",
            self.out_dir / "last.pt",
            metrics,
            epochs_run,
            stopped_early,
            history,
        )

    def _set_learning_rates(
        self,
        optimizer: torch.optim.Optimizer,
        plan: OptimizerPlan,
        step: int,
        total_steps: int,
        warmup_steps: int,
    ) -> float:
        """Every group's rate at `step` (returned: the weights'). Biases warm down from
        `plan.warmup_bias_lr` while the rest warm up from 0, and SGD's momentum warms up from
        `WARMUP_MOMENTUM` (YOLOv8's warm-up)."""
        final = self.config.final_lr_ratio
        lr = lr_at(step, total_steps, warmup_steps, plan.lr, final)
        bias_lr = lr_at(step, total_steps, warmup_steps, plan.lr, final, plan.warmup_bias_lr)
        warmed = min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0
        for group in optimizer.param_groups:
            group["lr"] = bias_lr if group.get("bias") else lr
            if plan.name == "sgd":
                group["momentum"] = WARMUP_MOMENTUM + (plan.momentum - WARMUP_MOMENTUM) * warmed
        return lr

    @staticmethod
    def _status(sums: dict[str, float], steps: int) -> str:
        shown = [f"{k} {v / steps:.3f}" for k, v in sums.items() if v]
        return "  ".join(shown)

    def _checkpoint(
        self,
        model_config: ModelConfig,
        names: list[str],
        spec: PreprocessSpec,
        ema: ModelEMA,
        epoch: int,
        metrics: dict[str, float],
        teacher_info: dict[str, Any],
        footage_info: dict[str, Any],
    ) -> dict[str, Any]:
        data = self.config.data
        provenance: dict[str, Any] = {
            "dataset": str(Path(data).resolve()) if data else None,
            "trained_by": "jetkit train" if not teacher_info else "jetkit distill",
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        if teacher_info:
            provenance["teacher"] = teacher_info
        if footage_info:
            provenance["unlabeled"] = footage_info
        return {
            "format": CHECKPOINT_FORMAT,
            "model": model_config.to_dict(),
            "names": names,
            "strides": list(STRIDES),
            "imgsz": list(self.config.input_hw),
            "preprocess": asdict(spec),
            "state_dict": {k: v.detach().cpu() for k, v in ema.model.state_dict().items()},
            "config": self.config.to_dict(),
            "epoch": epoch,
            "metrics": metrics,
            "provenance": provenance,
        }

    def _finish(
        self,
        dataset: DetectionSet,
        names: list[str],
        spec: PreprocessSpec,
        device: torch.device,
        history: list[dict[str, float]],
        best_result: EvalResult | None,
    ) -> dict[str, Any]:
        """The best epoch's per-class table, results.json and the plots. Its evaluation is reused
        when this process made it; a resumed run whose best epoch came before evaluates best.pt."""
        from trainer.plots import plot_history, plot_pr_curves

        best = load_checkpoint(self.out_dir / "best.pt")
        result = best_result
        if result is None:
            model = model_from_checkpoint(best).to(device)
            result = validate(
                model, dataset.val, names, self.config.input_hw, spec, self.config.batch, device
            )
        self.log(format_table(result))
        summary = {**result.to_dict(), "best_epoch": best["epoch"], "epochs": len(history)}
        write_text_atomic(self.out_dir / "results.json", json.dumps(summary, indent=2) + "\n")
        plot_history(history, self.out_dir)
        plot_pr_curves(result, self.out_dir / "pr_curve.png")
        self.log(
            f"best mAP50-95 {result.map50_95:.4f} (epoch {best['epoch']}): {self.out_dir / 'best.pt'}"
        )
        return summary


def train(config: TrainConfig, exist_ok: bool = False, log: Log = stderr_log) -> RunResult:
    return Trainer(config, exist_ok=exist_ok, log=log).run()


def resume(path: str | os.PathLike[str], log: Log = stderr_log) -> RunResult:
    """Continue the run that wrote `path` (its last.pt, or an epochN.pt) in that folder, with its
    saved config."""
    checkpoint = load_checkpoint(path)
    if "train_state" not in checkpoint:
        raise JetkitError(
            f"{path} holds no training state (best.pt never does); resume from last.pt"
        )
    # A run from before box distributions has no reg_max in its config: its model's is used.
    config = TrainConfig.from_dict(checkpoint["config"]).replace(
        out=str(Path(path).parent), reg_max=model_config_of(checkpoint).reg_max
    )
    if int(checkpoint["epoch"]) >= config.epochs:
        raise JetkitError(f"{path} finished all {config.epochs} epochs; nothing to resume")
    return Trainer(config, resume_from=checkpoint, log=log).run()
