"""FP16 artifacts: weights and compute in float16, inputs and outputs kept float32 so the runtime
feeds and decodes them exactly as the FP32 model."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from calibration.artifacts import derived_manifest, load_source_model, write_artifact
from edge.errors import JetkitError
from edge.manifest import Manifest

# The converter's bounds (its defaults): smaller magnitudes would be float16 subnormals or zero,
# larger ones leave too little headroom before float16's 65504.
MIN_POSITIVE = 1e-7
MAX_FINITE = 1e4


def clamped_weight_values(model: Any) -> int:
    """How many float32 initializer values of `model` (an onnx.ModelProto) lie outside
    [MIN_POSITIVE, MAX_FINITE] in magnitude (zeros aside): those the conversion clamps."""
    from onnx import TensorProto, numpy_helper

    count = 0
    for initializer in model.graph.initializer:
        if initializer.data_type == TensorProto.FLOAT:
            magnitudes = np.abs(numpy_helper.to_array(initializer))
            count += int(np.count_nonzero((magnitudes > 0) & (magnitudes < MIN_POSITIVE)))
            count += int(np.count_nonzero(magnitudes > MAX_FINITE))
    return count


def convert_fp16(
    source_path: str | Path,
    manifest: Manifest,
    out_path: str | Path,
    keep_float32_ops: tuple[str, ...] = (),
    log: Callable[[str], None] = lambda _message: None,
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
    clamped_count = clamped_weight_values(model)
    # The converter warns per weight tensor it clamps: dozens of lines for a trained model,
    # summed up in one.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        converted = float16.convert_float_to_float16(
            model,
            min_positive_val=MIN_POSITIVE,
            max_finite_val=MAX_FINITE,
            keep_io_types=True,
            op_block_list=list(keep_float32_ops) or None,
        )
    if clamped_count:
        log(
            f"{clamped_count} weight values outside float16's usable range were clamped "
            f"(magnitudes below {MIN_POSITIVE:g} or above {MAX_FINITE:g})"
        )
    target = derived_manifest(
        manifest,
        source_path,
        out_path,
        "onnx-fp16",
        "fp16",
        {
            "fp16": {
                "keep_float32_ops": list(keep_float32_ops),
                "clamped_weight_values": clamped_count,
            }
        },
    )
    return write_artifact(converted, target, out_path)
