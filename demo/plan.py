"""The demo's steps as `jetkit` command lines, decided up front from one settings object: the
whole chain from the built-in data set to a daemon serving the flashed release. Pure: a plan is
data that tests can read; `demo.runner` runs it.

Every stage runs as its own `jetkit` process, the way a user runs it, which also keeps torch,
GStreamer and ONNX Runtime out of one process (with torch loaded, then `Gst.init()`, an ONNX
Runtime loaded afterwards crashes when it raises).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from edge.errors import JetkitError

ARTIFACTS = ("fp32", "fp16", "int8")
GATED = ("fp16", "int8")
MODELS = ("teacher", "plain", "distilled")
RELEASE_NAME = "demo-detector"
# `jetkit calibrate`'s exit status when the accuracy gate refuses the artifact (errors are 2).
REFUSED_STATUS = 1
# What the refusal recommends, tried while the INT8 step has run less than its budget: the first
# try already chose the best range estimate on --val, so the student is fine-tuned for INT8
# (BENCHMARKS.md, "Quantization-aware fine-tuning": 1.42 points lost → 0.49 in two epochs).
INT8_RETRIES = (("2 epochs of quantization-aware fine-tuning (--qat 2)", ("--qat", "2")),)
INT8_RETRY_BUDGET_S = 300.0


@dataclass(frozen=True)
class DemoSettings:
    """One experiment: data set size and image size, the two detector sizes with their epochs,
    and how long the benchmarks and the daemon run. `recipe` names it in the summary."""

    recipe: str
    train_images: int
    val_images: int
    imgsz: int
    batch: int
    teacher_model: str
    teacher_epochs: int
    student_model: str
    student_epochs: int
    calib_images: int = 64
    bench_s: float = 3.0
    serve_s: float = 15.0
    stream: str = "test://?fps=15&size=640x480"
    seed: int = 0
    max_map_drop: float = 1.0  # the FP16/INT8 gate, mAP50-95 points against FP32

    def __post_init__(self) -> None:
        for name in ("train_images", "val_images", "batch", "teacher_epochs", "student_epochs"):
            if getattr(self, name) < 1:
                raise JetkitError(f"demo {name} must be >= 1, got {getattr(self, name)}")
        if self.imgsz < 64 or self.imgsz % 32:
            raise JetkitError(f"demo imgsz must be a multiple of 32, >= 64; got {self.imgsz}")
        if self.bench_s <= 0 or self.serve_s <= 0:
            raise JetkitError("demo bench_s and serve_s must be > 0")
        if not math.isfinite(self.max_map_drop):
            raise JetkitError(f"demo max_map_drop must be a number, got {self.max_map_drop}")

    @property
    def data_key(self) -> str:
        """The data set's folder name. A run with other settings writes its own data set beside
        the first, so switching recipes in one output folder works."""
        return f"{self.train_images}+{self.val_images}-{self.imgsz}px-seed{self.seed}"


@dataclass(frozen=True)
class Retry:
    """Another try of a refused step: what it changes, and its whole `argv`."""

    why: str
    argv: tuple[str, ...]


@dataclass(frozen=True)
class Step:
    """One command: `argv` after `jetkit`, its log file, and (for `serve`) how long it runs
    before it is stopped with SIGTERM.

    A gated step (`optional`) may be refused (exit REFUSED_STATUS): its `retries` are tried in
    turn while the step has run less than `retry_budget_s`, and if every try is refused the
    demo goes on without its output. A step that `needs` a refused step runs `instead` (or is
    skipped when that is None)."""

    key: str
    title: str
    argv: tuple[str, ...]
    run_s: float | None = None
    stdout: Path | None = None
    optional: bool = False
    retries: tuple[Retry, ...] = ()
    retry_budget_s: float = 0.0
    needs: str | None = None
    instead: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Paths:
    out: Path
    data_key: str
    data: Path = field(init=False)
    device: Path = field(init=False)
    logs: Path = field(init=False)
    results: Path = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", self.out / "data" / self.data_key)
        object.__setattr__(self, "device", self.out / "device")
        object.__setattr__(self, "logs", self.out / "logs")
        object.__setattr__(self, "results", self.out / "results")

    def run(self, model: str) -> Path:
        return self.out / "runs" / model

    @property
    def onnx_dir(self) -> Path:
        return self.run("distilled") / "onnx"

    def artifact(self, precision: str) -> Path:
        names = {"fp32": "model.onnx", "fp16": "model-fp16.onnx", "int8": "model-int8.onnx"}
        return self.onnx_dir / names[precision]

    def gate_report(self, precision: str) -> Path:
        """Where `jetkit calibrate --val` puts an artifact's gate report (FP16, INT8)."""
        return self.artifact(precision).with_suffix(".gate.json")

    def try_report(self, precision: str, attempt: int) -> Path:
        """The gate report of one try (0: the first), written whether it passed or not."""
        return self.result(f"gate-{precision}" + (f"-retry{attempt}" if attempt else "") + ".json")

    @property
    def bundle(self) -> Path:
        return self.out / f"{RELEASE_NAME}.jkb"

    @property
    def serve_config(self) -> Path:
        return self.out / "serve.yaml"

    def result(self, name: str) -> Path:
        return self.results / name


