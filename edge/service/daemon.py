"""The daemon: the pipeline on the configured streams, its health, and model reloads.

A reload (SIGHUP, `POST /reload`, or a new model behind the model pointer) opens and warms the
new model beside the old one and swaps it in between batches: no stream stops, no frame is
dropped for it. A model that fails to load leaves the old one running; the error is logged and
reported by `/status`, and the pointer watch leaves that model alone until the pointer changes.
A reload of the model that runs already does nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edge.analytics.stream import run_at_tracker_threshold
from edge.cli import stderr_log
from edge.detector import Detector
from edge.errors import JetkitError
from edge.metrics import TegrastatsReader
from edge.pipeline import PipelineConfig, backend_options, open_pipeline
from edge.service.config import ServiceConfig, load_config
from edge.service.model import ModelIdentity, identify
from edge.sinks import Result
from edge.sources import parse_source_uris

Log = Callable[[str], None]


class HealthSink:
    """A sink that remembers when each stream last delivered a result (monotonic seconds)."""

    uri = "health://"

    def __init__(self, stream_ids: Sequence[str]) -> None:
        self.last_result_s: dict[str, float | None] = {s: None for s in stream_ids}

    def write(self, result: Result) -> None:
        self.last_result_s[result.frame.stream_id] = time.monotonic()

    def close(self) -> None:
        return None


@dataclass(frozen=True)
class StreamHealth:
    stream_id: str
    healthy: bool
    state: str  # "delivering", "reconnecting", "starting", "stalled"
    last_result_age_s: float | None


def stream_health(
    stream_id: str,
    last_result_s: float | None,
    in_backoff: bool,
    started_s: float,
    now_s: float,
    stale_after_s: float,
) -> StreamHealth:
    """Healthy while results keep coming or the source is in reconnect backoff; a stream gets
    `stale_after_s` after start-up to deliver its first result."""
    age_s = None if last_result_s is None else now_s - last_result_s
    if age_s is not None and age_s <= stale_after_s:
        return StreamHealth(stream_id, True, "delivering", age_s)
    if in_backoff:
        return StreamHealth(stream_id, True, "reconnecting", age_s)
    if age_s is None and now_s - started_s <= stale_after_s:
        return StreamHealth(stream_id, True, "starting", None)
    return StreamHealth(stream_id, False, "stalled", age_s)


def _reload_result(
    ok: bool, model: Path, changed: bool, error: str | None = None
) -> dict[str, Any]:
    return {"ok": ok, "model": str(model), "changed": changed, "error": error}


class Service:
    """Construct (stores the config), `start()` (start-up errors raise JetkitError), then
    `reload()`, `health()`, `status()` from any thread, and `stop()` once."""

    def __init__(
        self, config: ServiceConfig, log: Log = stderr_log, config_path: Path | None = None
    ) -> None:
        self.config = config
        self.config_path = config_path  # read again on reload, for its analytics
        self._log = log
        self._reload_lock = threading.Lock()
        self.reloads = 0
        self.failed_reloads = 0
        self.last_reload_error: str | None = None
        self.identity: ModelIdentity | None = None
        # The model that last failed to load: the pointer watch does not try it again.
        self._failed_identity: ModelIdentity | None = None

    # --- life cycle ----------------------------------------------------------------------------

    def start(self) -> None:
        from edge.backends.tensorrt import tensorrt_missing

        config = self.config
        self._tensorrt = tensorrt_missing() is None
        self.identity = identify(config.model, self._tensorrt)
        detector = self._open_detector(self.identity)
        report_conf = run_at_tracker_threshold(detector, config.analytics)
        self.specs = parse_source_uris(config.stream_uris)
        self.stream_ids = [spec.stream_id for spec in self.specs]
        self._health_sink = HealthSink(self.stream_ids)
        try:
            self.pipeline = open_pipeline(
                config.stream_uris,
                config.sinks,
                detector,
                PipelineConfig(
                    max_batch=config.max_batch,
                    max_wait_ms=config.max_wait_ms,
                    analytics=config.analytics,
                    report_conf=report_conf,
                    ungated_streams=frozenset(
                        spec.stream_id
                        for spec, stream in zip(self.specs, config.streams, strict=True)
                        if not stream.motion
                    ),
                ),
                extra_sinks=[self._health_sink],
                log=self._log,
            )
        except BaseException:
            detector.close()
            raise
        self.metrics = self.pipeline.metrics
        self._power = TegrastatsReader()  # on a Jetson: board power, GPU load, temperatures
        if self._power.start():
            self.metrics.attach_power(self._power)
        self.started_s = time.monotonic()
        self.pipeline.start()
        self._log(
            f"serving {self.identity.path.name} on {len(self.stream_ids)} stream(s): "
            + ", ".join(spec.safe_uri for spec in self.specs)
        )

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Stop capture, let the frames in flight through, close the sinks and the model.
        Returns False when the frames in flight took longer than `timeout_s`."""
        self.pipeline.stop()
        drained = self.pipeline.wait(timeout_s)
        self._power.stop()
        self.pipeline.detector.close()
        return drained

    # --- reload --------------------------------------------------------------------------------

    def reload(self, reason: str) -> dict[str, Any]:
        """Load the model the config points to now and swap it in, and the config file's
        analytics when they changed; on failure keep what runs. The model running already (same
        file, size and mtime) is not loaded again: on a Jetson a second engine would take as
        much GPU memory as the first.
        Returns `{"ok": bool, "model": path, "changed": bool, "error": …}`."""
        with self._reload_lock:
            result = self._reload_model(reason)
            analytics_error = self._reload_analytics(reason)
        if analytics_error is not None:
            errors = [e for e in (result["error"], analytics_error) if e]
            result = {**result, "ok": False, "error": "; ".join(errors)}
        return result

    def _reload_model(self, reason: str) -> dict[str, Any]:
        identity: ModelIdentity | None = None
        try:
            identity = identify(self.config.model, self._tensorrt)
            if identity == self.identity:
                self._failed_identity = self.last_reload_error = None
                return _reload_result(True, identity.path, changed=False)
            detector = self._open_detector(identity)
            run_at_tracker_threshold(detector, self.config.analytics)
            old = self.pipeline.swap_detector(detector)
        except Exception as exc:  # whatever the new model does wrong, the old one runs on
            self.failed_reloads += 1
            self._failed_identity = identity
            self.last_reload_error = f"{reason}: {exc}"
            self._log(f"reload ({reason}) failed, still running the previous model: {exc}")
            return _reload_result(False, self._model_path(), changed=False, error=str(exc))
        old.close()
        self.identity = identity
        self.reloads += 1
        self._failed_identity = self.last_reload_error = None
        self._log(f"reloaded ({reason}): now running {identity.path}")
        return _reload_result(True, identity.path, changed=True)

    def _reload_analytics(self, reason: str) -> str | None:
        """The config file's analytics (tracker, zones, lines, events), swapped in when they
        changed; on a mistake the running ones are kept and the error returned."""
        if self.config_path is None:
            return None
        try:
            fresh = load_config(self.config_path).analytics
            if fresh == self.config.analytics:
                return None
            if fresh is None:
                raise JetkitError(
                    "the config has no tracker any more: turning tracking off takes a restart; "
                    "the analytics running now are kept"
                )
            self.pipeline.set_analytics(fresh)
        except JetkitError as exc:
            self.failed_reloads += 1
            self.last_reload_error = f"{reason}: {exc}"
            self._log(f"reload ({reason}) failed, keeping the analytics running now: {exc}")
            return str(exc)
        self.config = replace(self.config, analytics=fresh)
        self._log(f"reloaded ({reason}): new analytics from {self.config_path}")
        return None

    def check_model_pointer(self) -> None:
        """Reload when the model behind the pointer changed (a new release, a new file). A model
        that failed to load is not tried again until the pointer changes once more: each try of
        a broken engine costs seconds and memory, and would be logged every `watch_model_s`.
        SIGHUP and POST /reload still try it."""
        try:
            current = identify(self.config.model, self._tensorrt)
        except JetkitError:
            return  # mid-switch or broken: the next check, or /status after a reload, tells
        if current not in (self.identity, self._failed_identity):
            self.reload("the model changed")

    def _open_detector(self, identity: ModelIdentity) -> Detector:
        config = self.config
        options = backend_options(identity.path, config.backend, config.threads)
        thresholds = {
            k: v for k, v in (("conf", config.conf), ("iou", config.iou)) if v is not None
        }
        detector = Detector.open(
            identity.path, backend=config.backend, backend_options=options, **thresholds
        )
        try:
            # Warm-up outside the stream: first inferences allocate and pick kernels.
            size_hw = detector.manifest.input.size_hw
            blank = np.full((*size_hw, 3), 114, np.uint8)
            for _ in range(2):
                detector.detect_batch([blank])
        except BaseException:
            detector.close()
            raise
        return detector

    def _model_path(self) -> Path:
        return self.identity.path if self.identity else self.config.model

    # --- health and status ---------------------------------------------------------------------

    def health(self) -> tuple[bool, list[StreamHealth]]:
        now_s = time.monotonic()
        streams = [
            stream_health(
                stream_id,
                self._health_sink.last_result_s.get(stream_id),
                bool(getattr(source, "in_backoff", False)),
                self.started_s,
                now_s,
                self.config.stale_after_s,
            )
            for stream_id, source in self.pipeline.sources
        ]
        return all(s.healthy for s in streams), streams

    def status(self) -> dict[str, Any]:
        healthy, streams = self.health()
        snapshot = self.metrics.snapshot()
        by_id = {spec.stream_id: spec for spec in self.specs}
        sources = dict(self.pipeline.sources)
        return {
            "healthy": healthy,
            "uptime_s": round(time.monotonic() - self.started_s, 3),
            "model": {
                "path": str(self._model_path()),
                "pointer": str(self.config.model),
                "name": self.pipeline.detector.manifest.name,
                "reloads": self.reloads,
                "failed_reloads": self.failed_reloads,
                "last_reload_error": self.last_reload_error,
            },
            "streams": [
                {
                    "id": s.stream_id,
                    "uri": by_id[s.stream_id].safe_uri,
                    "healthy": s.healthy,
                    "state": s.state,
                    "last_result_age_s": s.last_result_age_s,
                    "reconnects": getattr(sources[s.stream_id], "reconnects", 0),
                    **snapshot["streams"].get(s.stream_id, {}),
                }
                for s in streams
            ],
            "stages": snapshot["stages"],
            "e2e": snapshot["e2e"],
            "total_fps": snapshot["total_fps"],
            "power": snapshot.get("power"),
            **({"analytics": snapshot["analytics"]} if "analytics" in snapshot else {}),
        }
