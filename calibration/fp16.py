"""FP16 artifacts: weights and compute in float16, inputs and outputs kept float32 so the runtime
feeds and decodes them exactly as the FP32 model."""

from __future__ import annotations

from pathlib import Path

from calibration.artifacts import derived_manifest, load_source_model, write_artifact
from edge.errors import JetkitError
from edge.manifest import Manifest


def convert_fp16(
    source_path: str | Path,
    manifest: Manifest,
    out_path: str | Path,
    keep_float32_ops: tuple[str, ...] = (),
) -> Manifest:
    """Write the FP16 version of the ONNX at `source_path` to `out_path`; returns its manifest.
    `keep_float32_ops` lists op types left in float32 (e.g. ones that overflow in FP16)."""
    from onnxconverter_common import float16

    source_path, out_path = Path(source_path), Path(out_path)
    model = load_source_model(source_path)
    if manifest.artifact is not None and manifest.artifact.precision != "fp32":
        raise JetkitError(
            f"{source_path} is already {manifest.artifact.precision}; convert the FP32 ONNX"
        )
    # Stale intermediate types: the converter keeps some ops (Resize among them) in float32 but
    # would leave their outputs typed float16 in value_info, which ONNX Runtime then refuses.
    # Shapes are inferred again from the graph.
    del model.graph.value_info[:]
    converted = float16.convert_float_to_float16(
        model, keep_io_types=True, op_block_list=list(keep_float32_ops) or None
    )
    target = derived_manifest(
        manifest,
        source_path,
        out_path,
        "onnx-fp16",
        "fp16",
        {"fp16": {"keep_float32_ops": list(keep_float32_ops)}},
    )
    return write_artifact(converted, target, out_path)
