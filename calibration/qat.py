"""The calibration side of `jetkit calibrate --qat`: find the trainer's fine-tuning, check the
request before any calibration is spent, hand the trainer what the PTQ artifact quantized
(`calibration.qat_plan`), and write its fine-tuned model with the PTQ's ranges and float nodes.

The trainer is found through the `jetkit.qat` entry point, so calibration imports neither it nor
torch (DESIGN.md's layers) and PTQ runs where neither is installed.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from calibration.artifacts import load_source_model
from calibration.cpu_graph import default_opset
from calibration.int8 import Int8Result, quantize_int8
from calibration.qat_plan import conv_fake_quants
from edge.cli import stderr_log
from edge.errors import JetkitError
from edge.manifest import Manifest


@dataclass(frozen=True)
class QuantizationAware:
    """`--qat` as asked: the trainer's module, its validated `QatConfig`, the checkpoint."""

    trainer: Any  # the module `trainer.qat`
    config: Any  # its QatConfig
    checkpoint: Path
    source: Path
    manifest: Manifest

    @classmethod
    def from_args(
        cls, args: argparse.Namespace, source: Path, manifest: Manifest
    ) -> QuantizationAware:
        if args.data is None or not Path(args.data).is_file():
            raise JetkitError(
                f"--qat fine-tunes on labelled images: --data must be a data.yaml, got {args.data}"
            )
        trainer = _qat_trainer()
        config = trainer.QatConfig(epochs=args.qat, lr=args.qat_lr, batch=args.qat_batch)
        return cls(
            trainer, config, _qat_checkpoint(args.checkpoint, manifest, source), source, manifest
        )

    def fine_tune(
        self, args: argparse.Namespace, images: list[Path], artifact: Path, ptq: Int8Result
    ) -> Int8Result:
        """Fine-tune from the PTQ artifact's quantization, then write the fine-tuned model over
        it with the same ranges, method and float nodes."""
        import onnx

        source_model = load_source_model(self.source)
        plans = conv_fake_quants(onnx.load(str(artifact)), source_model)
        stderr_log(
            f"quantization-aware fine-tuning of {len(plans)} INT8 convolutions for "
            f"{self.config.epochs} epoch(s) from {self.checkpoint}"
        )
        with tempfile.TemporaryDirectory(prefix="jetkit-qat-") as scratch:
            tuned = Path(scratch) / "qat-fp32.onnx"
            record = self.trainer.fine_tune(
                checkpoint=self.checkpoint,
                data=args.data,
                plans=plans,
                manifest=self.manifest,
                opset=default_opset(source_model),
                node_names=[node.name for node in source_model.graph.node],
                out=tuned,
                config=self.config,
                log=stderr_log,
            )
            return quantize_int8(
                tuned,
                self.manifest,
                images,
                artifact,
                runtime=args.runtime,
                method=str(ptq.method),
                exclude=ptq.excluded,
                ranges=ptq.ranges,
                provenance={"qat": record},
                derived_from=self.source,
                log=stderr_log,
            )


def _qat_trainer() -> Any:
    from importlib.metadata import entry_points

    for entry in entry_points(group="jetkit.qat"):
        try:
            return entry.load()
        except ImportError as exc:
            raise JetkitError(
                f"--qat fine-tunes in torch, and {exc.name} is not installed here: "
                "pip install 'jetkit[train]'"
            ) from None
    raise JetkitError("--qat needs jetkit's trainer: pip install 'jetkit[train]'")


def _qat_checkpoint(given: str | None, manifest: Manifest, source: Path) -> Path:
    """`--checkpoint`, else the one the manifest records (`jetkit export`)."""
    if given:
        if not Path(given).is_file():
            raise JetkitError(f"--checkpoint {given} does not exist")
        return Path(given)
    recorded = manifest.provenance.get("checkpoint")
    if not recorded:
        raise JetkitError(
            f"{source} records no training checkpoint (QAT fine-tunes jetkit students): pass "
            "--checkpoint best.pt"
        )
    # As recorded (relative to where `jetkit export` ran), beside the model, or in the run folder
    # above an export folder (`runs/student/onnx/model.onnx` of `runs/student/best.pt`).
    name = Path(recorded).name
    for candidate in (Path(recorded), source.parent / name, source.parent.parent / name):
        if candidate.is_file():
            return candidate
    raise JetkitError(
        f"the checkpoint {recorded} that {source} was exported from is not found: pass "
        "--checkpoint best.pt"
    )
