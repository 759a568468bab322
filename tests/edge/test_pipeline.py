"""The streaming pipeline with the blob sample model on ONNX Runtime: files are read in full and in
order, live streams keep only the newest frame, batches mix streams, a failing batch is counted
and skipped, --max-frames is exact, and stop() drains what is in flight."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from edge.detector import Detector
from edge.metrics import PipelineMetrics
from edge.pipeline import FileQueue, LatestSlot, Pipeline, PipelineConfig
from edge.samples import draw_blob_scene
from edge.sinks import open_sink
from edge.sources.base import Frame, SourceError

RED_BOX = (100, 96, 420, 336)


def _scene(seed: int) -> np.ndarray:
    return draw_blob_scene((640, 480), {"red": RED_BOX}, seed=seed)


class FramesSource:
    """A real Source over a list of images, played `count` times over (default once): finite, or
    live at `fps`. A `None` entry raises SourceError once at that point."""

    def __init__(self, images, live=False, fps=0.0, count=None):
        self.uri = "frames://"
        self.live = live
        self._images = [images[i % len(images)] for i in range(count or len(images))]
        self._period_s = 1.0 / fps if fps else 0.0
        self._next_s = 0.0
        self._closed = threading.Event()
        self.reads = 0

    def open(self):
        self._next_s = time.monotonic()

    def read(self):
        if self._closed.is_set() or not self._images:
            return None
        if self._period_s:
            self._closed.wait(max(0.0, self._next_s - time.monotonic()))
            self._next_s += self._period_s
        self.reads += 1
        image = self._images.pop(0)
        if image is None:
            raise SourceError("the test camera hiccupped")
        return image

    def close(self):
        self._closed.set()


class SlowSink:
    """A real sink that takes `delay_s` per result and keeps them."""

    uri = "slow://"

    def __init__(self, delay_s=0.0):
        self.delay_s = delay_s
        self.results = []
        self.closed = False

    def write(self, result):
        time.sleep(self.delay_s)
        self.results.append(result)

    def close(self):
        self.closed = True


@pytest.fixture(scope="module")
def detector(blob_onnx):
    return Detector.open(blob_onnx, backend_options={"threads": 1})


@pytest.fixture(params=[False, True], ids=["one-worker", "overlapped"])
def overlap(request):
    """Both stage layouts: one thread for preprocess → infer → postprocess (the default on the
    CPU) and a thread per stage (the default when inference runs on a GPU)."""
    return request.param


def _run(sources, detector, sinks, config=None, timeout_s=30.0):
    for _, source in sources:
        source.open()
    metrics = PipelineMetrics([stream_id for stream_id, _ in sources])
    pipeline = Pipeline(sources, detector, sinks, metrics, config or PipelineConfig())
    pipeline.start()
    assert pipeline.wait(timeout_s), "the pipeline did not finish"
    pipeline.join(5.0)
    return pipeline, metrics.snapshot()


def test_latest_slot_keeps_the_newest_and_reports_the_replaced():
    slot = LatestSlot()
    frames = [Frame("s0", i, float(i), float(i), np.zeros((2, 2, 3), np.uint8)) for i in range(3)]
    assert slot.put(frames[0]) is False
    assert slot.put(frames[1]) is True and slot.put(frames[2]) is True
    assert slot.take().index == 2 and slot.take() is None and len(slot) == 0


def test_file_queue_blocks_instead_of_dropping_until_stopped():
    inbox, stop = FileQueue(depth=1), threading.Event()
    first = Frame("s0", 0, 0.0, 0.0, np.zeros((2, 2, 3), np.uint8))
    inbox.put(first, stop)
    blocked = threading.Thread(target=inbox.put, args=(first, stop))
    blocked.start()
    blocked.join(0.2)
    assert blocked.is_alive() and len(inbox) == 1  # waiting for room, not dropping
    assert inbox.take() is first
    blocked.join(2.0)
    assert not blocked.is_alive() and len(inbox) == 1
    stop.set()
    inbox.put(first, stop)  # full, but stopped: returns
    assert len(inbox) == 1


def test_file_streams_are_read_in_full_in_order_and_batched_across_streams(
    detector, overlap, tmp_path
):
    sink = SlowSink()
    jsonl = open_sink(f"jsonl://{tmp_path / 'out.jsonl'}")
    sources = [(f"s{k}", FramesSource([_scene(i) for i in range(6)])) for k in range(2)]
    pipeline, summary = _run(
        sources, detector, [sink, jsonl], PipelineConfig(max_wait_ms=50, overlap=overlap)
    )

    assert pipeline.delivered == 12 and sink.closed
    for stream_id in ("s0", "s1"):
        indices = [r.frame.index for r in sink.results if r.frame.stream_id == stream_id]
        assert indices == list(range(6))
        assert summary["streams"][stream_id]["frames"] == 6
        assert not summary["streams"][stream_id]["drops"]
    # Cross-stream batches: fewer inference calls than frames.
    assert summary["stages"]["infer"]["count"] < 12
    assert summary["stages"]["infer"]["frames"] == 12
    for result in sink.results:
        assert result.detections.names == ["red"]
        np.testing.assert_allclose(result.detections.xyxy[0], RED_BOX, atol=8)
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(lines) == 12
    assert {"stream", "frame", "capture_unix_s", "latency_ms", "detections"} <= set(lines[0])
    assert lines[0]["detections"][0]["class_name"] == "red"


def test_a_live_stream_faster_than_the_pipeline_keeps_only_the_newest_frame(detector, overlap):
    sink = SlowSink(delay_s=0.02)  # ≤ 50 results/s against a 200 fps camera
    camera = FramesSource([_scene(i) for i in range(4)], live=True, fps=200, count=200)
    pipeline, summary = _run(
        [("cam", camera)], detector, [sink], PipelineConfig(overlap=overlap), timeout_s=60
    )

    delivered = pipeline.delivered
    stale = summary["streams"]["cam"]["drops"].get("stale", 0)
    assert camera.reads == 200 and delivered + stale <= 200
    assert stale > 50 and delivered < 150
    # Bounded latency: no frame waits behind the backlog the dropped frames would have made (a
    # bound relative to this run's own drops, so that a slower machine moves both together).
    assert summary["e2e"]["max_ms"] < 0.5 * stale * sink.delay_s * 1000


def test_a_failing_batch_is_counted_and_the_stream_goes_on(detector, overlap):
    images = [_scene(0), np.zeros((0, 0, 3), np.uint8), _scene(1), None, _scene(2)]
    sink = SlowSink()
    pipeline, summary = _run(
        [("s0", FramesSource(images))],
        detector,
        [sink],
        PipelineConfig(max_batch=1, overlap=overlap),
    )
    assert [r.frame.index for r in sink.results] == [0, 2]
    assert summary["streams"]["s0"]["errors"] == {"preprocess": 1, "capture": 1}


def test_max_frames_delivers_exactly_that_many_and_stops_capture(detector, overlap):
    sink = SlowSink()
    camera = FramesSource([_scene(i) for i in range(3)], live=True, fps=100, count=10_000)
    config = PipelineConfig(max_frames=7, overlap=overlap)
    pipeline, _ = _run([("cam", camera)], detector, [sink], config)
    assert pipeline.delivered == 7 and len(sink.results) == 7
    assert camera.reads < 10_000


def test_stop_ends_a_live_run_and_closes_the_sinks(detector, overlap):
    sink = SlowSink()
    camera = FramesSource([_scene(0)], live=True, fps=30, count=100_000)
    camera.open()
    metrics = PipelineMetrics(["cam"])
    pipeline = Pipeline(
        [("cam", camera)], detector, [sink], metrics, PipelineConfig(overlap=overlap)
    )
    pipeline.start()
    deadline = time.monotonic() + 30
    while not sink.results and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sink.results, "nothing delivered in 30 s"
    pipeline.stop()
    assert pipeline.wait(10.0)  # a live source never ends by itself: only stop() ended it
    assert sink.closed


def test_stages_overlap_only_when_inference_leaves_the_cpu_to_them(detector):
    # ONNX Runtime on the CPU provider shares the cores with pre- and postprocessing.
    assert detector.overlaps_host is False
    assert Pipeline([], detector, [], PipelineMetrics([])).overlap is False
    forced = Pipeline([], detector, [], PipelineMetrics([]), PipelineConfig(overlap=True))
    assert forced.overlap is True


def test_a_batch_larger_than_the_model_takes_is_refused(detector):
    with pytest.raises(Exception, match="--max-batch 9 is more than the model takes"):
        Pipeline([], detector, [], PipelineMetrics([]), PipelineConfig(max_batch=9))


def test_a_model_swap_between_batches_drops_no_frame(blob_onnx, overlap, tmp_path):
    """Frames preprocessed for the old model finish on it; the next batches use the new one,
    even with another input size."""
    from edge.samples import build_blob_detector

    old = Detector.open(blob_onnx, backend_options={"threads": 1})
    build_blob_detector(tmp_path / "small.onnx", input_hw=(256, 256), max_batch=2)
    new = Detector.open(tmp_path / "small.onnx", backend_options={"threads": 1})
    sink = SlowSink(delay_s=0.005)
    source = FramesSource([_scene(i) for i in range(3)], count=60)
    source.open()
    metrics = PipelineMetrics(["s0"])
    config = PipelineConfig(max_batch=2, overlap=overlap)
    pipeline = Pipeline([("s0", source)], old, [sink], metrics, config)
    pipeline.start()
    deadline = time.monotonic() + 30
    while pipeline.delivered < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    returned = pipeline.swap_detector(new)
    assert returned is old and pipeline.in_flight(old) == 0
    assert pipeline.wait(30)
    assert [r.frame.index for r in sink.results] == list(range(60))
    assert all(r.detections.names == ["red"] for r in sink.results)
    assert pipeline.detector is new and pipeline.max_batch == 2
    assert metrics.snapshot()["streams"]["s0"]["errors"] == {}


def test_pipeline_backend_options_keep_onnxruntime_threads_from_spinning():
    from edge.pipeline import backend_options

    assert backend_options("m.onnx", None, 2) == {"threads": 2, "spinning": False}
    assert backend_options("m.engine", None, None) == {}
    assert backend_options("m.onnx", "tensorrt", None) == {}


def test_a_line_that_does_not_fit_a_streams_frames_turns_its_analytics_off(detector):
    """Pixel shapes are checked against the first frame: this one, off a 640x480 frame, turns
    that stream's analytics off (logged, counted); its results still go out, untracked."""
    from edge.analytics.bytetrack import TrackerConfig
    from edge.analytics.stream import AnalyticsConfig
    from edge.analytics.zones import LineConfig

    sink = SlowSink()
    logged: list[str] = []
    analytics = AnalyticsConfig(TrackerConfig(), lines=(LineConfig("far", ((0, 10), (900, 10))),))
    sources = [("cam", FramesSource([_scene(i) for i in range(5)]))]
    for _, source in sources:
        source.open()
    metrics = PipelineMetrics(["cam"])
    pipeline = Pipeline(sources, detector, [sink], metrics, PipelineConfig(analytics=analytics),
                        logged.append)  # fmt: skip
    pipeline.start()
    assert pipeline.wait(30)
    assert len(sink.results) == 5 and all(r.track_ids is None for r in sink.results)
    assert any("analytics off: lines.far.points" in line for line in logged)
    assert metrics.snapshot()["streams"]["cam"]["errors"] == {"analytics": 1}


