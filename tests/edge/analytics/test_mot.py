"""MOTChallenge files and sequence folders: rows read as MOT17 writes them, written back the same,
a sequence folder found whole, and broken ones named."""

import numpy as np
import pytest

from edge.analytics.mot import (
    read_mot_rows,
    read_sequence,
    rows_xyxy,
    scored_gt,
    tracks_to_rows,
    write_mot_rows,
)
from edge.errors import JetkitError

# Three MOT17-02 style ground-truth rows: a pedestrian, a static person (7), one not considered.
GT = """1,1,912,484,97,109,1,1,0.86
1,2,1338,418,167,379,1,7,1
2,1,914,484,97,109,0,1,0.9
"""


def make_sequence(folder, frames=3, gt=GT):
    (folder / "img1").mkdir(parents=True)
    for k in range(1, frames + 1):
        (folder / "img1" / f"{k:06d}.jpg").write_bytes(b"\xff\xd8")
    (folder / "gt").mkdir()
    (folder / "gt" / "gt.txt").write_text(gt)
    (folder / "seqinfo.ini").write_text(
        "[Sequence]\nname=MOT17-02-SDP\nimDir=img1\nframeRate=30\nseqLength="
        f"{frames}\nimWidth=1920\nimHeight=1080\nimExt=.jpg\n"
    )
    return folder


def test_rows_read_pad_and_write_back(tmp_path):
    path = tmp_path / "gt.txt"
    path.write_text(GT + "\n3, 4, 1.5, 2, 3, 4\n")
    rows = read_mot_rows(path)
    assert rows.shape == (4, 10)
    assert rows[0].tolist() == [1, 1, 912, 484, 97, 109, 1, 1, 0.86, -1]
    assert rows[3].tolist() == [3, 4, 1.5, 2, 3, 4, -1, -1, -1, -1]
    np.testing.assert_allclose(rows_xyxy(rows[:1]), [[912, 484, 1009, 593]])
    out = tmp_path / "out.txt"
    write_mot_rows(out, rows)
    assert out.read_text().splitlines()[0] == "1,1,912,484,97,109,1,1,0.86,-1"
    np.testing.assert_allclose(read_mot_rows(out), rows)


def test_tracker_output_rows_are_one_based_frames_with_boxes_as_left_top_width_height():
    rows = tracks_to_rows(5, np.array([3]), np.array([[10.0, 20, 50, 100]]), np.array([0.8]))
    assert rows.tolist() == [[5, 3, 10, 20, 40, 80, 0.8, -1, -1, -1]]


def test_only_considered_pedestrians_are_scored(tmp_path):
    sequence = read_sequence(make_sequence(tmp_path / "MOT17-02-SDP"))
    assert sequence.name == "MOT17-02-SDP" and sequence.frame_rate == 30
    assert sequence.size_wh == (1920, 1080) and len(sequence.frames) == 3
    assert sequence.det is None
    assert scored_gt(sequence.gt)[:, :2].tolist() == [[1, 1]]


def test_broken_files_and_folders_are_named(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("1,1,2,3\n")
    with pytest.raises(JetkitError, match=r"bad\.txt:1: expected 6 to 10 numbers"):
        read_mot_rows(bad)
    with pytest.raises(JetkitError, match="has no seqinfo.ini"):
        read_sequence(tmp_path)
    folder = make_sequence(tmp_path / "seq", frames=3)
    (folder / "img1" / "000002.jpg").unlink()
    with pytest.raises(JetkitError, match="1 of the 3 frames .* missing, the first .*000002.jpg"):
        read_sequence(folder)
