"""The edge verbs: `jetkit inspect`, `jetkit detect`, `jetkit bench`.

Only argparse at import time: the heavy modules load inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="ONNX model (.onnx) or TensorRT engine (.engine)")
    parser.add_argument(
        "--backend", choices=("onnxruntime", "tensorrt"), help="default: from the file type"
    )
    add_manifest_overrides(parser)


def add_manifest_overrides(parser: argparse.ArgumentParser) -> None:
    """`--format`, `--classes`, `--imgsz`: what a model without a manifest may need said (every
    verb that takes such a model has them; `overrides_from_args` reads them)."""
    group = parser.add_argument_group("manifest overrides (for models without a manifest)")
    group.add_argument(
        "--format",
        choices=("yolov8", "yolov5", "yolox", "end2end"),
        help="output format of the model",
    )
    group.add_argument(
        "--classes", help="class names: comma-separated, or a file with one per line"
    )
    group.add_argument("--imgsz", help="input size N or HxW, for models with a dynamic input size")


def _add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("ONNX Runtime")
    group.add_argument("--threads", type=int, help="intra-op threads (default: all cores)")
    group.add_argument(
        "--providers",
        help="execution providers in order, comma-separated (default: TensorRT, CUDA, CPU "
        "as available), e.g. CPUExecutionProvider",
    )


def overrides_from_args(args: argparse.Namespace) -> Any:
    from edge.models import Overrides, parse_classes, parse_imgsz

    return Overrides(
        format=args.format,
        classes=parse_classes(args.classes) if args.classes else None,
        imgsz_hw=parse_imgsz(args.imgsz) if args.imgsz else None,
    )


def _open_detector(args: argparse.Namespace, **kwargs: Any) -> Any:
    from edge.detector import Detector

    options: dict[str, Any] = {}
    if getattr(args, "threads", None) is not None:
        options["threads"] = args.threads
    if getattr(args, "providers", None):
        options["providers"] = [p.strip() for p in args.providers.split(",") if p.strip()]
    return Detector.open(
        args.model, args.backend, overrides_from_args(args), backend_options=options, **kwargs
    )


# --- inspect -----------------------------------------------------------------------------------


def register_inspect(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="print a model's manifest (inferred for third-party models)",
        description="Print the model's manifest: embedded, sidecar, or inferred from the model's "
        "metadata and tensor shapes (guessed fields are named).",
    )
    _add_model_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the manifest as JSON")
    parser.add_argument(
        "--write-sidecar",
        action="store_true",
        help="save the (inferred, overridden) manifest beside the model as <stem>.json",
    )
    parser.set_defaults(handler=run_inspect)


def run_inspect(args: argparse.Namespace) -> int:
    from edge.backends import open_backend
    from edge.errors import JetkitError
    from edge.manifest import save_manifest, sidecar_path
    from edge.models import inferred_note, resolve_manifest, sidecar_manifest

    try:
        backend = open_backend(args.model, args.backend)
    except JetkitError as exc:
        unchecked = sidecar_manifest(args.model, overrides_from_args(args))
        if unchecked is None:
            raise
        print(f"jetkit: note: showing the sidecar manifest unchecked: {exc}", file=sys.stderr)
        resolved = unchecked
    else:
        resolved = resolve_manifest(args.model, backend, overrides_from_args(args))
    manifest = resolved.manifest
    note = inferred_note(resolved)
    if note:
        print(note, file=sys.stderr)
    if args.json:
        print(manifest.to_json(), end="")
    else:
        print(describe_manifest(manifest, resolved.origin, resolved.source))
    if args.write_sidecar:
        path = save_manifest(manifest, sidecar_path(args.model))
        print(f"wrote {path}", file=sys.stderr)
    return 0


def describe_manifest(manifest: Any, origin: str, source: str | None) -> str:
    """Human-readable manifest summary."""
    inp, pre, out, post = manifest.input, manifest.preprocess, manifest.output, manifest.postprocess
    classes = ", ".join(manifest.classes[:12]) + (", …" if manifest.num_classes > 12 else "")
    artifact = manifest.artifact
    rows = [
        ("model", f"{manifest.name}  (manifest: {origin}{f' from {source}' if source else ''})"),
        (
            "input",
            f"{inp.name} {inp.dtype} {list(inp.shape)} {inp.layout}, "
            f"{'dynamic batch up to' if inp.dynamic_batch else 'static batch'} {inp.max_batch}",
        ),
        (
            "preprocess",
            f"{pre.resize} ({pre.pad_position}, pad {pre.pad_value}), {pre.color}, "
            f"scale {pre.scale:.6g}, mean {list(pre.mean)}, std {list(pre.std)}",
        ),
        (
            "output",
            f"{out.format} {list(out.names)}"
            + (f" strides {list(out.strides)}" if out.format == "yolox" else ""),
        ),
        ("classes", f"{manifest.num_classes}: {classes}"),
        (
            "postprocess",
            f"conf {post.conf_threshold} iou {post.iou_threshold} nms {post.nms} "
            f"max {post.max_detections}",
        ),
    ]
    if artifact:
        rows.append(
            (
                "artifact",
                f"{artifact.file} {artifact.kind} {artifact.precision} "
                f"sha256 {artifact.sha256 or '-'}",
            )
        )
    if manifest.target:
        target = manifest.target
        rows.append(
            (
                "target",
                f"TensorRT {target.tensorrt}, sm {target.compute_capability}, "
                f"L4T {target.l4t or '-'}, DLA {target.dla_core}",
            )
        )
    return "\n".join(f"{k:<12}{v}" for k, v in rows)


# --- detect ------------------------------------------------------------------------------------


def register_detect(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "detect",
        help="run a model on images",
        description="Detect objects in images or directories of images.",
    )
    _add_model_arguments(parser)
    parser.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR")
    parser.add_argument("--conf", type=float, help="confidence threshold (default: manifest, 0.25)")
    parser.add_argument("--iou", type=float, help="NMS IoU threshold (default: manifest, 0.45)")
    parser.add_argument(
        "--nms",
        choices=("class_aware", "agnostic", "diou", "soft"),
        help="NMS kind (default: manifest)",
    )
    parser.add_argument("--max-det", type=int, help="detections per image (default: manifest)")
    parser.add_argument("--json", action="store_true", help="one JSON object per image")
    parser.add_argument("--save", metavar="DIR", help="write annotated images to DIR")
    parser.add_argument(
        "--max-pixels",
        type=int,
        metavar="N",
        help="refuse images of more than N pixels, read from the file header before decoding "
        "(default: $JETKIT_MAX_IMAGE_PIXELS, else 100000000)",
    )
    _add_runtime_arguments(parser)
    parser.set_defaults(handler=run_detect)


def run_detect(args: argparse.Namespace) -> int:
    from edge.errors import JetkitError
    from edge.images import list_images, max_image_pixels, read_image

    max_pixels = max_image_pixels() if args.max_pixels is None else args.max_pixels
    if max_pixels < 1:
        raise JetkitError(f"--max-pixels must be a whole number of pixels >= 1, got {max_pixels}")
    paths = list_images(args.images)
    detector = _open_detector(
        args, conf=args.conf, iou=args.iou, nms=args.nms, max_detections=args.max_det
    )
    save_dir = Path(args.save) if args.save else None
    save_names = annotated_names(paths, save_dir) if save_dir is not None else []
    for start in range(0, len(paths), detector.max_batch):
        chunk = paths[start : start + detector.max_batch]
        frames = [read_image(p, max_pixels) for p in chunk]
        detected = detector.detect_batch(frames)
        for offset, (path, frame, detections) in enumerate(
            zip(chunk, frames, detected, strict=True)
        ):
            if args.json:
                print(
                    json.dumps({"image": str(path), "detections": detections.to_list()}), flush=True
                )
            else:
                print(_detections_line(path, detections), flush=True)
            if save_dir is not None:
                _save_annotated(save_dir / save_names[start + offset], frame, detections)
    return 0


def annotated_names(paths: list[Path], save_dir: Path) -> list[str]:
    """File names for the annotated copies: the input's name, `stem_1.ext` … on a clash. Saving
    into a folder that holds an input is refused: it would overwrite the originals."""
    from edge.errors import JetkitError

    target = save_dir.resolve()
    if any(p.resolve().parent == target for p in paths):
        raise JetkitError(
            f"--save {save_dir} holds input images that would be overwritten; choose another folder"
        )
    names: list[str] = []
    used: set[str] = set()
    for path in paths:
        name, counter = path.name, 0
        while name in used:
            counter += 1
            name = f"{path.stem}_{counter}{path.suffix}"
        used.add(name)
        names.append(name)
    return names


def _detections_line(path: Path, detections: Any) -> str:
    items = [
        f"{d['class_name']} {d['score']:.2f} [{', '.join(f'{v:.0f}' for v in d['xyxy'])}]"
        for d in detections.to_list()
    ]
    return f"{path}: {len(items)} detections" + (": " + "; ".join(items) if items else "")


def _save_annotated(path: Path, frame: Any, detections: Any) -> None:
    import cv2

    from edge.atomic import write_bytes_atomic
    from edge.draw import annotate
    from edge.errors import JetkitError

    image = annotate(
        frame, detections.xyxy, detections.scores, detections.names, detections.class_ids
    )
    suffix = (
        path.suffix.lower() if path.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp") else ".png"
    )
    ok, encoded = cv2.imencode(suffix, image)
    if not ok:
        raise JetkitError(f"cannot encode annotated image {path}")
    write_bytes_atomic(path.with_suffix(suffix), encoded.tobytes())


# --- bench -------------------------------------------------------------------------------------


def register_bench(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="measure model latency and throughput (trtexec-style report)",
        description="Benchmark a model: throughput, latency percentiles and per-stage times.",
    )
    _add_model_arguments(parser)
    parser.add_argument(
        "--batch", type=int, help="images per inference (default: the model's static batch, or 1)"
    )
    parser.add_argument(
        "--warmup-ms", type=float, default=200.0, help="warm-up time in ms (default 200)"
    )
    parser.add_argument(
        "--iterations", type=int, default=10, help="at least this many inferences (default 10)"
    )
    parser.add_argument(
        "--duration", type=float, default=3.0, help="at least this many seconds (default 3)"
    )
    _add_runtime_arguments(parser)
    parser.add_argument(
        "--json", metavar="FILE", help="also write the result as JSON ('-' for stdout)"
    )
    parser.set_defaults(handler=run_bench_command)


def run_bench_command(args: argparse.Namespace) -> int:
    from edge.atomic import write_text_atomic
    from edge.bench import BenchConfig, format_report, run_bench

    config = BenchConfig(
        batch=args.batch,
        warmup_ms=args.warmup_ms,
        iterations=args.iterations,
        duration_s=args.duration,
    )
    detector = _open_detector(args)
    result = run_bench(detector, config)
    text = json.dumps(result, indent=2) + "\n"
    if args.json == "-":
        print(text, end="")
        return 0
    print(format_report(result))
    if args.json:
        write_text_atomic(Path(args.json), text)
    return 0
