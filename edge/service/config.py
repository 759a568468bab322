"""The daemon's configuration: a YAML file read into frozen dataclasses, each value checked on
construction; every error names the key path (`streams[1].uri`) and the file.

```yaml
model: /opt/jetkit/current      # a model file, or a release pointer directory (see model_file)
backend: onnxruntime            # optional: onnxruntime | tensorrt (default: from the file type)
threads: 2                      # optional: ONNX Runtime intra-op threads
streams:
  - uri: csi://0
    id: door                    # optional (default s0, s1, …)
  - uri: rtsp://cam.local/stream
    motion: false               # optional: motion gating leaves this stream alone
sinks: [jsonl:///var/log/jetkit/results.jsonl]
thresholds: {conf: 0.25, iou: 0.45}
batching: {max_batch: 4, max_wait_ms: 5}
http:
  listen: 127.0.0.1:8080        # the default: reachable from this machine only
  token: 3f9c…                  # optional (or JETKIT_HTTP_TOKEN): POST /reload then needs
                                # `Authorization: Bearer <token>`; required beyond loopback
  read_timeout_s: 10            # a request must arrive in full within this, else it is closed
tracker: {kind: bytetrack, high: 0.5, low: 0.1, match_iou: 0.2, buffer_frames: 30}
zones:                          # optional, with tracker: polygons in pixels or frame fractions
  - {name: porch, points: [[0.1, 0.5], [0.5, 0.5], [0.5, 1], [0.1, 1]], classes: [person]}
lines:                          # optional, with tracker: crossings to the left are "in"
  - {name: gate, points: [[0, 0.6], [1, 0.6]], classes: [car], band_px: 8}
events: {update_interval_s: 5, crops: false}
motion: {full_every_s: 5}       # optional, with tracker: detect only where something moved
log_interval_s: 30
watch_model_s: 2                # how often a model pointer is checked for a new release
stale_after_s: 5                # a stream with no result for this long is unhealthy
summary: /var/lib/jetkit/summary.json   # optional: metrics written at exit
```
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.backends.onnxruntime import MAX_THREADS
from edge.errors import JetkitError

if TYPE_CHECKING:
    from edge.analytics.stream import AnalyticsConfig

DEFAULT_LISTEN = "127.0.0.1:8080"
# Long enough for a slow link to send a request head; short enough that idle connections free
# their sockets soon.
DEFAULT_READ_TIMEOUT_S = 10.0
TOKEN_ENV = "JETKIT_HTTP_TOKEN"
# It travels in an HTTP header: visible ASCII only, no spaces.
_TOKEN = re.compile(r"[!-~]+")


class ConfigError(JetkitError):
    def __init__(self, key_path: str, problem: str, source: str | None = None) -> None:
        where = f" in {source}" if source else ""
        super().__init__(f"config key '{key_path}'{where}: {problem}")
        self.key_path = key_path


@dataclass(frozen=True)
class StreamConfig:
    """`motion` False: motion gating (the top-level `motion:`) leaves this stream alone."""

    uri: str
    id: str | None = None
    motion: bool = True


@dataclass(frozen=True)
class HttpConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = field(default=None, repr=False)  # kept out of logs and tracebacks
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S

    @property
    def loopback(self) -> bool:
        """Whether only this machine can connect (a host name may resolve anywhere: not)."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def wildcard(self) -> bool:
        """Listening on every interface, so clients may use any name for this machine."""
        return self.host in ("", "0.0.0.0", "::")


