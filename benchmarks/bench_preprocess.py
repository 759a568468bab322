"""Frame → 640×640 letterboxed float32 NCHW input: `edge.preprocess.Preprocessor` vs plain OpenCV.

Ours: `Preprocessor(PreprocessSpec(), (640, 640))([frame])` with the default (Ultralytics) spec:
letterbox centred, pad 114, RGB, scale 1/255. Anchor, in the same run on the same frame:
`cv2.resize` (INTER_LINEAR) + `cv2.copyMakeBorder` (pad 114, top/bottom and left/right exactly
as Ultralytics `LetterBox` computes them) + `cv2.dnn.blobFromImage(img, 1/255, swapRB=True)`.
One OpenCV thread (`cv2.setNumThreads(1)`) for both.

Frames (BGR uint8, deterministic): 1920×1080 (the target row), plus 1280×720 and a portrait
1080×1920. Target: ours <= 1/3 of the OpenCV path's median time on the 1920×1080 frame.
Correctness: the two tensors must be identical (`np.array_equal`; exit 1 otherwise); the table
also gives the largest absolute difference.
"""

from __future__ import annotations

import sys

import cv2
import numpy as np
from _common import environment, finish, interleaved, median, parse_args, report, table

from edge.bench import synthetic_frame
from edge.manifest import PreprocessSpec
from edge.preprocess import Preprocessor

INPUT_HW = (640, 640)
PAD = 114
FRAMES_WH = ((1920, 1080), (1280, 720), (1080, 1920))


def opencv_letterbox(frame: np.ndarray) -> np.ndarray:
    """Ultralytics `LetterBox` (auto=False, centre) with OpenCV, then `blobFromImage`."""
    height, width = frame.shape[:2]
    in_h, in_w = INPUT_HW
    ratio = min(in_h / height, in_w / width)
    new_w, new_h = int(round(width * ratio)), int(round(height * ratio))
    dw, dh = (in_w - new_w) / 2, (in_h - new_h) / 2
    img = frame
    if (width, height) != (new_w, new_h):
        img = cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    img = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD,) * 3)
    return cv2.dnn.blobFromImage(img, 1 / 255, swapRB=True)


def main() -> int:
    args = parse_args(__doc__, default_repeats=30)
    cv2.setNumThreads(1)
    preprocessor = Preprocessor(PreprocessSpec(), INPUT_HW, max_batch=1)
    rows, results, all_ok = [], [], True
    for size_wh in FRAMES_WH:
        frame = synthetic_frame(size_wh, seed=1)
        mine = np.array(preprocessor([frame])[0])  # the call returns a reused buffer's view
        theirs = opencv_letterbox(frame)
        equal = mine.shape == theirs.shape and np.array_equal(mine, theirs)
        diff = float(np.abs(mine - theirs).max()) if mine.shape == theirs.shape else float("inf")
        all_ok &= equal
        times = interleaved(
            {
                "ours": lambda f=frame: preprocessor([f]),
                "opencv": lambda f=frame: opencv_letterbox(f),
            },
            args.repeats,
            number=5,
        )
        ours_ms, cv_ms = median(times["ours"]), median(times["opencv"])
        label = f"{size_wh[0]}x{size_wh[1]}"
        rows.append([label, ours_ms, cv_ms, ours_ms / cv_ms, equal, f"{diff:.3g}"])
        results.append(
            {
                "frame_wh": list(size_wh),
                "ours_ms": ours_ms,
                "opencv_ms": cv_ms,
                "ratio": ours_ms / cv_ms,
                "identical": equal,
                "max_abs_diff": diff,
                "samples_ms": times,
            }
        )
    env = environment("numpy", "cv2")
    report(
        f"BGR uint8 frame -> (1,3,640,640) float32 letterbox, 1 OpenCV thread; medians of "
        f"{args.repeats} interleaved repeats (target: ours/OpenCV <= 0.333 at 1920x1080)",
        env,
        table(["frame", "ours ms", "OpenCV ms", "ours/OpenCV", "identical", "max abs diff"], rows),
    )
    return finish(args, {"benchmark": "preprocess", "environment": env, "frames": results}, all_ok)


if __name__ == "__main__":
    sys.exit(main())
