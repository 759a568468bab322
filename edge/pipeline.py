"""The streaming pipeline: capture (a thread per source) → batch across streams + preprocess →
infer → decode + NMS → sinks, joined by bounded queues, every stage timed. Preprocess, infer and
decode run in a thread each when inference runs off the CPU (they overlap), else in one thread
(`PipelineConfig.overlap`).

Live sources keep only their newest frame (a frame replaced before it was batched is counted as
a `stale` drop), so latency stays bounded when the model is slower than the cameras; other
sources block their capture thread instead and never drop. A failing batch, a bad frame and a
failing sink write are counted, logged and skipped; the pipeline goes on. Failures that repeat
are logged once and then counted per interval (`FailureLog`). `stop()` stops capture, lets what
is in flight through and closes the sinks.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.analytics.motion import CROP, FULL, SKIP, MotionConfig, MotionGate
from edge.analytics.stream import AnalyticsConfig, StreamAnalytics, keep_reported, with_held
from edge.detector import Detections, Detector
from edge.errors import JetkitError
from edge.failure_log import FailureLog
from edge.metrics import PipelineMetrics
from edge.preprocess import Transform
from edge.sinks import Result, Sink
from edge.sources.base import Frame, FrameError, Source, SourceError
from edge.sources.uri import SourceRef

Log = Callable[[str], None]

# Between stages: enough to keep every stage busy, small enough not to add latency.
STAGE_QUEUE_DEPTH = 2
# Batches waiting for inference. One keeps the model busy (the next batch is ready when it
# finishes); more would only make frames wait behind older ones.
INFER_QUEUE_DEPTH = 1
# How long blocked threads wait before looking at the stop flag again.
POLL_S = 0.05


def backend_options(
    model_path: str | Path, backend: str | None, threads: int | None
) -> dict[str, Any]:
    """Backend options for a model run in the pipeline. ONNX Runtime's idle threads would spin
    waiting for the next run, taking the cores the other stages need (measured: 141–157 against
    59–121 frames/s, BENCHMARKS.md), so they sleep."""
    from edge.backends import backend_for

    options: dict[str, Any] = {"threads": threads} if threads is not None else {}
    if backend_for(str(model_path), backend) == "onnxruntime":
        options["spinning"] = False
    return options


@dataclass(frozen=True)
class PipelineConfig:
    """`max_batch` None: the model's. `max_wait_ms`: how long a batch waits for frames from other
    streams once it has one. `file_queue_frames`: frames a non-live stream reads ahead.
    `overlap`: preprocess, infer and postprocess each in a thread of their own, so that one
    batch is decoded while the next is inferred; otherwise one thread runs them in turn (capture
    and sinks have threads either way). None: overlap when inference runs off the host's CPU
    (TensorRT on the GPU). When ONNX Runtime shares the CPU with them, overlapping stages only
    contend for the same cores: one thread measured as good or better in file throughput, latency
    under overload and streams sustained (BENCHMARKS.md)."""

    max_batch: int | None = None
    max_wait_ms: float = 5.0
    file_queue_frames: int = 4
    max_frames: int | None = None
    overlap: bool | None = None
    # Tracking, zones, lines and events after NMS, per stream (edge.analytics); with it the
    # detector runs at the tracker's low threshold and `report_conf` decides what is reported
    # besides the tracked detections.
    analytics: AnalyticsConfig | None = None
    report_conf: float | None = None
    # Streams motion gating leaves alone (the daemon's `streams[k].motion: false`).
    ungated_streams: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.max_batch is not None and self.max_batch < 1:
            raise JetkitError(f"--max-batch must be >= 1, got {self.max_batch}")
        if not 0 <= self.max_wait_ms <= 10_000:
            raise JetkitError(f"--max-wait-ms must be in [0, 10000], got {self.max_wait_ms}")
        if self.file_queue_frames < 1:
            raise JetkitError(f"file_queue_frames must be >= 1, got {self.file_queue_frames}")
        if self.max_frames is not None and self.max_frames < 1:
            raise JetkitError(f"--max-frames must be >= 1, got {self.max_frames}")


class LatestSlot:
    """Holds one frame: a new one replaces the old (which `put` reports as dropped)."""

    def __init__(self) -> None:
        self._frame: Frame | None = None
        self._lock = threading.Lock()

    def put(self, frame: Frame) -> bool:
        with self._lock:
            replaced = self._frame is not None
            self._frame = frame
        return replaced

    def take(self) -> Frame | None:
        with self._lock:
            frame, self._frame = self._frame, None
        return frame

    def __len__(self) -> int:
        return int(self._frame is not None)


class FileQueue:
    """A bounded FIFO whose `put` blocks (never drops) until there is room or `stop` is set."""

    def __init__(self, depth: int) -> None:
        self._queue: queue.Queue[Frame] = queue.Queue(maxsize=depth)

    def put(self, frame: Frame, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self._queue.put(frame, timeout=POLL_S)
                return
            except queue.Full:
                continue

    def take(self) -> Frame | None:
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            return None

    def __len__(self) -> int:
        return self._queue.qsize()


@dataclass
class _Stream:
    stream_id: str
    source: Source
    inbox: LatestSlot | FileQueue
    ended: bool = False
    frames_read: int = 0
    exhausted: bool = False  # the source itself ended (not stop())


@dataclass
class _Batch:
    """`looks[i]`: where the detector looks in frame i (motion gating): FULL, a crop box, or
    SKIP (the frame goes through undetected, in its place among its stream's frames)."""

    detector: Detector  # the one that preprocessed it infers and decodes it, across a swap
    frames: list[Frame]
    looks: list[Any]
    tensor: np.ndarray | None = None
    transforms: list[Transform] | None = None
    outputs: list[np.ndarray] | None = None


_END = object()


def _cropped(image_bgr: np.ndarray, look: Any) -> np.ndarray:
    if look == FULL:
        return image_bgr
    x0, y0, x1, y1 = look
    return image_bgr[y0:y1, x0:x1]


def _shifted(detections: Detections, crop_xyxy: tuple[int, int, int, int]) -> Detections:
    """Detections on a crop → in the frame's pixels."""
    offset = np.array(crop_xyxy[:2] * 2, dtype=detections.xyxy.dtype)
    return Detections(detections.xyxy + offset, detections.scores, detections.class_ids,
                      detections.class_names)  # fmt: skip


class Pipeline:
    """Runs `detector` on frames from `sources` (`(stream id, opened Source)` pairs) and hands
    each frame's `Result` to every sink. The sources are closed when capture stops; the sinks
    when the pipeline has drained."""

    def __init__(
        self,
        sources: Sequence[tuple[str, Source]],
        detector: Detector,
        sinks: Sequence[Sink],
        metrics: PipelineMetrics,
        config: PipelineConfig = PipelineConfig(),
        log: Log = lambda _message: None,
    ) -> None:
        model_max = detector.max_batch
        if config.max_batch is not None and config.max_batch > model_max:
            raise JetkitError(
                f"--max-batch {config.max_batch} is more than the model takes ({model_max}); "
                "export or build it with a larger batch"
            )
        self.detector = detector
        self.sinks = list(sinks)
        self.metrics = metrics
        for sink in self.sinks:
            stats = getattr(sink, "stats", None)
            if callable(stats):
                metrics.watch_sink(sink.uri, stats)
        self.config = config
        self.max_batch = config.max_batch or model_max
        self._log = log
        self._failures = FailureLog(log)
        self._streams = [
            _Stream(
                stream_id,
                source,
                LatestSlot() if source.live else FileQueue(config.file_queue_frames),
            )
            for stream_id, source in sources
        ]
        self._stop = threading.Event()
        self._finished = threading.Event()
        self._infer_done = threading.Event()
        self._arrived = threading.Condition()
        self._to_infer: queue.Queue[Any] = queue.Queue(maxsize=INFER_QUEUE_DEPTH)
        # Taken before a batch is collected, given back by inference. With only live streams it
        # is given back when inference has finished the batch ahead: frames are picked as the
        # model frees up, so a batch holds each camera's newest frame and never waits behind
        # another batch (the model idles while a batch is preprocessed). With a file, it is
        # given back as inference starts the batch ahead, so the next one is preprocessed
        # meanwhile: files want throughput, and their frames cannot go stale.
        self._infer_slot = threading.Semaphore(INFER_QUEUE_DEPTH)
        self._latency_first = all(source.live for _, source in sources)
        self.overlap = detector.overlaps_host if config.overlap is None else config.overlap
        self._to_post: queue.Queue[Any] = queue.Queue(maxsize=STAGE_QUEUE_DEPTH)
        self._to_sinks: queue.Queue[Any] = queue.Queue(maxsize=STAGE_QUEUE_DEPTH * self.max_batch)
        self._delivered = 0
        self._next_stream = 0
        self._in_flight: dict[int, int] = {}  # id(detector) → batches it has not finished
        self._in_flight_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._analytics: dict[str, StreamAnalytics] = {}
        self._analytics_lock = threading.Lock()  # the sink thread writes, /status reads
        self._live = {stream_id: source.live for stream_id, source in sources}
        analytics = config.analytics
        if analytics is not None and analytics.tracker is not None:
            classes = tuple(detector.manifest.classes)
            analytics.check_classes(classes)
            self._analytics = {s.stream_id: StreamAnalytics(s.stream_id, analytics, classes)
                               for s in self._streams}  # fmt: skip
            metrics.watch_analytics(self.analytics_status)
        self._gates = self._motion_gates(analytics.motion if analytics is not None else None)

    # --- control -------------------------------------------------------------------------------

    def start(self) -> None:
        for stream in self._streams:
            self._spawn(f"capture-{stream.stream_id}", self._capture, stream)
        if self.overlap:
            self._spawn("batch", self._batch_loop)
            self._spawn("infer", self._infer_loop)
            self._spawn("postprocess", self._post_loop)
        else:
            self._spawn("worker", self._serial_loop)
        self._spawn("sink", self._sink_loop)

    def stop(self) -> None:
        """Stop capture; what was captured still goes through."""
        self._stop.set()
        with self._arrived:
            self._arrived.notify_all()

    def wait(self, timeout_s: float | None = None) -> bool:
        """True once every frame has gone through and the sinks are closed."""
        return self._finished.wait(timeout_s)

    def join(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    @property
    def delivered(self) -> int:
        return self._delivered

    @property
    def empty_streams(self) -> list[str]:
        """Streams whose source ended by itself without a single frame (a folder of corrupt
        stills, an empty video): nothing of them was processed."""
        return [s.stream_id for s in self._streams if s.exhausted and not s.frames_read]

    @property
    def sources(self) -> list[tuple[str, Source]]:
        """`(stream id, source)` pairs, in stream order."""
        return [(stream.stream_id, stream.source) for stream in self._streams]

    def swap_detector(self, detector: Detector, timeout_s: float = 30.0) -> Detector:
        """Use `detector` from the next batch on and return the old one once the batches it
        started are through (or `timeout_s` passed), ready to close. No frame is dropped: batches
        already preprocessed finish on the model that preprocessed them."""
        if self.config.max_batch is not None and self.config.max_batch > detector.max_batch:
            raise JetkitError(
                f"the new model takes batches of at most {detector.max_batch}, less than "
                f"max_batch {self.config.max_batch}"
            )
        old, self.detector = self.detector, detector
        self.max_batch = min(self.config.max_batch or detector.max_batch, detector.max_batch)
        deadline = time.monotonic() + timeout_s
        while self.in_flight(old) and time.monotonic() < deadline and not self._finished.is_set():
            time.sleep(POLL_S / 5)
        return old

    def in_flight(self, detector: Detector) -> int:
        """Batches preprocessed by `detector` and not yet decoded."""
        with self._in_flight_lock:
            return self._in_flight.get(id(detector), 0)

    def _track(self, detector: Detector, change: int) -> None:
        with self._in_flight_lock:
            count = self._in_flight.get(id(detector), 0) + change
            if count:
                self._in_flight[id(detector)] = count
            else:
                self._in_flight.pop(id(detector), None)

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=f"jetkit-{name}", daemon=True)
        self._threads.append(thread)
        thread.start()

    # --- capture -------------------------------------------------------------------------------

    def _capture(self, stream: _Stream) -> None:
        try:
            while not self._stop.is_set():
                waited_from = time.monotonic()
                try:
                    image = stream.source.read()
                except FrameError as exc:
                    self.metrics.record_error(stream.stream_id, "bad_frame")
                    self._failures.failed(stream.stream_id, f"{exc}; skipped")
                    continue
                except SourceError as exc:
                    self.metrics.record_error(stream.stream_id, "capture")
                    self._failures.failed(stream.stream_id, str(exc))
                    if stream.source.live:
                        continue  # a reconnecting source backs off inside read()
                    stream.exhausted = True
                    break
                if image is None:
                    stream.exhausted = True
                    break
                now = time.monotonic()
                self.metrics.record_stage("capture_wait", (now - waited_from) * 1e3)
                frame = Frame(stream.stream_id, stream.frames_read, now, time.time(), image)
                stream.frames_read += 1
                if isinstance(stream.inbox, LatestSlot):
                    if stream.inbox.put(frame):
                        self.metrics.record_drop(stream.stream_id, "stale")
                else:
                    stream.inbox.put(frame, self._stop)
                with self._arrived:
                    self._arrived.notify_all()
        finally:
            stream.source.close()
            stream.ended = True
            with self._arrived:
                self._arrived.notify_all()

    # --- batch + preprocess --------------------------------------------------------------------

    def _take_round(self, room: int) -> list[Frame]:
        """Up to `room` frames, one per stream per pass, starting after the stream that led the
        last batch, so that no stream starves the others."""
        taken: list[Frame] = []
        count = len(self._streams)
        progress = True
        while len(taken) < room and progress:
            progress = False
            for offset in range(count):
                stream = self._streams[(self._next_stream + offset) % count]
                frame = stream.inbox.take()
                if frame is not None:
                    taken.append(frame)
                    progress = True
                    if len(taken) == room:
                        break
        self._next_stream = (self._next_stream + 1) % max(count, 1)
        return taken

    def _all_drained(self) -> bool:
        return all(s.ended and len(s.inbox) == 0 for s in self._streams)

    def _collect(self) -> list[Frame] | None:
        """The next batch, or None when every stream has ended and nothing is left."""
        frames: list[Frame] = []
        deadline: float | None = None
        with self._arrived:
            while True:
                frames += self._take_round(self.max_batch - len(frames))
                if len(frames) == self.max_batch or (frames and not self._others_live(frames)):
                    return frames
                if frames and deadline is None:
                    deadline = time.monotonic() + self.config.max_wait_ms / 1e3
                if self._all_drained() or (self._stop.is_set() and not self._any_queued()):
                    return frames or None
                remaining_s = POLL_S if deadline is None else deadline - time.monotonic()
                if remaining_s <= 0:
                    return frames
                self._arrived.wait(min(remaining_s, POLL_S))

    def _others_live(self, frames: list[Frame]) -> bool:
        """Whether a stream not yet in the batch may still add a frame: if none can, waiting
        would only add latency (a single camera never waits)."""
        present = {f.stream_id for f in frames}
        return any(not s.ended and s.stream_id not in present for s in self._streams)

    def _any_queued(self) -> bool:
        return any(len(s.inbox) for s in self._streams)

    def _batch_loop(self) -> None:
        try:
            while self._take_infer_slot() and (frames := self._collect()) is not None:
                # A copy: the preprocessor reuses its buffer for the next batch while this one
                # is still being inferred.
                batch = self._preprocess(frames, copy=True)
                if batch is None:
                    self._infer_slot.release()
                    continue
                self._put(self._to_infer, batch, "to_infer")
        finally:
            self._to_infer.put(_END)

    def _take_infer_slot(self) -> bool:
        """Wait until inference can take the next batch; False if it stopped for good."""
        while not self._infer_slot.acquire(timeout=POLL_S):
            if self._infer_done.is_set():
                return False
        return True

    def _infer_loop(self) -> None:
        try:
            while (batch := self._to_infer.get()) is not _END:
                if not self._latency_first:
                    self._infer_slot.release()
                self.metrics.set_queue_depth("to_infer", self._to_infer.qsize())
                try:
                    inferred = self._infer(batch)
                finally:
                    if self._latency_first:
                        self._infer_slot.release()
                if inferred:
                    self._put(self._to_post, batch, "to_post")
        finally:
            self._infer_done.set()
            self._to_post.put(_END)

    def _post_loop(self) -> None:
        try:
            while (batch := self._to_post.get()) is not _END:
                self.metrics.set_queue_depth("to_post", self._to_post.qsize())
                for item in self._postprocess(batch):
                    self._put(self._to_sinks, item, "to_sinks")
        finally:
            self._to_sinks.put(_END)

    def _serial_loop(self) -> None:
        try:
            while (frames := self._collect()) is not None:
                batch = self._preprocess(frames, copy=False)
                if batch is None or not self._infer(batch):
                    continue
                for item in self._postprocess(batch):
                    self._put(self._to_sinks, item, "to_sinks")
        finally:
            self._to_sinks.put(_END)

    # --- the stages ----------------------------------------------------------------------------

    def _preprocess(self, frames: list[Frame], copy: bool) -> _Batch | None:
        """The batch for `frames` on the current detector, or None (counted) if it failed."""
        now = time.monotonic()
        for frame in frames:
            self.metrics.record_stage("queue_wait", (now - frame.capture_monotonic_s) * 1e3)
        started = time.perf_counter()
        detector = self.detector
        looks = [self._look(frame) for frame in frames]
        images = [_cropped(f.image_bgr, look) for f, look in zip(frames, looks, strict=True)
                  if look != SKIP]  # fmt: skip
        try:
            tensor, transforms = detector.preprocess(images) if images else (None, [])
        except Exception as exc:  # a bad frame must not stop the other streams
            self._batch_failed(frames, "preprocess", exc)
            return None
        if copy and tensor is not None:
            tensor = np.array(tensor)
        batch = _Batch(detector, frames, looks, tensor, transforms)
        self._track(detector, +1)
        self.metrics.record_stage("preprocess", (time.perf_counter() - started) * 1e3, len(images))
        return batch

    def _infer(self, batch: _Batch) -> bool:
        """Run the model on `batch`; False (counted) if the backend failed."""
        if batch.tensor is None:  # every frame skipped by motion gating
            return True
        started = time.perf_counter()
        try:
            batch.outputs = batch.detector.infer(batch.tensor)
        except Exception as exc:  # a backend error fails this batch only
            self._track(batch.detector, -1)
            self._batch_failed(batch.frames, "infer", exc)
            return False
        batch.tensor = None
        looked = len(batch.transforms or ())
        self.metrics.record_stage("infer", (time.perf_counter() - started) * 1e3, looked)
        return True

    def _postprocess(self, batch: _Batch) -> list[tuple[Frame, Any, Any]]:
        """`(frame, detections, crop)` for each frame of `batch` (detections None: skipped by
        motion gating; crop: where the detector looked, None for the whole frame); none
        (counted) if decoding failed."""
        started = time.perf_counter()
        try:
            decoded = iter(
                batch.detector.postprocess(batch.outputs, batch.transforms)
                if batch.outputs is not None
                else []
            )
        except Exception as exc:
            self._batch_failed(batch.frames, "postprocess", exc)
            return []
        finally:
            self._track(batch.detector, -1)
        if batch.outputs is not None:
            self.metrics.record_stage(
                "postprocess", (time.perf_counter() - started) * 1e3, len(batch.transforms or ())
            )
        items: list[tuple[Frame, Any, Any]] = []
        for frame, look in zip(batch.frames, batch.looks, strict=True):
            if look == SKIP:
                items.append((frame, None, None))
            elif look == FULL:
                items.append((frame, next(decoded), None))
            else:
                items.append((frame, _shifted(next(decoded), look), look))
        return items

    # --- sinks ---------------------------------------------------------------------------------

    def _sink_loop(self) -> None:
        limit = self.config.max_frames
        try:
            while (item := self._to_sinks.get()) is not _END:
                self.metrics.set_queue_depth("to_sinks", self._to_sinks.qsize())
                if limit is not None and self._delivered >= limit:
                    continue  # in flight when the limit was reached: not delivered
                frame, detections, crop = item
                result = self._analyse(frame, detections, crop)
                started = time.perf_counter()
                for sink in self.sinks:
                    try:
                        sink.write(result)
                    except Exception as exc:  # one broken sink must not stop the others
                        self.metrics.record_error(frame.stream_id, "sink")
                        self._failures.failed(f"sink {sink.uri}", str(exc))
                self.metrics.record_stage("sink", (time.perf_counter() - started) * 1e3)
                self.metrics.record_result(
                    frame.stream_id, (time.monotonic() - frame.capture_monotonic_s) * 1e3
                )
                self._delivered += 1
                if limit is not None and self._delivered >= limit:
                    self.stop()
        finally:
            self._failures.flush()
            for sink in self.sinks:
                try:
                    sink.close()
                except Exception as exc:
                    self._log(f"sink {sink.uri}: {exc}")
            self._finished.set()

    def _analyse(self, frame: Frame, detections: Any, crop: Any) -> Result:
        """The frame's result, through its stream's analytics when there are any (timed as the
        `track` stage). Shapes that do not fit the stream's frames turn its analytics off,
        logged and counted."""
        analytics = self._analytics.get(frame.stream_id)
        if analytics is None:
            return Result(frame, detections, time.time())
        started = time.perf_counter()
        capture_s = frame.capture_monotonic_s if self._live[frame.stream_id] else None
        try:
            with self._analytics_lock:
                if detections is None:  # motion gating skipped it: the tracks hold
                    detections, found = analytics.hold(frame.index, capture_s)
                else:
                    found = analytics.process(frame.index, capture_s, frame.capture_unix_s,
                                              detections.xyxy, detections.scores,
                                              detections.class_ids, frame.image_bgr,
                                              crop)  # fmt: skip
        except JetkitError as exc:
            del self._analytics[frame.stream_id]
            self.metrics.record_error(frame.stream_id, "analytics")
            self._log(f"{frame.stream_id}: analytics off: {exc}")
            return Result(frame, detections, time.time())
        detections, track_ids = with_held(detections, found)  # tracks outside a crop look
        reported, track_ids = keep_reported(detections, track_ids, self.config.report_conf)
        self.metrics.record_stage("track", (time.perf_counter() - started) * 1e3)
        return Result(frame, reported, time.time(), track_ids, tuple(found.messages),
                      found.trails)  # fmt: skip

    def _motion_gates(self, motion: MotionConfig | None) -> dict[str, MotionGate]:
        """A gate per stream that motion gating covers (none without `motion`); crops at least
        the model's input."""
        if motion is None:
            return {}
        input_h, input_w = self.detector.manifest.input.size_hw
        return {s.stream_id: MotionGate(motion, (input_w, input_h)) for s in self._streams
                if s.stream_id not in self.config.ungated_streams}  # fmt: skip

    def _look(self, frame: Frame) -> Any:
        """Where the detector looks in `frame`: FULL without motion gating, else the gate's
        say (counted per stream)."""
        gate = self._gates.get(frame.stream_id)
        if gate is None:
            return FULL
        decision = gate.decide(frame.image_bgr, frame.capture_monotonic_s)
        self.metrics.record_motion(frame.stream_id, decision.kind)
        return decision.xyxy if decision.kind == CROP else decision.kind

    def set_analytics(self, config: AnalyticsConfig) -> None:
        """New zones, lines, events, tracker or motion settings from the next frame on (their
        counts start again; motion gates start from a look at the whole frame); raises,
        changing nothing, if they do not fit the model or tracking was not on from the start
        (turning it on or off needs a restart)."""
        if not self._analytics or config.tracker is None:
            raise JetkitError(
                "turning tracking on or off takes a restart of the daemon; the analytics running "
                "now are kept"
            )
        classes = tuple(self.detector.manifest.classes)
        config.check_classes(classes)
        fresh = {}
        for stream, running in self._analytics.items():
            fresh[stream] = StreamAnalytics(stream, config, classes)
            if running.size_wh is not None:  # checked against the frames the stream gives
                fresh[stream].resolve(running.size_wh)
        gates = self._motion_gates(config.motion)
        with self._analytics_lock:
            self._analytics, self._gates = fresh, gates

    def analytics_status(self) -> dict[str, Any]:
        """Per stream: tracks, line counts, zone occupancy (for /status and the summary)."""
        with self._analytics_lock:
            return {stream: a.status() for stream, a in self._analytics.items()}

    def _put(self, target: queue.Queue[Any], item: Any, name: str) -> None:
        target.put(item)
        self.metrics.set_queue_depth(name, target.qsize())

    def _batch_failed(self, frames: list[Frame], stage: str, exc: Exception) -> None:
        for stream_id in sorted({f.stream_id for f in frames}):
            self.metrics.record_error(stream_id, stage)
        self._log(f"{stage} failed on a batch of {len(frames)} frame(s): {exc}")


def open_pipeline(
    uris: Sequence[SourceRef],
    sink_uris: Sequence[str],
    detector: Detector,
    config: PipelineConfig = PipelineConfig(),
    extra_sinks: Sequence[Sink] = (),
    log: Log = lambda _message: None,
) -> Pipeline:
    """The pipeline for source URIs (or `(uri, stream id)` pairs) and sink URIs, with its
    metrics, everything opened (not started);
    all or nothing: a start-up error closes what was opened and raises. A live source's
    reconnects are counted as `reconnect` errors of its stream and logged."""
    from edge.sinks import open_sink
    from edge.sources import open_streams, parse_source_uris

    metrics = PipelineMetrics([spec.stream_id for spec in parse_source_uris(uris)])

    def source_failed(stream_id: str, error: Exception, delay_s: float) -> None:
        metrics.record_error(stream_id, "reconnect")
        log(f"{stream_id}: {error}; reconnecting in {delay_s:.1f} s")

    sources = open_streams(uris, on_error=source_failed, log=log)
    sinks: list[Sink] = []
    try:
        sinks = [open_sink(uri) for uri in sink_uris]
        return Pipeline(sources, detector, [*sinks, *extra_sinks], metrics, config, log)
    except BaseException:
        for sink in sinks:
            sink.close()
        for _, source in sources:
            source.close()
        raise