@dataclass(frozen=True)
class ServiceConfig:
    model: Path
    streams: tuple[StreamConfig, ...]
    sinks: tuple[str, ...] = ()
    backend: str | None = None
    threads: int | None = None
    conf: float | None = None
    iou: float | None = None
    max_batch: int | None = None
    max_wait_ms: float = 5.0
    http: HttpConfig = field(default_factory=HttpConfig)
    log_interval_s: float = 30.0
    watch_model_s: float = 2.0
    stale_after_s: float = 5.0
    summary: Path | None = None
    analytics: AnalyticsConfig | None = None

    @property
    def stream_uris(self) -> list[tuple[str, str | None]]:
        """`(uri, id)` per stream, as `parse_source_uris` and `open_pipeline` take them: the id
        beside the URI, not spliced into it, works for paths and `gst://` pipelines too."""
        return [(stream.uri, stream.id) for stream in self.streams]


_TOP_KEYS = {
    "model", "streams", "sinks", "backend", "threads", "thresholds", "batching", "http",
    "log_interval_s", "watch_model_s", "stale_after_s", "summary", "tracker", "zones", "lines",
    "events", "motion",
}  # fmt: skip


def _show(value: object, show: Callable[[object], str] = repr) -> str:
    """`value` for a message: an integer of 4300+ digits (YAML's hex and base-60 integers can
    be that long) makes repr() and str() raise."""
    try:
        return show(value)
    except ValueError:
        return f"<a {type(value).__name__} too long to show>"


