"""Finding a model's manifest: embedded in the ONNX, a sidecar `<stem>.json`, or inferred.

Third-party models get a manifest inferred from what they carry: Ultralytics exports from their
`metadata_props` (`names`, `imgsz`, `stride`, … as Python reprs, parsed with `ast.literal_eval`),
otherwise from the tensor shapes. Every inferred field that was a guess is listed, so that
`jetkit inspect` can say so and the user can override it (`--format`, `--classes`, `--imgsz`).
"""

from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.backends.base import Backend, TensorSpec
from edge.errors import JetkitError, ManifestError
from edge.manifest import (
    MANIFEST_KEY,
    OUTPUT_FORMATS,
    ArtifactSpec,
    InputSpec,
    Manifest,
    OutputSpec,
    PreprocessSpec,
    load_manifest,
    sidecar_path,
)

# Upper bound assumed for a dynamic batch when nothing says more; TensorRT engines get theirs
# from the optimisation profile at build time.
DEFAULT_DYNAMIC_MAX_BATCH = 8
# An end-to-end (NMS in graph) output keeps at most this many boxes; raw heads have thousands.
END2END_MAX_K = 1000


@dataclass(frozen=True)
class Overrides:
    """User corrections applied on top of whatever manifest was found (`--format` …)."""

    format: str | None = None
    classes: tuple[str, ...] | None = None
    imgsz_hw: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.format is not None and self.format not in OUTPUT_FORMATS:
            raise JetkitError(f"--format {self.format!r} is not one of {', '.join(OUTPUT_FORMATS)}")


@dataclass(frozen=True)
class ResolvedManifest:
    """A manifest and where it came from: `origin` is "embedded", "sidecar" or "inferred";
    `guessed` lists the fields that were guesses (empty unless inferred)."""

    manifest: Manifest
    origin: str
    guessed: tuple[str, ...] = field(default_factory=tuple)
    source: str | None = None