def test_a_moving_object_in_a_file_keeps_one_track_id(detector):
    """A file is read ahead of processing: its frames advance the tracker by their indices,
    not by when they were read."""
    from edge.analytics.bytetrack import TrackerConfig
    from edge.analytics.stream import AnalyticsConfig

    sink = SlowSink()
    scenes = [draw_blob_scene((640, 480), {"red": (100 + 8 * i, 96, 300 + 8 * i, 336)}, seed=i)
              for i in range(8)]  # fmt: skip
    config = PipelineConfig(analytics=AnalyticsConfig(TrackerConfig()), report_conf=0.5)
    _run([("cam", FramesSource(scenes))], detector, [sink], config)
    assert [r.track_ids.tolist() for r in sink.results] == [[1]] * 8
    assert all(r.detections.names == ["red"] for r in sink.results)


def test_motion_gating_skips_still_frames_and_crops_to_what_moves_keeping_the_tracks(detector):
    """A red box stands for 10 frames, slides for 10, stands again for 10 (the camera's noise
    aside). Still frames skip the detector and report the held track; moving ones are detected
    on a crop; the box keeps one id throughout."""
    from edge.analytics.bytetrack import TrackerConfig
    from edge.analytics.motion import MotionConfig
    from edge.analytics.stream import AnalyticsConfig

    def scene(k):
        x = 100 + 12 * min(max(k - 10, 0), 10)
        image = draw_blob_scene((640, 480), {"red": (x, 200, x + 60, 260)}, seed=5)
        noise = np.random.default_rng(k).normal(0, 3, image.shape)
        return np.clip(image + noise, 0, 255).astype(np.uint8)

    sink = SlowSink()
    # The model's 320x320 input is a third of the frame: crops that large still count here.
    motion = MotionConfig(full_every_s=1000.0, crop_max_area=0.5)
    config = PipelineConfig(analytics=AnalyticsConfig(TrackerConfig(), motion=motion))
    _, summary = _run([("cam", FramesSource([scene(k) for k in range(30)]))], detector, [sink],
                      config)  # fmt: skip
    decisions = summary["streams"]["cam"]["motion"]
    assert decisions["full"] == 1 and decisions["skip"] >= 12 and decisions["crop"] >= 8
    assert [r.track_ids.tolist() for r in sink.results] == [[1]] * 30
    for result in sink.results[12:20]:  # sliding: found where it is, on a crop
        k = result.frame.index
        x = 100 + 12 * min(max(k - 10, 0), 10)
        np.testing.assert_allclose(result.detections.xyxy[0], [x, 200, x + 60, 260], atol=4)
    assert summary["stages"]["infer"]["frames"] < 20


