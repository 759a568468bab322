"""Validation data for the calibration tests: blob scenes the sample detector finds."""

import cv2
import numpy as np
import pytest

from edge.samples import BLOB_CLASSES, draw_blob_scene


@pytest.fixture(scope="module")
def blob_val(tmp_path_factory):
    """Twelve blob scenes as a YOLO data set, boxes known exactly."""
    root = tmp_path_factory.mktemp("blobs")
    rng = np.random.default_rng(1)
    for i in range(12):
        (root / "images").mkdir(exist_ok=True)
        (root / "labels").mkdir(exist_ok=True)
        lines, boxes = [], {}
        for k, name in enumerate(BLOB_CLASSES):
            if rng.random() < 0.7:
                x, y = (int(v) for v in rng.integers(0, 420, 2))
                w, h = (int(v) for v in rng.integers(60, 200, 2))
                boxes[name] = (x, y, x + w, y + h)
                lines.append(f"{k} {(x + w / 2) / 640} {(y + h / 2) / 640} {w / 640} {h / 640}\n")
        cv2.imwrite(str(root / "images" / f"s{i}.png"), draw_blob_scene((640, 640), boxes, seed=i))
        (root / "labels" / f"s{i}.txt").write_text("".join(lines))
    names = ", ".join(BLOB_CLASSES)
    (root / "data.yaml").write_text(f"train: images\nval: images\nnames: [{names}]\n")
    return root / "data.yaml"
