"""MOTChallenge text files and sequence folders (the MOT17/MOT20 layout), read and written.

A sequence folder holds `seqinfo.ini` (`[Sequence]` name, imDir, frameRate, seqLength, imWidth,
imHeight, imExt), its frames in `img1/` (000001.jpg …), `gt/gt.txt` and, for MOT17/MOT20's public
detections, `det/det.txt`. Every row is `frame,id,bb_left,bb_top,bb_width,bb_height,conf,x,y,z`
with frames counted from 1; ground truth puts `consider` (0 or 1), `class` and `visibility` in
the last three columns, tracker output and detections -1 there.
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import JetkitError

# MOT17/MOT20 ground truth: only pedestrians (class 1) are scored.
MOT_PEDESTRIAN = 1
# Person on vehicle, static person, distractor, reflection: a tracker's box on one of these is
# neither right nor wrong (MOTChallenge's devkit and TrackEval drop it before scoring).
MOT_DISTRACTORS = (2, 7, 8, 12)
COLUMNS = 10


def read_mot_rows(path: str | Path) -> np.ndarray:
    """A MOT text file → `(N,10)` float64 rows (6 to 10 columns given; missing ones -1)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise JetkitError(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise JetkitError(f"{path} cannot be read ({exc})") from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = [f for f in line.replace(" ", "").split(",") if f != ""]
        if not fields:
            continue
        try:
            values = [float(f) for f in fields]
        except ValueError:
            values = []
        if not 6 <= len(values) <= COLUMNS or not np.isfinite(values).all():
            raise JetkitError(
                f"{path}:{number}: expected 6 to 10 numbers `frame,id,left,top,width,height,"
                f"conf,…`, got {line.strip()[:80]!r}"
            )
        rows.append(values + [-1.0] * (COLUMNS - len(values)))
    return np.array(rows, dtype=np.float64).reshape(-1, COLUMNS)


def write_mot_rows(path: str | Path, rows: np.ndarray) -> None:
    """`(N,≥7)` rows as a MOT text file (written atomically), frame and id as integers, the
    rest to a thousandth."""
    from edge.atomic import write_text_atomic

    lines = []
    for row in rows:
        values = list(row[:COLUMNS]) + [-1.0] * (COLUMNS - len(row))
        head = f"{int(values[0])},{int(values[1])}"
        lines.append(head + "".join(f",{round(float(v), 3):g}" for v in values[2:]) + "\n")
    write_text_atomic(Path(path), "".join(lines))


def frame_indices(rows: np.ndarray) -> dict[int, np.ndarray]:
    """`rows (N,≥1)` → {frame: the indices of its rows, ascending}, with one sort for all frames
    (a sequence has thousands)."""
    if not len(rows):
        return {}
    frames = rows[:, 0].astype(np.int64)
    order = np.argsort(frames, kind="stable")
    values, starts = np.unique(frames[order], return_index=True)
    return dict(zip(values.tolist(), np.split(order, starts[1:]), strict=True))


def rows_xyxy(rows: np.ndarray) -> np.ndarray:
    """`(N,10)` rows → `(N,4)` corners."""
    left, top, width, height = rows[:, 2], rows[:, 3], rows[:, 4], rows[:, 5]
    return np.stack((left, top, left + width, top + height), axis=1)


def tracks_to_rows(frame: int, ids: np.ndarray, xyxy: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """One frame's tracks → `(T,10)` tracker-output rows (`frame` counted from 1)."""
    width, height = xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]
    rows = np.full((len(ids), COLUMNS), -1.0)
    rows[:, 0], rows[:, 1] = frame, ids
    rows[:, 2], rows[:, 3], rows[:, 4], rows[:, 5] = xyxy[:, 0], xyxy[:, 1], width, height
    rows[:, 6] = scores
    return rows


@dataclass(frozen=True)
class MotSequence:
    """A sequence folder: its frames (in order), rate, size, and its ground truth and public
    detections where present (`(N,10)` rows, or None)."""

    name: str
    frames: tuple[Path, ...]
    frame_rate: float
    size_wh: tuple[int, int]
    gt: np.ndarray | None
    det: np.ndarray | None


def read_sequence(folder: str | Path) -> MotSequence:
    folder = Path(folder)
    info_path = folder / "seqinfo.ini"
    parser = configparser.ConfigParser()
    try:
        parser.read_string(info_path.read_text(encoding="utf-8"))
        info = parser["Sequence"]
        name = info.get("name", folder.name)
        image_dir = folder / info.get("imDir", "img1")
        extension = info.get("imExt", ".jpg")
        frame_rate = float(info["frameRate"])
        length = int(info["seqLength"])
        size_wh = (int(info["imWidth"]), int(info["imHeight"]))
    except FileNotFoundError:
        raise JetkitError(
            f"{folder} is not a MOTChallenge sequence: it has no seqinfo.ini (MOT17/MOT20 layout: "
            "seqinfo.ini, img1/, gt/gt.txt)"
        ) from None
    except (configparser.Error, KeyError, ValueError) as exc:
        raise JetkitError(f"{info_path} is not a valid seqinfo.ini ({exc})") from None
    frames = tuple(image_dir / f"{k:06d}{extension}" for k in range(1, length + 1))
    missing = [f for f in frames if not f.is_file()]
    if missing:
        raise JetkitError(
            f"{folder}: {len(missing)} of the {length} frames seqinfo.ini lists are missing, "
            f"the first {missing[0]}"
        )
    gt_path, det_path = folder / "gt" / "gt.txt", folder / "det" / "det.txt"
    return MotSequence(
        name,
        frames,
        frame_rate,
        size_wh,
        read_mot_rows(gt_path) if gt_path.is_file() else None,
        read_mot_rows(det_path) if det_path.is_file() else None,
    )


def find_sequences(paths: list[Path]) -> list[Path]:
    """Sequence folders: each path that is one (has seqinfo.ini), or the ones directly in it
    (MOT17/train); a path that is neither is an error naming it."""
    found: list[Path] = []
    for path in paths:
        if (path / "seqinfo.ini").is_file():
            found.append(path)
            continue
        inside = sorted(p for p in path.iterdir() if (p / "seqinfo.ini").is_file()) if path.is_dir() else []
        if not inside:
            raise JetkitError(
                f"{path} is neither a MOTChallenge sequence nor a folder of them (each has a "
                "seqinfo.ini, img1/ and, to be scored, gt/gt.txt)"
            )
        found += inside
    return found


def drop_distractor_matches(gt: np.ndarray, hypotheses: np.ndarray) -> np.ndarray:
    """`hypotheses` less the boxes that match (IoU >= 0.5, one-to-one by the Hungarian method
    per frame, against every ground-truth row) an object of a distractor class, as TrackEval's
    MOTChallenge loader drops them."""
    from edge.analytics.assignment import assign
    from edge.boxes import pairwise_iou

    keep = np.ones(len(hypotheses), bool)
    g_frames, h_frames = frame_indices(gt), frame_indices(hypotheses)
    for frame in np.unique(gt[np.isin(gt[:, 7], MOT_DISTRACTORS), 0]).astype(np.int64).tolist():
        g_at, h_at = g_frames[frame], h_frames.get(frame)
        if h_at is None:
            continue
        iou = pairwise_iou(rows_xyxy(gt[g_at]), rows_xyxy(hypotheses[h_at]))
        pairs, _, _ = assign(1 - iou, 0.5)
        on_distractor = np.isin(gt[g_at[pairs[:, 0]], 7], MOT_DISTRACTORS)
        keep[h_at[pairs[on_distractor, 1]]] = False
    return hypotheses[keep]


def scored_gt(gt: np.ndarray, classes: tuple[int, ...] = (MOT_PEDESTRIAN,)) -> np.ndarray:
    """The ground-truth rows that count: `consider` set and of `classes` (MOT17/MOT20 score
    pedestrians only). Synthetic ground truth with class -1 counts whole."""
    consider = gt[:, 6] != 0
    of_class = np.isin(gt[:, 7], classes) | (gt[:, 7] == -1)
    return gt[consider & of_class]