def parse_imgsz(text: str) -> tuple[int, int]:
    """`"640"` → (640, 640); `"384x640"` (height x width) → (384, 640)."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        sizes = []
    if len(sizes) == 1:
        sizes = sizes * 2
    if len(sizes) != 2 or min(sizes) < 1:
        raise JetkitError(f"--imgsz {text!r} must be N or HxW, e.g. 640 or 384x640")
    return sizes[0], sizes[1]


def parse_classes(text: str) -> tuple[str, ...]:
    """Class names from a comma-separated list, or from a file with one name per line."""
    path = Path(text)
    if path.is_file():
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        names = [n for n in names if n]
    else:
        names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise JetkitError(f"--classes {text!r}: give comma-separated names or a file of names")
    return tuple(names)


def _literal(metadata: dict[str, str], key: str) -> Any:
    """An Ultralytics metadata value (a Python repr), or None when absent or not a literal."""
    if key not in metadata:
        return None
    try:
        return ast.literal_eval(metadata[key])
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None  # TypeError: an unhashable dict key or set item, `{[1]: 'a'}`


def _names_from_metadata(metadata: dict[str, str]) -> tuple[str, ...] | None:
    names = _literal(metadata, "names")
    if isinstance(names, dict) and names and all(isinstance(k, int) for k in names):
        return tuple(str(names[k]) for k in sorted(names))
    if isinstance(names, (list, tuple)) and names:
        return tuple(str(n) for n in names)
    return None


def _yolox_anchor_count(input_hw: tuple[int, int], strides: tuple[int, ...]) -> int:
    return sum((input_hw[0] // s) * (input_hw[1] // s) for s in strides)


def guess_output_format(
    output_shape: tuple[Any, ...], input_hw: tuple[int, int], strides: tuple[int, ...]
) -> tuple[str, int | None]:
    """The decoder format and class count a rank-3 output shape implies, or a JetkitError.

    `[B, 4+nc, N]` with N ≫ 4+nc is yolov8; `[B, K, 6]` with a small K is end2end;
    `[B, N, 5+nc]` is yolox when N is the anchor-free grid count and yolov5 when it is three
    anchors per cell.
    """
    if len(output_shape) != 3 or not all(isinstance(d, int) for d in output_shape[1:]):
        raise JetkitError(
            f"cannot infer the output format from output shape {list(output_shape)}; "
            "pass --format yolov8|yolov5|yolox|end2end"
        )
    rows, cols = output_shape[1], output_shape[2]
    if cols == 6 and rows <= END2END_MAX_K:
        return "end2end", None
    if rows > 4 and cols > rows:
        return "yolov8", rows - 4
    grid = _yolox_anchor_count(input_hw, strides)
    if cols > 5 and rows == grid:
        return "yolox", cols - 5
    if cols > 5 and rows == 3 * grid:
        return "yolov5", cols - 5
    raise JetkitError(
        f"cannot infer the output format from output shape {list(output_shape)} with a "
        f"{input_hw[0]}x{input_hw[1]} input; pass --format yolov8|yolov5|yolox|end2end"
    )


def _preprocess_for(fmt: str) -> PreprocessSpec:
    if fmt == "yolox":
        # YOLOX feeds raw 0-255 BGR, padded at the bottom/right.
        return PreprocessSpec(pad_position="top_left", color="BGR", scale=1.0)
    return PreprocessSpec()


def infer_manifest(
    metadata: dict[str, str],
    inputs: tuple[TensorSpec, ...],
    outputs: tuple[TensorSpec, ...],
    file_name: str,
    overrides: Overrides = Overrides(),
    sha256: str | None = None,
) -> tuple[Manifest, tuple[str, ...]]:
    """Build a manifest for a model without one. Returns it and the guessed fields."""
    if not inputs or not outputs:
        raise JetkitError(f"{file_name} has no inputs or no outputs; it is not a detector")
    guessed: list[str] = []
    image = inputs[0]
    if len(image.shape) != 4 or image.shape[1] != 3:
        raise JetkitError(
            f"{file_name}: input {image.name!r} has shape {list(image.shape)}; "
            "expected an image tensor [batch, 3, height, width]"
        )
    hw = overrides.imgsz_hw
    if hw is None and isinstance(image.shape[2], int) and isinstance(image.shape[3], int):
        hw = (image.shape[2], image.shape[3])
    if hw is None:
        imgsz = _literal(metadata, "imgsz")
        if isinstance(imgsz, (list, tuple)) and len(imgsz) == 2:
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in imgsz):
                raise JetkitError(f"{file_name}: metadata imgsz {imgsz!r} is no size; pass --imgsz")
            hw = (imgsz[0], imgsz[1])
        elif isinstance(imgsz, int):
            hw = (imgsz, imgsz)
    if hw is None:
        raise JetkitError(f"{file_name} has a dynamic input size; pass --imgsz (e.g. 640)")
    batch = image.shape[0]
    dynamic = not isinstance(batch, int) or batch < 1
    if dynamic:
        meta_batch = _literal(metadata, "batch")
        max_batch = meta_batch if isinstance(meta_batch, int) and meta_batch > 1 else None
        if max_batch is None:
            max_batch = DEFAULT_DYNAMIC_MAX_BATCH
            guessed.append("input.max_batch")
    else:
        max_batch = int(batch)  # type: ignore[arg-type]
    shape = (max_batch, 3, hw[0], hw[1])
    stride = _literal(metadata, "stride")
    strides: tuple[int, ...] = (8, 16, 32)
    if overrides.format:
        fmt, nc = overrides.format, None
        if fmt == "yolov8" and isinstance(outputs[0].shape[1], int):
            nc = outputs[0].shape[1] - 4
        elif fmt in ("yolov5", "yolox") and isinstance(outputs[0].shape[-1], int):
            nc = outputs[0].shape[-1] - 5
    else:
        fmt, nc = guess_output_format(outputs[0].shape, hw, strides)
        if "names" not in metadata:
            guessed.append("output.format")
    names = overrides.classes or _names_from_metadata(metadata)
    if names is None:
        if nc is None:
            raise JetkitError(
                f"{file_name}: cannot tell the number of classes of a {fmt} output; pass --classes"
            )
        names = tuple(f"class{k}" for k in range(nc))
        guessed.append("classes")
    elif nc is not None and len(names) != nc:
        raise JetkitError(
            f"{file_name}: {len(names)} class names for an output with {nc} classes; "
            "fix --classes or --format"
        )
    if "names" not in metadata:
        guessed.append("preprocess")
    if isinstance(stride, int) and fmt == "yolox":
        strides = tuple(s for s in (8, 16, 32, 64) if s <= stride)
    manifest = Manifest(
        name=Path(file_name).stem,
        input=InputSpec(
            name=image.name,
            shape=shape,
            dtype=image.dtype if image.dtype in ("float32", "float16", "uint8") else "float32",
            dynamic_batch=dynamic,
            max_batch=max_batch,
        ),
        preprocess=_preprocess_for(fmt),
        output=OutputSpec(format=fmt, names=tuple(o.name for o in outputs), strides=strides),
        classes=names,
        artifact=ArtifactSpec(
            file=Path(file_name).name,
            kind="onnx",
            precision="fp16" if image.dtype == "float16" else "fp32",
            sha256=sha256,
        ),
        # Marked, so that a bundle, an artifact or a device showing it says it was not written
        # by whoever made the model, and which parts are guesses to check.
        provenance={
            "inferred": {
                "by": "jetkit inspect",
                "guessed": list(guessed),
                "source_metadata": sorted(metadata),
            }
        },
    )
    return manifest, tuple(guessed)


def apply_overrides(manifest: Manifest, overrides: Overrides) -> Manifest:
    """A manifest with the user's `--format`, `--classes`, `--imgsz` applied."""
    changes: dict[str, Any] = {}
    if overrides.format:
        changes["output"] = OutputSpec(
            format=overrides.format, names=manifest.output.names, strides=manifest.output.strides
        )
    if overrides.classes:
        changes["classes"] = overrides.classes
    if overrides.imgsz_hw:
        spec = manifest.input
        changes["input"] = InputSpec(
            name=spec.name,
            shape=(spec.shape[0], 3, *overrides.imgsz_hw),
            dtype=spec.dtype,
            layout=spec.layout,
            dynamic_batch=spec.dynamic_batch,
            max_batch=spec.max_batch,
        )
    return manifest.replace(**changes) if changes else manifest


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_manifest(
    path: str | Path, backend: Backend, overrides: Overrides = Overrides()
) -> ResolvedManifest:
    """The manifest for the model at `path`, opened as `backend`: embedded, else sidecar, else
    inferred; then the overrides; then checked against the tensors the backend reports."""
    path = Path(path)
    embedded = backend.metadata.get(MANIFEST_KEY)
    sidecar = sidecar_path(path)
    if embedded is not None:
        resolved = ResolvedManifest(
            Manifest.from_json(embedded, source=f"{path} (metadata_props {MANIFEST_KEY})"),
            "embedded",
            source=str(path),
        )
    elif sidecar.is_file():
        resolved = ResolvedManifest(load_manifest(sidecar), "sidecar", source=str(sidecar))
    else:
        manifest, guessed = infer_manifest(
            backend.metadata,
            backend.inputs,
            backend.outputs,
            path.name,
            overrides,
            sha256=file_sha256(path),
        )
        resolved = ResolvedManifest(manifest, "inferred", guessed, str(path))
    manifest = apply_overrides(resolved.manifest, overrides)
    check_against_backend(manifest, backend, resolved.source or str(path))
    return ResolvedManifest(manifest, resolved.origin, resolved.guessed, resolved.source)


