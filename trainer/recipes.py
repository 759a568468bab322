"""Whole teacher → student experiments on the built-in data set, one object each: the schedules
`jetkit demo` runs (`default`, `quick`) and the one the distillation benchmark measures
(`demo`)."""

from __future__ import annotations

from dataclasses import dataclass

from trainer.config import TrainConfig
from trainer.distill import DistillConfig
from trainer.synth import SynthConfig


@dataclass(frozen=True)
class Recipe:
    name: str
    synth: SynthConfig
    imgsz: int
    batch: int
    teacher_model: str
    teacher_epochs: int
    student_model: str
    student_epochs: int
    distill: DistillConfig = DistillConfig()

    def teacher_config(self, data: str, out: str, seed: int = 0) -> TrainConfig:
        return self._config(data, out, seed, self.teacher_model, self.teacher_epochs)

    def student_config(
        self, data: str, out: str, seed: int = 0, teacher: str | None = None
    ) -> TrainConfig:
        """The plain student without `teacher`; the distilled one, same schedule, with it."""
        distill = self.distill if teacher else None
        return self._config(
            data, out, seed, self.student_model, self.student_epochs, teacher, distill
        )

    def _config(
        self,
        data: str,
        out: str,
        seed: int,
        model: str,
        epochs: int,
        teacher: str | None = None,
        distill: DistillConfig | None = None,
    ) -> TrainConfig:
        # A fixed schedule (no early stop) so that runs of one recipe compare epoch for epoch.
        return TrainConfig(
            data=data,
            out=out,
            model=model,
            epochs=epochs,
            imgsz=self.imgsz,
            batch=self.batch,
            seed=seed,
            patience=0,
            teacher=teacher,
            distill=distill,
        )


# `jetkit demo`'s default: the chain in about 6 minutes on 2 CPU cores (teacher 2.2 min, plain
# student 1.2, distilled 1.7; BENCHMARKS.md, "the demo on the new defaults"). With the class
# prior and YOLOv8's schedule the teacher reaches mAP50-95 0.150 and the plain student 0.082, but
# the distilled one 0.079: on this short schedule, with a teacher this weak, distillation no
# longer shows a gain (with a teacher `s` well ahead of its student it adds 3.9 points to `n`:
# BENCHMARKS.md, "jetkit against Ultralytics YOLOv8n with the teacher").
DEFAULT = Recipe(
    name="default",
    synth=SynthConfig(train_images=300, val_images=75, imgsz=224, seed=0),
    imgsz=224,
    batch=16,
    teacher_model="n",
    teacher_epochs=20,
    student_model="t",
    student_epochs=20,
)
# The distillation benchmark's schedule (`bench_distill.py`): about 35 minutes on 2 cores.
DEMO = Recipe(
    name="demo",
    synth=SynthConfig(train_images=400, val_images=100, imgsz=256, seed=0),
    imgsz=256,
    batch=16,
    teacher_model="n",
    teacher_epochs=30,
    student_model="t",
    student_epochs=30,
)
# `--quick`: the same chain in a few minutes; the numbers mean little.
QUICK = Recipe(
    name="quick",
    synth=SynthConfig(train_images=120, val_images=40, imgsz=192, seed=0),
    imgsz=192,
    batch=16,
    teacher_model="n",
    teacher_epochs=4,
    student_model="t",
    student_epochs=4,
)
RECIPES = {recipe.name: recipe for recipe in (DEFAULT, DEMO, QUICK)}
