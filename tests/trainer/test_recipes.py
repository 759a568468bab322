"""Recipes: the plain and the distilled student differ only by the teacher, and every recipe's
student is about a quarter of its teacher (`t` of `n`: 26 % of the parameters)."""

from trainer.model import DetectionModel, ModelConfig, count_gflops, count_parameters
from trainer.recipes import RECIPES


def test_plain_and_distilled_students_share_everything_but_the_teacher():
    for recipe in RECIPES.values():
        plain = recipe.student_config("data.yaml", "out", seed=1).to_dict()
        distilled = recipe.student_config("data.yaml", "out", seed=1, teacher="t.pt").to_dict()
        assert distilled.pop("teacher") == "t.pt" and distilled.pop("distill") is not None
        assert plain.pop("teacher") is None and plain.pop("distill") is None
        assert plain == distilled


def test_each_student_is_about_a_quarter_of_its_teachers_size():
    for recipe in RECIPES.values():
        hw = (recipe.imgsz, recipe.imgsz)
        student = DetectionModel(ModelConfig(6, recipe.student_model))
        teacher = DetectionModel(ModelConfig(6, recipe.teacher_model))
        assert count_parameters(student) <= 0.3 * count_parameters(teacher)
        assert count_gflops(student, hw) <= 0.3 * count_gflops(teacher, hw)
