"""Object lifecycle events from one stream's tracks, shaped after Frigate's (`new`, `update`,
`end`) so that automations written for it read them with little change.

Every message is a flat JSON object with `schema` (EVENT_SCHEMA_VERSION; a change that renames
or removes a field raises it), `type`, `stream` and `time` (the frame's capture, Unix seconds):
- `new`: a track was confirmed. `update`: at most every `update_interval_s` while it lasts, and
  at once when its zones change. `end`: it ended, with `duration_s`. All three carry `track_id`,
  `class`, `score` (its latest detection), `top_score`, `box_xyxy` (pixels), `start_time`,
  `zones` (those it is in now) and `entered_zones` (every zone it has been in, in order);
  `end` may carry `crop_jpeg_b64`, the best-scoring frame's crop of it, with `crops` on.
- `line_crossing`: `line`, `direction` (`in`/`out`), `track_id`, `class`.
- `zone_enter` / `zone_exit`: `zone`, `track_id`, `class`; an exit also `dwell_s` and `reason`
  (`left`, or `lost` when the track ended inside).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.errors import JetkitError

EVENT_SCHEMA_VERSION = 1
CROP_JPEG_QUALITY = 85


@dataclass(frozen=True)
class EventsConfig:
    update_interval_s: float = 5.0
    crops: bool = False

    def __post_init__(self) -> None:
        if not self.update_interval_s > 0:
            raise JetkitError(
                f"events.update_interval_s must be > 0 seconds, got {self.update_interval_s}"
            )


@dataclass
class _Life:
    class_name: str
    start_time: float
    score: float
    top_score: float
    box_xyxy: list[float]
    last_sent: float
    zones: list[str] = field(default_factory=list)
    entered_zones: list[str] = field(default_factory=list)
    crop_bgr: np.ndarray | None = None  # the best frame's pixels, encoded only at the end


def crop_of(image_bgr: np.ndarray, xyxy: np.ndarray) -> np.ndarray | None:
    """A copy of the box's pixels (None for a box with no pixels in the frame)."""
    height, width = image_bgr.shape[:2]
    x0, y0 = max(int(xyxy[0]), 0), max(int(xyxy[1]), 0)
    x1, y1 = min(int(np.ceil(xyxy[2])), width), min(int(np.ceil(xyxy[3])), height)
    if x1 <= x0 or y1 <= y0:
        return None
    return image_bgr[y0:y1, x0:x1].copy()


def jpeg_b64(image_bgr: np.ndarray) -> str | None:
    import cv2

    ok, encoded = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, CROP_JPEG_QUALITY])
    return base64.b64encode(encoded.tobytes()).decode("ascii") if ok else None


class ObjectEvents:
    """One stream's lifecycle messages: `update` per frame with its tracked detections and
    the zones each is in, and the tracks that ended → the messages of that frame."""

    def __init__(self, stream_id: str, config: EventsConfig | None = None) -> None:
        self.stream_id = stream_id
        self.config = config or EventsConfig()
        self._lives: dict[int, _Life] = {}

    def update(
        self,
        time_s: float,
        track_ids: np.ndarray,
        xyxy: np.ndarray,
        scores: np.ndarray,
        class_names: list[str],
        zones_of: dict[int, list[str]],
        ended_ids: list[int],
        image_bgr: np.ndarray | None = None,
    ) -> list[dict[str, Any]]:
        messages = []
        for track_id, box, score, name in zip(
            track_ids.tolist(), xyxy, scores.tolist(), class_names, strict=True
        ):
            zones = zones_of.get(track_id, [])
            life = self._lives.get(track_id)
            if life is None:
                life = _Life(name, time_s, score, score, box.tolist(), time_s)
                self._lives[track_id] = life
                kind = "new"
            else:
                changed = zones != life.zones
                due = time_s - life.last_sent >= self.config.update_interval_s
                kind = "update" if changed or due else ""
            life.class_name, life.score, life.box_xyxy = name, score, box.tolist()
            life.entered_zones += [z for z in zones if z not in life.entered_zones]
            life.zones = zones
            if score >= life.top_score:
                life.top_score = score
                if self.config.crops and image_bgr is not None:
                    life.crop_bgr = crop_of(image_bgr, box)
            if kind:
                life.last_sent = time_s
                messages.append(self._message(kind, track_id, life, time_s))
        for track_id in ended_ids:
            life = self._lives.pop(track_id, None)
            if life is not None:
                messages.append(self._message("end", track_id, life, time_s))
        return messages

    def _message(self, kind: str, track_id: int, life: _Life, time_s: float) -> dict[str, Any]:
        message: dict[str, Any] = {
            **envelope(kind, self.stream_id, time_s),
            "track_id": track_id,
            "class": life.class_name,
            "score": round(life.score, 4),
            "top_score": round(life.top_score, 4),
            "box_xyxy": [round(v, 1) for v in life.box_xyxy],
            "start_time": round(life.start_time, 6),
            "zones": list(life.zones),
            "entered_zones": list(life.entered_zones),
        }
        if kind == "end":
            message["duration_s"] = round(time_s - life.start_time, 3)
            encoded = jpeg_b64(life.crop_bgr) if life.crop_bgr is not None else None
            if encoded is not None:
                message["crop_jpeg_b64"] = encoded
        return message


def envelope(kind: str, stream_id: str, time_s: float) -> dict[str, Any]:
    """The fields every event message starts with."""
    return {"schema": EVENT_SCHEMA_VERSION, "type": kind, "stream": stream_id,
            "time": round(time_s, 6)}  # fmt: skip
