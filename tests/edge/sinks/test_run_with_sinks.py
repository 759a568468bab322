"""`jetkit run` end to end with the new sinks at once: two streams of stills (which, unlike a
camera, never drop frames) to an MQTT broker (a topic per stream) and to one annotated video per
stream."""

from __future__ import annotations

import json

from cli_helpers import jetkit

from edge.samples import draw_blob_scene

from .conftest import RED_BOX, SCENE_SIZE_WH, Subscriber


def test_two_streams_to_mqtt_and_video(blob_onnx, broker, tmp_path):
    import cv2

    stills = tmp_path / "stills"
    stills.mkdir()
    for index in range(6):
        image = draw_blob_scene(SCENE_SIZE_WH, {"red": RED_BOX}, seed=index)
        cv2.imwrite(str(stills / f"{index:02d}.png"), image)
    subscriber = Subscriber(broker.port, "plant/#")
    video = tmp_path / "run.avi"
    result = jetkit(
        "run", f"images://{stills}?id=door", f"images://{stills}?id=yard",
        "--model", blob_onnx,
        "--sink", f"mqtt://127.0.0.1:{broker.port}/plant?topic_per_stream=1",
        "--sink", f"video://{video}", "--summary", tmp_path / "summary.json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    messages = [json.loads(m.payload) | {"topic": m.topic} for m in subscriber.take(12)]
    subscriber.close()

    assert sorted((m["topic"], m["frame"]) for m in messages) == sorted(
        (f"plant/{stream}", index) for stream in ("door", "yard") for index in range(6)
    )
    sinks = json.loads((tmp_path / "summary.json").read_text())["sinks"]
    mqtt_stats = next(stats for uri, stats in sinks.items() if uri.startswith("mqtt://"))
    assert mqtt_stats["published"] == 12 and mqtt_stats["dropped"] == 0
    for stream in ("door", "yard"):
        capture = cv2.VideoCapture(str(tmp_path / f"run-{stream}.avi"))
        assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 6
        capture.release()
