"""The trainer verbs: `jetkit train`, `distill`, `eval`, `export`.

Only argparse at import time (the console script loads every verb); torch loads in the handlers.
`--nproc N` re-runs the same command under `torchrun` with N processes (DDP).
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from edge.cli import stderr_log
from edge.errors import JetkitError


def _add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="data.yaml (YOLO format or COCO json splits), or its folder")
    parser.add_argument(
        "--model",
        default="n",
        help="size of the detector family: n, s, m, l at the compute of YOLOv8n/s/m/l, or t, "
        "a quarter of n (default n)",
    )
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--imgsz", type=int, default=320, help="square input size, multiple of 32")
    parser.add_argument("--batch", type=int, default=16, help="images per step, over all processes")
    parser.add_argument(
        "--out", default=None, help="run folder (best.pt, last.pt, results.csv, plots)"
    )
    parser.add_argument("--exist-ok", action="store_true", help="overwrite a finished run in --out")
    parser.add_argument(
        "--resume", metavar="CKPT", help="continue the run that wrote CKPT (last.pt)"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--nproc", type=int, default=1, help="processes for DDP (via torchrun)")
    parser.add_argument("--workers", type=int, default=0, help="data-loading worker processes")
    parser.add_argument("--seed", type=int, default=0)
    opt = parser.add_argument_group("optimisation")
    opt.add_argument(
        "--optimizer",
        default="auto",
        help="auto, adamw or sgd; auto (Ultralytics' rule): SGD for runs over 10000 steps",
    )
    opt.add_argument(
        "--lr", type=float, default=None, help="peak learning rate (AdamW 2e-3, SGD 0.01)"
    )
    opt.add_argument(
        "--weight-decay",
        type=float,
        default=None,
        help="(AdamW 0.05, SGD 5e-4 at --nominal-batch 64)",
    )
    opt.add_argument(
        "--nominal-batch",
        type=int,
        default=0,
        help="accumulate gradients to this batch, scale weight decay (Ultralytics' nbs; 0: off)",
    )
    opt.add_argument("--warmup-epochs", type=float, default=3.0)
    opt.add_argument("--final-lr-ratio", type=float, default=0.05, help="cosine floor / peak")
    opt.add_argument("--grad-clip", type=float, default=10.0, help="max gradient norm")
    opt.add_argument("--ema-tau", type=float, default=500.0, help="EMA warm-up in steps")
    opt.add_argument(
        "--patience",
        type=int,
        default=15,
        help="early stop after N epochs without a better mAP50-95 (0: never)",
    )
    opt.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    opt.add_argument("--box-loss", default="ciou", help="ciou, diou or giou")
    opt.add_argument(
        "--reg-max",
        type=int,
        default=1,
        help="bins per box side: 1 (one distance) or 16 (YOLOv8's distribution focal loss)",
    )
    opt.add_argument(
        "--save-period", type=int, default=0, help="also keep epochN.pt every N epochs"
    )
    aug = parser.add_argument_group("augmentation and transfer learning")
    aug.add_argument("--mosaic", type=float, default=1.0, help="mosaic probability")
    aug.add_argument("--scale", type=float, default=0.5, help="random scale gain (1 +- scale)")
    aug.add_argument("--translate", type=float, default=0.1, help="random shift, input fraction")
    aug.add_argument("--fliplr", type=float, default=0.5, help="left-right flip probability")
    aug.add_argument("--hsv", default="0.015,0.7,0.4", help="hue,saturation,value gains")
    aug.add_argument("--close-mosaic", type=int, default=10, help="no mosaic in the last N epochs")
    aug.add_argument("--weights", help="start from this checkpoint (tensors of matching shape)")
    aug.add_argument("--freeze", type=int, default=0, help="freeze the stem + first K-1 stages")


def _add_distill_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("distillation")
    group.add_argument(
        "--teacher",
        help="the teacher: a jetkit checkpoint (best.pt), or any model `jetkit run` opens (an ONNX "
        "of the yolov8/yolov5/yolox formats, e.g. an Ultralytics export, or a TensorRT engine); "
        "classes match by name",
    )
    group.add_argument("--kd-temperature", type=float, default=2.0, help="logit KD temperature T")
    group.add_argument("--logit-weight", type=float, default=1.0)
    group.add_argument("--feature-weight", type=float, default=1.0)
    group.add_argument("--feature-mode", default="cwd", help="cwd, masked or none")
    group.add_argument("--cwd-tau", type=float, default=1.0)
    group.add_argument("--box-weight", type=float, default=1.0)
    group.add_argument(
        "--box-score-threshold",
        type=float,
        default=0.25,
        help="box distillation where the teacher scores above this (after its calibration)",
    )
    group.add_argument(
        "--no-teacher-calibration",
        action="store_true",
        help="read the teacher's scores as they are, instead of shifted so that its best-F1 "
        "confidence on the labelled val set reads as --box-score-threshold",
    )
    group.add_argument(
        "--distill-off-epochs",
        type=int,
        default=2,
        help="train without distillation for the last N epochs",
    )
    footage = parser.add_argument_group("unlabelled footage")
    footage.add_argument(
        "--unlabeled",
        metavar="DIR",
        help="footage without labels: a folder of images and/or videos (a `jetkit run` "
        "recording), or a video file; trains on the teacher's pseudo-labels. Without --data, "
        "every 10th frame is held out as the (teacher-labelled) validation",
    )
    footage.add_argument(
        "--every", type=int, default=1, help="use every N-th frame of videos (default 1)"
    )
    footage.add_argument(
        "--pseudo-threshold",
        type=float,
        help="teacher confidence for pseudo-labels (default: its best F1 on the labelled val "
        "set; 0.25 without one)",
    )
    footage.add_argument(
        "--cache-dir",
        help="where the teacher's outputs and extracted video frames are kept (default: "
        "$JETKIT_CACHE_DIR or ~/.cache/jetkit)",
    )


def _train_config(args: argparse.Namespace, distill: bool) -> Any:
    from trainer.config import TrainConfig
    from trainer.distill import DistillConfig
    from trainer.loss import LossConfig

    unlabeled = getattr(args, "unlabeled", None) if distill else None
    if not args.data and not unlabeled:
        raise JetkitError(
            f"jetkit {args.verb} needs --data (a data.yaml)"
            + (", --unlabeled DIR (footage)" if distill else "")
            + ", or --resume CKPT"
        )
    distill_config = None
    if distill:
        if not args.teacher:
            raise JetkitError(
                "jetkit distill needs --teacher MODEL (a jetkit best.pt, an ONNX model or a "
                "TensorRT engine)"
            )
        distill_config = DistillConfig(
            temperature=args.kd_temperature,
            logit_weight=args.logit_weight,
            feature_weight=args.feature_weight,
            feature_mode=args.feature_mode,
            cwd_tau=args.cwd_tau,
            box_weight=args.box_weight,
            box_kind=args.box_loss,
            box_score_threshold=args.box_score_threshold,
            off_epochs=args.distill_off_epochs,
            calibrate=not args.no_teacher_calibration,
        )
    return TrainConfig(
        data=args.data,
        out=args.out or f"runs/{args.verb}",
        model=args.model,
        reg_max=args.reg_max,
        epochs=args.epochs,
        imgsz=args.imgsz,
        batch=args.batch,
        optimizer=args.optimizer,
        lr=args.lr,
        weight_decay=args.weight_decay,
        nominal_batch=args.nominal_batch,
        warmup_epochs=args.warmup_epochs,
        final_lr_ratio=args.final_lr_ratio,
        grad_clip=args.grad_clip,
        ema_tau=args.ema_tau,
        patience=args.patience,
        close_mosaic=args.close_mosaic,
        augment=_augment_config(args),
        freeze=args.freeze,
        weights=args.weights,
        seed=args.seed,
        workers=args.workers,
        device=args.device,
        amp=not args.no_amp,
        save_period=args.save_period,
        loss=LossConfig(box_kind=args.box_loss),
        teacher=args.teacher if distill else None,
        distill=distill_config,
        unlabeled=unlabeled,
        every=args.every if distill else 1,
        pseudo_threshold=args.pseudo_threshold if distill else None,
        cache_dir=args.cache_dir if distill else None,
    )


def _augment_config(args: argparse.Namespace) -> Any:
    from trainer.augment import AugmentConfig

    try:
        hsv = tuple(float(v) for v in args.hsv.split(","))
    except ValueError:
        raise JetkitError(
            f"--hsv expects three numbers like 0.015,0.7,0.4, got {args.hsv!r}"
        ) from None
    return AugmentConfig(
        hsv_gains=hsv,  # type: ignore[arg-type]
        flip_lr=args.fliplr,
        scale=args.scale,
        translate=args.translate,
        mosaic=args.mosaic,
    )


def strip_option(argv: list[str], option: str) -> list[str]:
    """`argv` without `option VALUE` / `option=VALUE`."""
    out, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == option:
            skip = True
        elif not item.startswith(option + "="):
            out.append(item)
    return out


def check_host_name_resolves(host_name: str) -> None:
    """torchrun's rendezvous looks up this machine's own name and, where it does not resolve,
    waits minutes without a word (seen on a debootstrapped Debian, whose /etc/hosts lacks it)."""
    try:
        socket.getaddrinfo(host_name, None)
    except (socket.gaierror, UnicodeError):
        raise JetkitError(
            f"this machine's host name {host_name!r} does not resolve, and DDP (--nproc) needs "
            f"it to; add `127.0.1.1 {host_name}` to /etc/hosts, or train with --nproc 1"
        ) from None


def _run_under_torchrun(args: argparse.Namespace) -> int:
    """Re-run this very command with `--nproc` removed, as N ranks of torchrun."""
    if args.nproc < 1:
        raise JetkitError(f"--nproc must be >= 1, got {args.nproc}")
    check_host_name_resolves(socket.gethostname())
    argv = strip_option(sys.argv[1:], "--nproc")
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={args.nproc}",
        "-m",
        "trainer",
        *argv,
    ]
    return subprocess.run(command, check=False).returncode


def _train(args: argparse.Namespace, distill: bool) -> int:
    if args.nproc != 1:
        return _run_under_torchrun(args)
    from trainer.engine import resume, train

    if args.resume:
        result = resume(args.resume)
    else:
        result = train(_train_config(args, distill), exist_ok=args.exist_ok)
    if result.metrics:
        print(
            json.dumps(
                {
                    "best": str(result.best_path),
                    **{k: result.metrics[k] for k in ("map50_95", "map50", "best_epoch", "epochs")},
                }
            )
        )
    return 0


def register_train(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a detector of the jetkit family on a data set",
        description="Train one size of the detector family (AMP on CUDA, EMA, warm-up + cosine, "
        "early stopping on mAP50-95). Writes best.pt/last.pt, results.csv and PNG plots.",
    )
    _add_train_arguments(parser)
    parser.set_defaults(handler=lambda args: _train(args, distill=False))


def register_distill(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "distill",
        help="train a small student with a trained teacher's knowledge",
        description="Train a student (--model) with logit, feature (neck P3-P5) and box "
        "distillation from a frozen teacher; only the student is saved.",
    )
    _add_train_arguments(parser)
    _add_distill_arguments(parser)
    parser.set_defaults(handler=lambda args: _train(args, distill=True))


def _eval(args: argparse.Namespace) -> int:
    from edge.datasets import load_dataset
    from edge.evaluate import format_table

    dataset = load_dataset(args.data, splits=(args.split,))
    samples = dataset.val if args.split == "val" else dataset.train
    model_path = Path(args.model)
    if model_path.suffix in (".pt", ".pth") or model_path.is_dir():
        result = _eval_checkpoint(model_path, dataset.names, samples, args)
    else:
        from edge.detector import Detector
        from edge.evaluate import EVAL_THRESHOLDS, evaluate_detector

        detector = Detector.open(model_path, **EVAL_THRESHOLDS.detector_options())
        result = evaluate_detector(detector, samples, names=dataset.names)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(format_table(result))
    return 0


def _eval_checkpoint(path: Path, names: Any, samples: Any, args: argparse.Namespace) -> Any:
    from trainer.checkpoint import load_checkpoint, model_from_checkpoint, preprocess_of
    from trainer.engine import select_device
    from trainer.validate import validate

    checkpoint = load_checkpoint(path)
    if list(checkpoint["names"]) != list(names):
        raise JetkitError(
            f"{path} predicts classes {checkpoint['names']} but {args.data} has {list(names)}; "
            "evaluate on the model's data set"
        )
    device = select_device(args.device)
    model = model_from_checkpoint(checkpoint).to(device)
    input_hw = (args.imgsz, args.imgsz) if args.imgsz else tuple(checkpoint["imgsz"])
    return validate(model, samples, names, input_hw, preprocess_of(checkpoint), args.batch, device)


def register_eval(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="COCO mAP of a checkpoint or any ONNX/engine artifact on a data set",
        description="COCO mAP50-95/mAP50 (pycocotools), per class, precision and recall. ONNX "
        "and engine artifacts run through the edge runtime, so FP32, FP16 and INT8 are measured "
        "the same way as checkpoints.",
    )
    parser.add_argument("model", help="checkpoint (.pt), ONNX model or TensorRT engine")
    parser.add_argument("--data", required=True, help="data.yaml or COCO json")
    parser.add_argument("--split", choices=("val", "train"), default="val")
    parser.add_argument("--imgsz", type=int, help="checkpoints only: input size (default: trained)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--json", action="store_true", help="print JSON (map50_95, map50, per_class)"
    )
    parser.set_defaults(handler=_eval)


def _parity_images(args: argparse.Namespace) -> list[Path]:
    from edge.images import list_images

    if args.images:
        return list_images([args.images])
    data = args.data
    if data is None:
        from trainer.checkpoint import load_checkpoint

        dataset_path = load_checkpoint(args.checkpoint).get("provenance", {}).get("dataset")
        if dataset_path and Path(dataset_path).exists():
            data = dataset_path
    if data is None:
        raise JetkitError(
            "the parity check needs real images: pass --images DIR or --data DATA (the "
            "checkpoint's data set is not on this machine)"
        )
    from edge.datasets import load_dataset

    return [sample.image_path for sample in load_dataset(data, splits=("val",)).val]


def _export(args: argparse.Namespace) -> int:
    from trainer.export import export_checkpoint

    if args.max_batch is not None and args.max_batch < 1:
        raise JetkitError(f"--max-batch must be >= 1, got {args.max_batch}")
    result = export_checkpoint(
        args.checkpoint,
        args.out,
        _parity_images(args),
        imgsz_hw=(args.imgsz, args.imgsz) if args.imgsz else None,
        dynamic_batch=args.dynamic_batch,
        max_batch=args.max_batch or (8 if args.dynamic_batch else 1),
        opset=args.opset,
        tolerance=args.tolerance,
        log=stderr_log,
    )
    print(f"wrote {result.onnx_path} and {result.manifest_path}")
    return 0


def register_export(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a checkpoint to ONNX with its manifest, checked against torch",
        description="ONNX (yolov8 output layout, simplified with onnxslim), the manifest embedded "
        "and as model.json; fails if ONNX Runtime disagrees with torch on real images.",
    )
    parser.add_argument("checkpoint", help="best.pt / last.pt of a jetkit run")
    parser.add_argument("--out", required=True, help="folder for model.onnx and model.json")
    parser.add_argument("--imgsz", type=int, help="input size (default: the trained size)")
    parser.add_argument("--dynamic-batch", action="store_true", help="batch 1..--max-batch")
    parser.add_argument("--max-batch", type=int, help="largest batch (default 8 dynamic, else 1)")
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--images", help="folder of images for the parity check")
    parser.add_argument("--data", help="data set whose val images feed the parity check")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=1e-4,
        help="largest relative error of ONNX Runtime against torch",
    )
    parser.set_defaults(handler=_export)
