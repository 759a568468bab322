"""Every rule for one target (a TensorRT version, a build precision, the DLA or not), over one
ONNX model: `check_model` returns findings, `require_buildable` turns errors into one
`jetkit: error:` line. `check_versions` runs the same model against several TensorRT versions
and merges what they report alike."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from calibration.trt_rules.dla import GENERATIONS, DlaTarget, check_dla
from calibration.trt_rules.findings import Finding, Rule, errors, summarize
from calibration.trt_rules.graph import KIND_PRECISION, GraphView
from calibration.trt_rules.io import check_io
from calibration.trt_rules.operators import check_operators
from calibration.trt_rules.qdq import check_placement, check_validity
from edge.backends.trt_versions import TensorRTFeatures, features_for_version
from edge.errors import JetkitError

# What `jetkit check` and `jetkit bundle` check against when no TensorRT version is named:
# JetPack 5 (8.5, 8.6), JetPack 6 (10.3) and TensorRT 11.
DEFAULT_VERSIONS = ("8.5", "8.6", "10.3", "11.4.1")
PRECISIONS = ("fp32", "fp16", "int8")
_STRONG_TYPING_SOURCE = (
    "TensorRT 10.x to 11.x migration notes; TensorRT Developer Guide, Strongly Typed Networks"
)

STRONG_TYPING = Rule(
    "build.strongly-typed",
    "TensorRT 11 builds strongly typed networks: the precision is the model's own",
    _STRONG_TYPING_SOURCE,
)


def table_for(features: TensorRTFeatures) -> str:
    """The operator table (`operators.TABLE_VERSIONS`) of a TensorRT version."""
    major, minor = features.version[0], (features.version[1:] or (0,))[0]
    if major < 9:
        return "8.5" if minor <= 5 else "8.6"
    return "10" if major < 11 else "11"


@dataclass(frozen=True)
class CheckTarget:
    """One build to check for: `tensorrt` a version (`"8.6"`, `"10.3.0"`), `precision` the
    build's (None: the model's own), `dla` a DLA generation or None, `batch` the build's
    static batch (DLA)."""

    tensorrt: str = "10.3"
    precision: str | None = None
    dla: str | None = None
    batch: int | None = None

    def __post_init__(self) -> None:
        features_for_version(self.tensorrt)  # names an unreadable or too old version
        if self.precision is not None and self.precision not in PRECISIONS:
            raise JetkitError(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if self.dla is not None and self.dla not in GENERATIONS:
            raise JetkitError(f"--dla {self.dla!r} is not one of {', '.join(GENERATIONS)}")
        if self.batch is not None and self.batch < 1:
            raise JetkitError(f"--batch must be >= 1, got {self.batch}")

    @property
    def features(self) -> TensorRTFeatures:
        return features_for_version(self.tensorrt)


def load_onnx(source: Path | bytes, name: str | None = None) -> Any:
    """The ONNX graph in the file `source`, or in `source`'s bytes (a bundle member called
    `name`). Weights stored beside a file are not read: no rule needs more than their names,
    types and the constants inside the file."""
    import onnx

    try:
        if isinstance(source, bytes):
            return onnx.load_from_string(source)
        return onnx.load(str(source), load_external_data=False)
    except Exception as exc:  # protobuf raises several kinds for bytes that are not ONNX
        what = name or ("the model" if isinstance(source, bytes) else str(source))
        raise JetkitError(
            f"{what} is not an ONNX model ({type(exc).__name__}); export it again"
        ) from None


def onnx_available() -> bool:
    """Whether the rules can run here: a Jetson set up as the README says may lack `onnx`."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        return False
    return True


def check_model(model: Any, target: CheckTarget, artifact_kind: str | None = None) -> list[Finding]:
    """Every finding for building `model` (an `onnx.ModelProto`) for `target`. `artifact_kind`
    (the manifest's: `onnx`, `onnx-fp16`, `onnx-int8-qdq`) tells what the model holds."""
    view = GraphView(model)
    features = target.features
    findings = list(check_operators(view, table_for(features)))
    findings += check_io(view, features.int64_io)
    findings += check_validity(view, features.fp8_int4_qdq, features.int8_weight_initializers)
    findings += check_placement(view)
    findings += _check_precision(features, target.precision, artifact_kind)
    if target.dla is not None:
        findings += check_dla(
            view, DlaTarget(target.dla, target.precision, target.batch, features.dla)
        )
    return findings


def _check_precision(
    features: TensorRTFeatures, precision: str | None, artifact_kind: str | None
) -> list[Finding]:
    """On a strongly typed TensorRT the model's types are the engine's precision."""
    if not features.strongly_typed_only or precision is None or artifact_kind is None:
        return []
    holds = KIND_PRECISION.get(artifact_kind)
    if holds is None or holds == precision:
        return []
    fix = {
        "fp16": "build the FP16 ONNX from `jetkit calibrate --precision fp16`",
        "int8": "build the Q/DQ ONNX from `jetkit calibrate --precision int8 --runtime tensorrt`",
        "fp32": "build the FP32 ONNX",
    }[precision]
    return [
        Finding(
            STRONG_TYPING,
            None,
            f"the model is {holds.upper()}, so TensorRT {features.label} builds it as "
            f"{holds.upper()}, not {precision.upper()}; {fix}",
        )
    ]


def check_versions(
    model: Any,
    versions: Sequence[str],
    precision: str | None = None,
    dla: str | None = None,
    batch: int | None = None,
    artifact_kind: str | None = None,
) -> list[tuple[Finding, tuple[str, ...]]]:
    """`check_model` for each of `versions`, each distinct finding once with the versions that
    report it, in the order first seen."""
    merged: dict[Finding, list[str]] = {}
    for version in versions:
        target = CheckTarget(version, precision, dla, batch)
        for finding in check_model(model, target, artifact_kind):
            merged.setdefault(finding, []).append(version)
    return [(finding, tuple(found_in)) for finding, found_in in merged.items()]


def require_buildable(
    findings: Iterable[Finding], what: str, tensorrt: str, log: Any = None
) -> None:
    """Raise a JetkitError naming the first errors; pass warnings to `log` (one line each)."""
    findings = list(findings)
    if log is not None:
        for finding in findings:
            if finding.severity == "warning":
                log(f"warning: {what}: {finding.describe()}")
    if errors(findings):
        raise JetkitError(
            f"TensorRT {tensorrt} would reject {what}: {summarize(findings)}; "
            f"`jetkit check {what} --tensorrt {tensorrt}` lists every finding with its source"
        )


def require_some_version_builds(
    results: Sequence[tuple[Finding, tuple[str, ...]]],
    what: str,
    versions: Sequence[str],
    log: Callable[[str], None],
) -> None:
    """For `check_versions` results: raise when every one of `versions` rejects `what`; name
    the versions that reject it when only some do; count the warnings."""
    failing = [(f, found) for f, found in results if f.severity == "error"]
    everywhere = [f for f, found in failing if set(found) == set(versions)]
    if everywhere:
        raise JetkitError(
            f"no TensorRT jetkit targets ({', '.join(versions)}) can build {what}: "
            f"{summarize(everywhere)}; `jetkit check` lists every finding with its source"
        )
    for finding, found in failing:
        log(
            f"warning: {what} will not build on TensorRT {', '.join(found)}: "
            f"[{finding.rule.id}] {finding.message}"
        )
    warnings = len(results) - len(failing)
    if warnings:
        log(f"note: {what}: {warnings} TensorRT warning(s); `jetkit check` lists them")
