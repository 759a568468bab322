"""Checkpoint → ONNX (`yolov8` output layout, simplified with onnxslim) with the manifest embedded
and beside it as `model.json`, after a parity check of ONNX Runtime against torch on real images.

Nothing is written unless the check passes: the files are built in temporary names and renamed
into place at the end.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edge.errors import JetkitError
from edge.images import read_image
from edge.manifest import (
    ArtifactSpec,
    InputSpec,
    Manifest,
    OutputSpec,
    embed_manifest,
    save_manifest,
)
from edge.preprocess import Preprocessor
from trainer.checkpoint import load_checkpoint, model_from_checkpoint, preprocess_of
from trainer.model import STRIDES, check_input_hw

INPUT_NAME = "images"
OUTPUT_NAME = "output0"


@dataclass(frozen=True)
class Parity:
    """ONNX Runtime against torch on the same input tensors."""

    images: int
    max_abs_box_px: float
    max_abs_score: float
    max_rel: float  # max |ort - torch| / max |torch|, over the whole output

    def passed(self, tolerance: float) -> bool:
        return self.max_rel <= tolerance

    def describe(self) -> str:
        return (
            f"parity on {self.images} images: boxes max abs {self.max_abs_box_px:.2e} px, "
            f"scores max abs {self.max_abs_score:.2e}, max relative {self.max_rel:.2e}"
        )


@dataclass(frozen=True)
class ExportResult:
    onnx_path: Path
    manifest_path: Path
    manifest: Manifest
    parity: Parity


def compare_outputs(torch_out: np.ndarray, ort_out: np.ndarray) -> Parity:
    """`(B, 4+C, N)` outputs of the two runtimes → the error figures of `Parity`."""
    diff = np.abs(torch_out.astype(np.float64) - ort_out.astype(np.float64))
    scale = max(float(np.abs(torch_out).max()), 1e-12)
    return Parity(
        images=int(torch_out.shape[0]),
        max_abs_box_px=float(diff[:, :4].max()),
        max_abs_score=float(diff[:, 4:].max()) if diff.shape[1] > 4 else 0.0,
        max_rel=float(diff.max() / scale),
    )


def export_manifest(
    checkpoint: dict[str, Any],
    input_hw: tuple[int, int],
    dynamic_batch: bool,
    max_batch: int,
    file_name: str,
    source: str,
) -> Manifest:
    provenance = dict(checkpoint.get("provenance", {}))
    provenance.update(
        {
            "checkpoint": source,
            "model": checkpoint["model"]["size"],
            "epoch": checkpoint.get("epoch"),
            "metrics": checkpoint.get("metrics", {}),
        }
    )
    return Manifest(
        name=Path(file_name).stem,
        input=InputSpec(
            name=INPUT_NAME,
            shape=(max_batch, 3, *input_hw),
            dynamic_batch=dynamic_batch,
            max_batch=max_batch,
        ),
        output=OutputSpec(format="yolov8", names=(OUTPUT_NAME,), strides=STRIDES),
        classes=tuple(checkpoint["names"]),
        preprocess=preprocess_of(checkpoint),
        artifact=ArtifactSpec(file=file_name, kind="onnx", precision="fp32"),
        provenance=provenance,
    )


def parity_inputs(image_paths: Sequence[Path], manifest: Manifest, count: int = 4) -> np.ndarray:
    """Up to `count` real images through the edge preprocessing → `(B,3,H,W)` float32."""
    if not image_paths:
        raise JetkitError("the parity check needs images: pass --images DIR or --data DATA")
    frames = [read_image(path) for path in list(image_paths)[:count]]
    preprocess = Preprocessor(manifest.preprocess, manifest.input.size_hw, max_batch=len(frames))
    batch, _ = preprocess(frames)
    return batch.copy()


def export_proto(
    model: nn.Module,
    input_hw: tuple[int, int],
    dynamic_batch: bool,
    max_batch: int,
    opset: int,
    scratch: Path,
) -> Any:
    """`model` (in eval mode) as jetkit exports it: traced at `input_hw`, simplified by
    onnxslim; `scratch` is a file the tracer writes (overwritten). Returns the ModelProto."""
    import onnx
    import onnxslim

    with torch.no_grad():
        torch.onnx.export(
            model,
            (torch.zeros(2 if dynamic_batch else max_batch, 3, *input_hw),),
            str(scratch),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
            if dynamic_batch
            else None,
            opset_version=opset,
            dynamo=False,
        )
    return onnxslim.slim(onnx.load(str(scratch)))


def export_checkpoint(
    checkpoint_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    image_paths: Sequence[Path],
    imgsz_hw: tuple[int, int] | None = None,
    dynamic_batch: bool = False,
    max_batch: int = 1,
    opset: int = 17,
    tolerance: float = 1e-4,
    log: Callable[[str], None] = lambda _message: None,
) -> ExportResult:
    from edge.backends.onnxruntime import load_session
    from edge.models import file_sha256

    if max_batch < 1:
        raise JetkitError(f"--max-batch must be >= 1, got {max_batch}")
    if not 11 <= opset <= 21:
        raise JetkitError(f"--opset {opset} is outside what jetkit supports (11-21; 17 is usual)")
    checkpoint = load_checkpoint(checkpoint_path)
    input_hw = imgsz_hw or tuple(checkpoint["imgsz"])
    check_input_hw(input_hw)  # type: ignore[arg-type]
    model = model_from_checkpoint(checkpoint).float()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path, manifest_path = out_dir / "model.onnx", out_dir / "model.json"
    manifest = export_manifest(
        checkpoint,
        input_hw,
        dynamic_batch,
        max_batch,
        onnx_path.name,
        str(checkpoint_path),  # type: ignore[arg-type]
    )
    tmp_onnx = out_dir / f".model.onnx.tmp-{os.getpid()}"
    try:
        proto = export_proto(model, input_hw, dynamic_batch, max_batch, opset, tmp_onnx)
        embed_manifest(proto, manifest)
        tmp_onnx.write_bytes(proto.SerializeToString())
        log(f"exported {manifest.input.shape} → {OUTPUT_NAME} (opset {opset}, onnxslim)")

        inputs = parity_inputs(image_paths, manifest, count=max_batch if not dynamic_batch else 4)
        if not dynamic_batch and inputs.shape[0] != max_batch:
            inputs = np.resize(inputs, (max_batch, *inputs.shape[1:]))
        session = load_session(tmp_onnx, ["CPUExecutionProvider"], None)
        ort_out = session.run([OUTPUT_NAME], {INPUT_NAME: inputs})[0]
        with torch.no_grad():
            torch_out = model(torch.from_numpy(inputs), raw=False).numpy()
        parity = compare_outputs(torch_out, ort_out)
        log(parity.describe())
        if not parity.passed(tolerance):
            raise JetkitError(
                f"ONNX Runtime disagrees with torch ({parity.describe()}; tolerance "
                f"{tolerance:g}); nothing written. Try another --opset, or report this model"
            )
        os.replace(tmp_onnx, onnx_path)
    finally:
        tmp_onnx.unlink(missing_ok=True)
    final = manifest.replace(
        artifact=ArtifactSpec(
            file=onnx_path.name, kind="onnx", precision="fp32", sha256=file_sha256(onnx_path)
        )
    )
    save_manifest(final, manifest_path)
    return ExportResult(onnx_path, manifest_path, final, parity)