def _mapping(value: object, path: str, known: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(path, f"must be a mapping, got {type(value).__name__}")
    unknown = sorted(set(value) - known, key=lambda key: _show(key, str))  # YAML keys: any type
    if unknown:
        prefix = f"{path}." if path else ""
        raise ConfigError(
            f"{prefix}{_show(unknown[0], str)}", f"unknown key (known: {', '.join(sorted(known))})"
        )
    return value


def _number(
    value: object, path: str, low: float, high: float | None = None, integer: bool = False
) -> Any:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        noun = "an integer" if integer else "a number"
        raise ConfigError(path, f"must be {noun}, got {_show(value)}")
    try:
        finite = math.isfinite(value)  # YAML has .nan and .inf
    except OverflowError:  # an integer beyond float range
        finite = integer
    if not finite:
        raise ConfigError(path, f"must be a finite number, got {_show(value)}")
    if value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ConfigError(path, f"must be {bounds}, got {_show(value)}")
    return value


def _text(value: object, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(path, f"must be a non-empty string, got {_show(value)}")
    return value


def _stream_id(value: object, path: str) -> str:
    from edge.sources.uri import STREAM_ID_RULE, is_stream_id  # numpy with it: only when used

    if not isinstance(value, str) or not is_stream_id(value):
        raise ConfigError(path, f"must be {STREAM_ID_RULE}, got {_show(value)}")
    return value


def _token(value: object, path: str) -> str:
    # The value itself stays out of the message: it is a secret.
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise ConfigError(
            path,
            "must be printable ASCII without spaces (it is sent in an HTTP header), e.g. the "
            "output of `openssl rand -hex 32`",
        )
    return value


def _http_config(section: dict[str, Any]) -> HttpConfig:
    listen = parse_listen(_text(section.get("listen", DEFAULT_LISTEN), "http.listen"))
    timeout_s = section.get("read_timeout_s", DEFAULT_READ_TIMEOUT_S)
    return replace(
        listen,
        token=_token(section["token"], "http.token") if "token" in section else None,
        read_timeout_s=float(_number(timeout_s, "http.read_timeout_s", 0.1, 3600)),
    )


def parse_listen(text: str, path: str = "http.listen") -> HttpConfig:
    """`HOST:PORT` (`[::1]:8080` for IPv6) → HttpConfig; port 0 asks the system for a free one."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not (port.isascii() and port.isdigit() and len(port) <= 5):
        raise ConfigError(path, f"must be HOST:PORT, e.g. {DEFAULT_LISTEN}, got {text!r}")
    return HttpConfig(host.strip("[]"), int(_number(int(port), path, 0, 65535, integer=True)))


def config_from_dict(data: object, source: str | None = None) -> ServiceConfig:
    try:
        return _config_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(exc.key_path, str(exc).split(": ", 1)[1], source) from None


def _config_from_dict(data: object) -> ServiceConfig:
    top = _mapping(data, "", _TOP_KEYS)
    if "model" not in top:
        raise ConfigError("model", "required: a model file or a release pointer directory")
    if "streams" not in top:
        raise ConfigError("streams", "required: a list of sources, e.g. [{uri: 'csi://0'}]")
    raw_streams = top["streams"]
    if not isinstance(raw_streams, list) or not raw_streams:
        raise ConfigError("streams", "must be a non-empty list")
    streams = []
    for k, item in enumerate(raw_streams):
        if isinstance(item, str):
            item = {"uri": item}
        entry = _mapping(item, f"streams[{k}]", {"uri", "id", "motion"})
        if "uri" not in entry:
            raise ConfigError(f"streams[{k}].uri", "required")
        stream_id = entry.get("id")
        motion = entry.get("motion", True)
        if not isinstance(motion, bool):
            raise ConfigError(f"streams[{k}].motion", f"must be true or false, got {_show(motion)}")
        if "motion" in entry and "motion" not in top:
            raise ConfigError(f"streams[{k}].motion", "gating needs the top-level motion: settings")
        streams.append(
            StreamConfig(
                _text(entry["uri"], f"streams[{k}].uri"),
                None if stream_id is None else _stream_id(stream_id, f"streams[{k}].id"),
                motion,
            )
        )
    sinks = top.get("sinks", [])
    if not isinstance(sinks, list):
        raise ConfigError("sinks", "must be a list of sink URIs")
    thresholds = _mapping(top.get("thresholds", {}), "thresholds", {"conf", "iou"})
    batching = _mapping(top.get("batching", {}), "batching", {"max_batch", "max_wait_ms"})
    http = _mapping(top.get("http", {}), "http", {"listen", "token", "read_timeout_s"})
    backend = top.get("backend")
    if backend is not None and backend not in ("onnxruntime", "tensorrt"):
        raise ConfigError("backend", f"must be onnxruntime or tensorrt, got {_show(backend)}")
    optional = {
        key: _number(top[key], key, 1, MAX_THREADS, integer=True)
        for key in ("threads",)
        if key in top
    }
    return ServiceConfig(
        model=Path(_text(top["model"], "model")),
        streams=tuple(streams),
        sinks=tuple(_text(s, f"sinks[{k}]") for k, s in enumerate(sinks)),
        backend=backend,
        threads=optional.get("threads"),
        conf=_optional_number(thresholds, "conf", "thresholds", 0.0, 1.0),
        iou=_optional_number(thresholds, "iou", "thresholds", 0.0, 1.0),
        max_batch=(
            _number(batching["max_batch"], "batching.max_batch", 1, integer=True)
            if "max_batch" in batching
            else None
        ),
        max_wait_ms=float(
            _number(batching.get("max_wait_ms", 5.0), "batching.max_wait_ms", 0, 10_000)
        ),
        http=_http_config(http),
        log_interval_s=float(_number(top.get("log_interval_s", 30.0), "log_interval_s", 0.1)),
        watch_model_s=float(_number(top.get("watch_model_s", 2.0), "watch_model_s", 0.1)),
        stale_after_s=float(_number(top.get("stale_after_s", 5.0), "stale_after_s", 0.1)),
        summary=Path(_text(top["summary"], "summary")) if "summary" in top else None,
        analytics=_analytics_config(top),
    )


def _analytics_config(top: dict[str, Any]) -> AnalyticsConfig | None:
    """`tracker`, `zones`, `lines`, `events`; None without any of them."""
    if not any(key in top for key in ("tracker", "zones", "lines", "events", "motion")):
        return None
    # numpy comes with these: only for a config that uses them.
    from edge.analytics.bytetrack import TrackerConfig
    from edge.analytics.events import EventsConfig
    from edge.analytics.motion import MotionConfig
    from edge.analytics.stream import AnalyticsConfig
    from edge.analytics.zones import LineConfig, ZoneConfig

    tracker = None
    if "tracker" in top:
        section = _mapping(top["tracker"] or {}, "tracker",
                           {"kind", "high", "low", "match_iou", "buffer_frames"})  # fmt: skip
        tracker = _checked("tracker", TrackerConfig, **section)
    events = _mapping(top.get("events") or {}, "events", {"update_interval_s", "crops"})
    shapes: dict[str, list[Any]] = {"zones": [], "lines": []}
    for kind, make in (("zones", ZoneConfig), ("lines", LineConfig)):
        items = top.get(kind) or []
        if not isinstance(items, list):
            raise ConfigError(kind, "must be a list of {name, points, …}")
        extra = {"band_px"} if kind == "lines" else set()
        for k, item in enumerate(items):
            entry = _mapping(item, f"{kind}[{k}]", {"name", "points", "classes", "anchor"} | extra)
            if "name" not in entry or "points" not in entry:
                raise ConfigError(f"{kind}[{k}]", "needs name and points")
            name = _text(entry["name"], f"{kind}[{k}].name")
            classes = entry.get("classes")
            if classes is not None and (not isinstance(classes, list) or not all(
                    isinstance(c, str) for c in classes)):  # fmt: skip
                raise ConfigError(f"{kind}[{k}].classes", "must be a list of class names")
            options = {key: entry[key] for key in extra | {"anchor"} if key in entry}
            shapes[kind].append(_checked(
                f"{kind}[{k}]", make, name, entry["points"],
                None if classes is None else tuple(classes), **options))  # fmt: skip
    events_config = _checked("events", EventsConfig, **events)
    motion = None
    if "motion" in top:
        known = {"width_px", "threshold", "min_area", "crop_max_area", "margin",
                 "full_every_s"}  # fmt: skip
        motion = _checked("motion", MotionConfig, **_mapping(top["motion"] or {}, "motion", known))
    return _checked("tracker", AnalyticsConfig, tracker, tuple(shapes["zones"]),
                    tuple(shapes["lines"]), events_config, motion)  # fmt: skip


def _checked(path: str, make: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`make(*args, **kwargs)`, its JetkitError (which names the field) raised as a
    ConfigError at `path`."""
    try:
        return make(*args, **kwargs)
    except TypeError as exc:  # a value of the wrong type deep in a dataclass
        raise ConfigError(path, str(exc)) from None
    except ConfigError:
        raise
    except JetkitError as exc:
        raise ConfigError(path, str(exc)) from None


def _optional_number(
    section: dict[str, Any], key: str, prefix: str, low: float, high: float
) -> float | None:
    if key not in section:
        return None
    return float(_number(section[key], f"{prefix}.{key}", low, high))


def load_config(path: str | Path) -> ServiceConfig:
    """Read and validate a YAML config file; errors name the file and the key."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise JetkitError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise JetkitError(f"config file {path} cannot be read ({exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise JetkitError(f"config file {path} is not valid YAML{where}") from None
    except (ValueError, RecursionError) as exc:  # `2020-13-01`, `!!int x`, `[[[…]]]` too deep
        raise JetkitError(f"config file {path} is not valid YAML ({exc})") from None
    config = config_from_dict(data, str(path))
    if not config.model.is_absolute():
        # Relative to the config file, so a unit's working directory does not matter.
        config = replace(config, model=path.parent / config.model)
    token = os.environ.get(TOKEN_ENV)
    if config.http.token is None and token:
        # The environment keeps the secret out of a config file that many may read.
        try:
            checked = _token(token, "http.token")
        except ConfigError as exc:
            raise ConfigError(exc.key_path, str(exc).split(": ", 1)[1], TOKEN_ENV) from None
        config = replace(config, http=replace(config.http, token=checked))
    return config