class AlternatingSink(SlowSink):
    """A sink that is quick, then slow (`delay_s`), in turn: the frames dropped between two
    processed ones vary from none to many, as under a bursty overload."""

    def write(self, result):
        time.sleep(self.delay_s * (len(self.results) % 2))
        self.results.append(result)


class MovingBoxCamera:
    """A live camera at `fps` filming a red box that slides `step_px` a frame period. Like a
    real camera it never bursts: a late read gets the frame due now, the ones missed are gone."""

    uri = "test://moving-box"
    live = True

    def __init__(self, fps, count, step_px):
        self._background = draw_blob_scene((640, 480), {}, seed=3)
        self._period_s, self._count, self.step_px = 1.0 / fps, count, step_px
        self._closed = threading.Event()
        self.slots = []  # the frame period each read's image was taken in

    def box_xyxy(self, read_index):
        x = 20 + self.step_px * self.slots[read_index]
        return (x, 200, x + 60, 260)

    def open(self):
        self._start_s = time.monotonic()

    def read(self):
        slot = self.slots[-1] + 1 if self.slots else 0
        self._closed.wait(max(0.0, self._start_s + slot * self._period_s - time.monotonic()))
        slot = max(slot, int((time.monotonic() - self._start_s) / self._period_s))
        if self._closed.is_set() or slot >= self._count:
            return None
        self.slots.append(slot)
        image = self._background.copy()
        x0, y0, x1, y1 = self.box_xyxy(len(self.slots) - 1)
        image[y0:y1, x0:x1] = (0, 0, 255)
        return image

    def close(self):
        self._closed.set()


