"""TensorRT's rules (`calibration.trt_rules`) applied to what a bundle will build: each ONNX
model at each precision a device may build it at, when bundling (against every TensorRT
version jetkit targets) and when flashing (against the device's own)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from deploy.bundle_index import BundleIndex, BundleModel

Log = Callable[[str], None]


def build_targets(index: BundleIndex) -> list[tuple[BundleModel, str]]:
    """`(model, precision)` for every TensorRT build a device may make from the bundle: FP32
    and FP16 (and implicit INT8 with a calibration cache) from the FP32 ONNX, each other ONNX
    at its own precision; an INT8 model in ONNX Runtime's CPU format is for ONNX Runtime
    only."""
    has_cache = any(m.role == "calibration-cache" for m in index.members)
    targets: list[tuple[BundleModel, str]] = []
    for model in index.models:
        if model.precision == "fp32":
            targets += [(model, "fp32"), (model, "fp16")]
            if has_cache:
                targets.append((model, "int8"))
        elif model.runtime != "cpu":
            targets.append((model, model.precision))
    return targets


def check_bundle(
    index: BundleIndex, read: Callable[[str], bytes], versions: Sequence[str], log: Log
) -> None:
    """Refuse a bundle one of whose builds every TensorRT in `versions` would reject; say which
    builds fail on some versions only, and how many warnings there are."""
    from calibration.trt_rules.check import (
        check_versions,
        load_onnx,
        require_some_version_builds,
    )

    graphs: dict[str, Any] = {}
    for model, precision in build_targets(index):
        if model.file not in graphs:
            graphs[model.file] = load_onnx(read(model.file), model.file)
        graph = graphs[model.file]
        results = check_versions(graph, versions, precision, artifact_kind=model.kind)
        what = f"{model.file} ({precision.upper()} engine)"
        require_some_version_builds(results, what, versions, log)


def check_planned_build(
    data: bytes | None, model: BundleModel, precision: str, tensorrt: str, log: Log
) -> None:
    """Flash preflight: refuse a build the device's TensorRT would reject, before uploading."""
    from calibration.trt_rules.check import (
        CheckTarget,
        check_model,
        load_onnx,
        onnx_available,
        require_buildable,
    )

    if data is None or not onnx_available():
        log("  TensorRT rules: not checked here (no onnx package, or the model is too large)")
        return
    graph = load_onnx(data, model.file)
    findings = check_model(graph, CheckTarget(tensorrt, precision), artifact_kind=model.kind)
    require_buildable(findings, model.file, tensorrt, log=log)
    log(f"  TensorRT {tensorrt} rules: {model.file} passes ({len(findings)} warning(s))")