def next_release_version(installed: Iterable[tuple[str, str]]) -> str:
    """`1.0.N`, N one past the highest demo release installed on the device (`(name, version)`
    pairs): every run flashes a new release, as a real update would, and the previous one stays
    to roll back to."""
    patches = [
        int(match.group(1))
        for name, version in installed
        if name == RELEASE_NAME and (match := re.fullmatch(r"1\.0\.(\d+)", version))
    ]
    return f"1.0.{max(patches) + 1}" if patches else "1.0.0"


def plan(settings: DemoSettings, paths: Paths, version: str = "1.0.0") -> list[Step]:
    """The demo's commands in order; the bundle is release `version` of `RELEASE_NAME`."""
    s, p = settings, paths
    data_yaml = str(p.data / "data.yaml")
    train = ("--data", data_yaml, "--imgsz", str(s.imgsz), "--batch", str(s.batch))
    fixed = ("--patience", "0", "--seed", str(s.seed), "--exist-ok")
    steps = [
        Step(
            "data",
            f"synthetic data set: {s.train_images} train / {s.val_images} val images",
            (
                "data",
                "synth",
                str(p.data),
                "--images",
                str(s.train_images),
                "--val",
                str(s.val_images),
                "--imgsz",
                str(s.imgsz),
                "--seed",
                str(s.seed),
            ),
        ),  # fmt: skip
        Step(
            "teacher",
            f"teacher ({s.teacher_model}, {s.teacher_epochs} epochs)",
            (
                "train",
                *train,
                "--model",
                s.teacher_model,
                "--epochs",
                str(s.teacher_epochs),
                "--out",
                str(p.run("teacher")),
                *fixed,
            ),
        ),  # fmt: skip
        Step(
            "plain",
            f"plain student ({s.student_model}, {s.student_epochs} epochs, no teacher)",
            (
                "train",
                *train,
                "--model",
                s.student_model,
                "--epochs",
                str(s.student_epochs),
                "--out",
                str(p.run("plain")),
                *fixed,
            ),
        ),  # fmt: skip
        Step(
            "distilled",
            f"distilled student ({s.student_model}, {s.student_epochs} epochs, from the teacher)",
            (
                "distill",
                *train,
                "--teacher",
                str(p.run("teacher") / "best.pt"),
                "--model",
                s.student_model,
                "--epochs",
                str(s.student_epochs),
                "--out",
                str(p.run("distilled")),
                *fixed,
            ),
        ),  # fmt: skip
    ]
    steps.append(
        Step(
            "eval",
            "COCO mAP of the distilled student, per class (jetkit eval)",
            ("eval", str(p.run("distilled") / "best.pt"), "--data", data_yaml, "--json"),
            stdout=p.result("eval-distilled.json"),
        )
    )
    gate = ("--val", data_yaml, "--max-map-drop", f"{s.max_map_drop:g}")
    steps += [
        Step(
            "export",
            "ONNX export of the distilled student (manifest embedded, checked against torch)",
            (
                "export",
                str(p.run("distilled") / "best.pt"),
                "--out",
                str(p.onnx_dir),
                "--dynamic-batch",
                "--max-batch",
                "4",
                "--data",
                data_yaml,
            ),
        ),  # fmt: skip
        Step(
            "fp16",
            "FP16 artifact through the accuracy gate",
            (
                "calibrate",
                str(p.artifact("fp32")),
                "--precision",
                "fp16",
                *gate,
                "--report",
                str(p.try_report("fp16", 0)),
            ),
            optional=True,
        ),
    ]
    int8 = (
        "calibrate", str(p.artifact("fp32")), "--precision", "int8", "--runtime", "cpu",
        "--data", data_yaml, "--images", str(s.calib_images), *gate,
    )  # fmt: skip
    steps.append(
        Step(
            "int8",
            f"INT8 artifact (ONNX Runtime's CPU format, {s.calib_images} calibration images) "
            "through the accuracy gate",
            (*int8, "--report", str(p.try_report("int8", 0))),
            optional=True,
            retries=tuple(
                Retry(why, (*int8, *extra, "--report", str(p.try_report("int8", k))))
                for k, (why, extra) in enumerate(INT8_RETRIES, 1)
            ),
            retry_budget_s=INT8_RETRY_BUDGET_S,
        )
    )
    for precision in ARTIFACTS:
        steps.append(
            Step(
                f"bench-{precision}",
                f"jetkit bench of the {precision.upper()} artifact",
                (
                    "bench",
                    str(p.artifact(precision)),
                    "--batch",
                    "1",
                    "--duration",
                    f"{s.bench_s:g}",
                    "--json",
                    str(p.result(f"bench-{precision}.json")),
                ),
                needs=precision if precision in GATED else None,
            )  # fmt: skip
        )

    def detect(precision: str) -> tuple[str, ...]:
        return (
            "detect", str(p.artifact(precision)), str(p.data / "images" / "val"),
            "--save", str(p.out / "samples"), "--json",
        )  # fmt: skip

    steps += [
        Step(
            "detect",
            "annotated sample frames (INT8 artifact; FP32 where INT8 was refused)",
            detect("int8"),
            stdout=p.result("detect.jsonl"),
            needs="int8",
            instead=detect("fp32"),
        ),
        Step(
            "bundle",
            "bundle of the artifacts that passed their gate, and FP32",
            (
                "bundle",
                str(p.onnx_dir),
                "-o",
                str(p.bundle),
                "--name",
                RELEASE_NAME,
                "--version",
                version,
            ),
        ),
        Step(
            "flash",
            "flash to a local device root (file://), the precision chosen for the device",
            (
                "flash",
                str(p.bundle),
                "--target",
                f"file://{p.device.resolve()}",
                "--precision",
                "auto",
                "--result-json",
                str(p.result("flash.json")),
            ),
        ),  # fmt: skip
        Step(
            "serve",
            f"jetkit serve on {s.stream} for {s.serve_s:g} s",
            ("serve", "--config", str(p.serve_config)),
            run_s=s.serve_s,
        ),
    ]
    return steps


def serve_config_text(settings: DemoSettings, paths: Paths) -> str:
    """The daemon's config: the flashed release's pointer, one synthetic stream, a summary."""
    return (
        f"model: {paths.device.resolve() / 'current'}\n"
        "streams:\n"
        f'  - {{uri: "{settings.stream}", id: cam0}}\n'
        f'sinks: ["jsonl://{paths.result("detections.jsonl").resolve()}"]\n'
        'http: {listen: "127.0.0.1:0"}\n'
        f"summary: {paths.result('serve-summary.json').resolve()}\n"
    )