def test_a_track_survives_the_frames_overload_drops(detector):
    """The newest-frame policy drops from none to many frames between two processed ones; the
    tracker advances by the frames' capture times, so its prediction keeps up with a box that
    moves 5 px a frame (a whole box width over a gap of 12) and the box keeps one id, from the
    third match of its track on (before that the track has not learnt the box's speed, and a
    machine too busy to process the first frames loses it to any tracker)."""
    from edge.analytics.bytetrack import TrackerConfig
    from edge.analytics.stream import AnalyticsConfig

    camera = MovingBoxCamera(fps=100, count=110, step_px=5)  # 1.1 s
    sink = AlternatingSink(delay_s=0.12)
    config = PipelineConfig(analytics=AnalyticsConfig(TrackerConfig()), report_conf=0.5)
    _, summary = _run([("cam", camera)], detector, [sink], config, timeout_s=60)
    ids = [r.track_ids.tolist() for r in sink.results]
    settled = next(i for i in range(len(ids)) if ids[i] == ids[i + 1] == ids[i + 2] != [-1])
    assert settled <= 5 and ids[settled:] == [ids[settled]] * (len(ids) - settled)
    assert summary["streams"]["cam"]["drops"]["stale"] > 10
    gaps = np.diff([camera.slots[r.frame.index] for r in sink.results[settled:]])
    assert gaps.max() >= 10 and gaps.min() <= gaps.max() // 2  # bursty: short and long gaps
    for result in sink.results:
        np.testing.assert_allclose(result.detections.xyxy[0],
                                   camera.box_xyxy(result.frame.index), atol=4)  # fmt: skip


def test_motion_gating_leaves_an_opted_out_stream_alone_and_a_reload_changes_its_settings(detector):
    """Two still cameras, the second opted out (the daemon's `streams[k].motion: false`): only
    the first is gated. New motion settings from a reload take effect from the next frame."""
    from edge.analytics.bytetrack import TrackerConfig
    from edge.analytics.motion import MotionConfig
    from edge.analytics.stream import AnalyticsConfig

    still = [_scene(0)] * 12
    gated = AnalyticsConfig(TrackerConfig(), motion=MotionConfig(full_every_s=1000.0))
    config = PipelineConfig(analytics=gated, ungated_streams=frozenset({"b"}))
    pipeline, summary = _run([("a", FramesSource(still)), ("b", FramesSource(still))], detector,
                             [SlowSink()], config)  # fmt: skip
    assert summary["streams"]["a"]["motion"] == {"full": 1, "skip": 11}
    assert "motion" not in summary["streams"]["b"]
    assert summary["stages"]["infer"]["frames"] == 13  # a once, b every frame
    pipeline.set_analytics(AnalyticsConfig(TrackerConfig(), motion=MotionConfig(threshold=50.0)))
    assert set(pipeline._gates) == {"a"} and pipeline._gates["a"].config.threshold == 50.0
