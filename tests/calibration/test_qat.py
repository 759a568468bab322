"""`--qat` finds the checkpoint a jetkit export came from where users keep it, or says how to
give it."""

import pytest

from calibration.qat import _qat_checkpoint
from edge.errors import JetkitError
from edge.manifest import InputSpec, Manifest, OutputSpec


def exported_from(recorded):
    return Manifest(
        input=InputSpec(shape=(1, 3, 64, 64)),
        output=OutputSpec(format="yolov8", strides=(8, 16, 32)),
        classes=("a",),
        provenance={} if recorded is None else {"checkpoint": recorded},
    )


@pytest.mark.parametrize("kept_in", ["run", "export"])
def test_the_recorded_checkpoint_is_found_in_the_run_or_beside_the_export(kept_in, tmp_path):
    model = tmp_path / "student" / "onnx" / "model.onnx"
    model.parent.mkdir(parents=True)
    folder = model.parent.parent if kept_in == "run" else model.parent
    (folder / "best.pt").write_bytes(b"weights")
    # Recorded relative to wherever `jetkit export` ran: not a path from here.
    found = _qat_checkpoint(None, exported_from("runs/student/best.pt"), model)
    assert found == folder / "best.pt"


def test_a_given_checkpoint_wins_and_a_missing_one_is_named(tmp_path):
    given = tmp_path / "mine.pt"
    given.write_bytes(b"weights")
    model = tmp_path / "model.onnx"
    assert _qat_checkpoint(str(given), exported_from("elsewhere.pt"), model) == given
    with pytest.raises(JetkitError, match="--checkpoint .*none.pt does not exist"):
        _qat_checkpoint(str(tmp_path / "none.pt"), exported_from("elsewhere.pt"), model)
    with pytest.raises(JetkitError, match="elsewhere.pt that .* is not found: pass --checkpoint"):
        _qat_checkpoint(None, exported_from("elsewhere.pt"), model)
    with pytest.raises(JetkitError, match="records no training checkpoint"):
        _qat_checkpoint(None, exported_from(None), model)
