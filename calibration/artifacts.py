"""Artifact files and their manifests: each derived model (FP16, INT8 Q/DQ, engine) gets its own
manifest — kind, precision, sha256 — with provenance linking it to the ONNX it came from, written
embedded and beside the file, atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge.atomic import write_bytes_atomic
from edge.errors import JetkitError
from edge.manifest import ArtifactSpec, Manifest, embed_manifest, save_manifest, sidecar_path
from edge.models import file_sha256


def derived_manifest(
    source: Manifest,
    source_path: Path,
    out_path: Path,
    kind: str,
    precision: str,
    provenance: dict[str, Any],
) -> Manifest:
    """`source`'s manifest for the artifact at `out_path` (sha256 filled in once written)."""
    return source.replace(
        name=out_path.stem,
        artifact=ArtifactSpec(file=out_path.name, kind=kind, precision=precision),
        provenance={
            **source.provenance,
            **provenance,
            "source": {"file": str(source_path), "sha256": file_sha256(source_path)},
        },
    )


def write_artifact(model_proto: Any, manifest: Manifest, out_path: Path) -> Manifest:
    """Embed `manifest`, write the model atomically, then the sidecar with the file's sha256."""
    embed_manifest(model_proto, manifest)
    return write_model_file(model_proto.SerializeToString(), manifest, out_path)


def write_model_file(data: bytes, manifest: Manifest, out_path: Path) -> Manifest:
    """Write a model file (an ONNX, a TensorRT plan) atomically, then its sidecar manifest with
    the file's sha256; returns that manifest."""
    write_bytes_atomic(out_path, data)
    assert manifest.artifact is not None
    final = manifest.replace(
        artifact=ArtifactSpec(
            file=manifest.artifact.file,
            kind=manifest.artifact.kind,
            precision=manifest.artifact.precision,
            sha256=file_sha256(out_path),
        )
    )
    save_manifest(final, sidecar_path(out_path))
    return final


def load_source_model(path: Path) -> Any:
    """The ONNX at `path`, with a clear error for files that are not ONNX, and every node named."""
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf raises several kinds for files that are not ONNX
        raise JetkitError(f"{path} is not an ONNX model ({type(exc).__name__})") from None
    name_unnamed_nodes(model)
    return model


def name_unnamed_nodes(model_proto: Any) -> None:
    """Give every unnamed node a unique name (`<op>_<index>`), in place: the converters name the
    nodes they insert after the nodes they touch, and duplicate names make a model invalid."""
    for index, node in enumerate(model_proto.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{index}"
