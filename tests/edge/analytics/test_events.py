"""Object lifecycle messages: one `new` when a track is confirmed, `update`s no more often than
asked (and at once on a zone change), one `end` with its duration, best score, zones and, with
crops on, a JPEG of its best frame."""

import base64

import cv2
import numpy as np
import pytest

from edge.analytics.events import EVENT_SCHEMA_VERSION, EventsConfig, ObjectEvents
from edge.errors import JetkitError

BOX = np.array([[100.0, 50, 140, 130]])


def step(events, time_s, score=0.8, zones=None, ended=(), ids=(5,), image=None):
    return events.update(time_s, np.array(ids), BOX[: len(ids)], np.array([score] * len(ids)),
                         ["person"] * len(ids), zones or {}, list(ended), image)  # fmt: skip


def test_a_track_lives_new_update_end():
    events = ObjectEvents("door", EventsConfig(update_interval_s=2.0))
    (new,) = step(events, 10.0)
    assert new == {
        "schema": EVENT_SCHEMA_VERSION, "type": "new", "stream": "door", "time": 10.0,
        "track_id": 5, "class": "person", "score": 0.8, "top_score": 0.8,
        "box_xyxy": [100.0, 50.0, 140.0, 130.0], "start_time": 10.0, "zones": [],
        "entered_zones": [],
    }  # fmt: skip
    assert step(events, 11.0, score=0.9) == []  # within the interval
    (update,) = step(events, 12.0, score=0.85)
    assert update["type"] == "update" and update["top_score"] == 0.9 and update["score"] == 0.85
    (zone_change,) = step(events, 12.5, zones={5: ["porch"]})
    assert zone_change["zones"] == ["porch"] and zone_change["entered_zones"] == ["porch"]
    step(events, 13.0, zones={5: ["porch", "door"]})
    (end,) = step(events, 20.0, ids=(), ended=[5])
    assert end["type"] == "end" and end["duration_s"] == 10.0 and end["top_score"] == 0.9
    assert end["entered_zones"] == ["porch", "door"] and "crop_jpeg_b64" not in end
    assert step(events, 21.0, ids=(), ended=[5]) == []  # ended once


def test_the_end_carries_a_crop_of_the_best_frame_when_asked():
    events = ObjectEvents("door", EventsConfig(crops=True))
    best = np.zeros((200, 300, 3), np.uint8)
    best[50:130, 100:140] = (0, 0, 255)
    worse = np.zeros_like(best)
    step(events, 0.0, score=0.9, image=best)
    step(events, 1.0, score=0.5, image=worse)
    (end,) = step(events, 2.0, ids=(), ended=[5])
    crop = cv2.imdecode(np.frombuffer(base64.b64decode(end["crop_jpeg_b64"]), np.uint8), 1)
    assert crop.shape == (80, 40, 3) and crop[..., 2].mean() > 200  # the red box, not black


def test_a_bad_interval_names_its_key():
    with pytest.raises(JetkitError, match=r"events\.update_interval_s"):
        EventsConfig(update_interval_s=0)
