"""A tracked result as the sinks see it: each detection's track id and the frame's events in its
JSON, the id in the overlay's caption and the track's trail drawn."""

import numpy as np

from edge.sinks import Result

from .conftest import SCENE_SIZE_WH


def test_a_tracked_result_carries_ids_events_and_trails(make_results):
    plain = make_results(1)[0]
    count = len(plain.detections)
    ids = np.arange(1, count + 1)
    event = {"schema": 1, "type": "new", "stream": "s0", "time": 1.0, "track_id": 1}
    trail = np.array([[20.0, 20], [120, 200], [300, 220]])
    tracked = Result(plain.frame, plain.detections, plain.delivered_unix_s, ids, (event,),
                     {1: trail})  # fmt: skip
    record = tracked.to_dict()
    assert [d["track_id"] for d in record["detections"]] == ids.tolist()
    assert record["events"] == [event]
    assert "events" not in plain.to_dict() and "track_id" not in plain.to_dict()["detections"][0]
    drawn, bare = tracked.annotated_bgr(), plain.annotated_bgr()
    assert drawn.shape == (SCENE_SIZE_WH[1], SCENE_SIZE_WH[0], 3)
    # The trail's middle is drawn; away from boxes and trail the frames are the same.
    x, y = 70, 110  # on the segment from (20, 20) to (120, 200)
    assert (
        np.abs(
            drawn[y - 2 : y + 3, x - 2 : x + 3].astype(int) - bare[y - 2 : y + 3, x - 2 : x + 3]
        ).max()
        > 50
    )
    assert (drawn[230:, :10] == bare[230:, :10]).all()