def open_manifest(path: str | Path, overrides: Overrides = Overrides()) -> ResolvedManifest:
    """The manifest of the ONNX at `path` as `jetkit inspect` finds it (embedded, sidecar or
    inferred, then checked against the model), reading the model with ONNX Runtime on the CPU:
    what bundling needs of a model without running it."""
    from edge.backends import open_backend

    backend = open_backend(str(path), "onnxruntime", providers=["CPUExecutionProvider"])
    try:
        return resolve_manifest(path, backend, overrides)
    finally:
        backend.close()


def inferred_note(resolved: ResolvedManifest) -> str | None:
    """The line that tells a user their model's manifest was inferred, and what was guessed;
    None for a model with its own manifest."""
    if resolved.origin != "inferred":
        return None
    guessed = (
        f"; guessed {', '.join(resolved.guessed)} (override with --format, --classes, --imgsz)"
        if resolved.guessed
        else ""
    )
    return (
        f"jetkit: note: {resolved.source} has no jetkit manifest; inferred one from its "
        f"metadata and tensor shapes{guessed}"
    )


def sidecar_manifest(
    path: str | Path, overrides: Overrides = Overrides()
) -> ResolvedManifest | None:
    """The sidecar manifest of `path` with overrides, unchecked against the model (for a model
    this machine cannot open, e.g. a TensorRT engine on a host without TensorRT); None if the
    model has no sidecar."""
    sidecar = sidecar_path(path)
    if not Path(path).is_file() or not sidecar.is_file():
        return None
    manifest = apply_overrides(load_manifest(sidecar), overrides)
    return ResolvedManifest(manifest, "sidecar", source=str(sidecar))


def check_against_backend(manifest: Manifest, backend: Backend, source: str) -> None:
    """The manifest must name the model's real input and outputs, with a matching static shape."""
    inputs = {s.name: s for s in backend.inputs}
    if manifest.input.name not in inputs:
        raise ManifestError(
            "input.name",
            f"{manifest.input.name!r} is not an input of the model (inputs: {', '.join(inputs)})",
            source,
        )
    actual = inputs[manifest.input.name].shape
    for axis, (want, have) in enumerate(zip(manifest.input.shape, actual, strict=False)):
        if axis == 0 and manifest.input.dynamic_batch:
            continue
        if isinstance(have, int) and have > 0 and have != want:
            raise ManifestError(
                "input.shape",
                f"{list(manifest.input.shape)} does not match the model's {list(actual)}",
                source,
            )
    outputs = [s.name for s in backend.outputs]
    missing = [n for n in manifest.output.names if n not in outputs]
    if missing:
        raise ManifestError(
            "output.names",
            f"{missing[0]!r} is not an output of the model ({', '.join(outputs)})",
            source,
        )


def manifest_summary(resolved: ResolvedManifest) -> dict[str, Any]:
    """What `jetkit inspect --json` prints: the manifest plus where it came from."""
    return {
        "manifest": resolved.manifest.to_dict(),
        "origin": resolved.origin,
        "source": resolved.source,
        "guessed": list(resolved.guessed),
    }
