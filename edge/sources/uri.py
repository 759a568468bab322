"""Source URIs parsed into validated specs, without touching devices, files or the network.

`csi://0?width=1280&height=720&fps=30&flip=0`   Jetson CSI camera (nvarguscamerasrc)
`v4l2:///dev/video0?width=640&height=480&fps=30&format=mjpg`   USB camera (a bare
    `/dev/videoN` path means the same)
`rtsp://user:pw@host/stream?latency=100&codec=h264`   network camera; other query params stay in
    the URI the camera gets
`file:///clips/a.mp4`, `clips/a.mp4`   a video file; an image suffix makes it a single still
`images://stills/`   a directory of stills, in name order
`test://?size=1280x720&fps=30&pattern=blobs&count=100&seed=0`   synthetic frames
`test://?pattern=moving&objects=20&gt=gt.txt`   boxes crossing, with MOTChallenge ground truth
                                               (`moving=0.2`: they move a fifth of the time)
`gst://… ! appsink`   a GStreamer pipeline as written (no params: a `?` belongs to the pipeline)

Every URI but `gst://` and a plain path takes `id=NAME`, the stream id; it defaults to `s<index>`,
the source's position on the command line. A source given as `(uri, id)` (a daemon config's
`{uri, id}`) has its id beside the URI, which works for every kind, `gst://` and paths included.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar
from urllib.parse import unquote

from edge.errors import JetkitError
from edge.images import IMAGE_SUFFIXES
from edge.redact import redact

SourceKind = Literal["csi", "v4l2", "rtsp", "file", "images", "test", "gst"]
SCHEMES: tuple[SourceKind, ...] = ("csi", "v4l2", "rtsp", "file", "images", "test", "gst")
PATTERNS = ("blobs", "noise", "gradient", "moving")
# The most objects `pattern=moving` draws: past this the frame is more boxes than background.
MAX_OBJECTS = 200
V4L2_FORMATS = ("raw", "mjpg")
RTSP_CODECS = ("h264", "h265")
MIN_SIZE_WH = (16, 16)
# Past any camera mode. A test:// frame this size is already 200 MB of BGR; a larger size would
# exhaust the memory (a traceback from numpy) rather than fail here with a message.
MAX_SIZE_WH = (8192, 8192)

_Number = TypeVar("_Number", int, float)
# A stream id goes into topics, file names (`{stream}`) and metric labels: no separators, no
# leading dot or dash.
_STREAM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
STREAM_ID_RULE = "1-64 letters, digits, '_', '-' or '.', starting with a letter or digit"
# At most 9 digits: int() refuses 4300+ and no camera has a billion pixels a side.
_SIZE = re.compile(r"(\d{1,9})x(\d{1,9})")
_VIDEO_DEVICE = re.compile(r"/dev/video\d+")
_LIVE_KINDS = ("csi", "v4l2", "rtsp", "test")
_SCHEME_LIST = ", ".join(f"{scheme}://" for scheme in SCHEMES)


def _check_size(size_wh: tuple[int, int]) -> None:
    width, height = size_wh
    if width < MIN_SIZE_WH[0] or height < MIN_SIZE_WH[1]:
        raise JetkitError(
            f"size must be at least {MIN_SIZE_WH[0]}x{MIN_SIZE_WH[1]}, got {width}x{height}"
        )
    if width > MAX_SIZE_WH[0] or height > MAX_SIZE_WH[1]:
        raise JetkitError(
            f"size must be at most {MAX_SIZE_WH[0]}x{MAX_SIZE_WH[1]}, got {width}x{height}"
        )


def _check_fps(fps: float) -> None:
    if not 0 < fps < math.inf:
        raise JetkitError(f"fps must be > 0 and finite, got {fps:g}")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise JetkitError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


@dataclass(frozen=True)
class CsiParams:
    """`nvarguscamerasrc` capture mode and `nvvidconv flip-method` (0 none … 2 rotate 180 …)."""

    size_wh: tuple[int, int] = (1280, 720)
    fps: float = 30.0
    flip: int = 0

    def __post_init__(self) -> None:
        _check_size(self.size_wh)
        _check_fps(self.fps)
        if not 0 <= self.flip <= 7:
            raise JetkitError(f"flip must be an nvvidconv flip-method 0..7, got {self.flip}")


@dataclass(frozen=True)
class V4l2Params:
    """The capture mode to ask the camera for; None lets the camera choose."""

    size_wh: tuple[int, int] | None = None
    fps: float | None = None
    format: str = "raw"

    def __post_init__(self) -> None:
        if self.size_wh is not None:
            _check_size(self.size_wh)
        if self.fps is not None:
            _check_fps(self.fps)
        _check_choice("format", self.format, V4L2_FORMATS)


@dataclass(frozen=True)
class RtspParams:
    """`latency_ms` is rtspsrc's jitter buffer: small keeps the delay low on a good network."""

    latency_ms: int = 100
    codec: str = "h264"

    def __post_init__(self) -> None:
        if self.latency_ms < 0:
            raise JetkitError(f"latency must be >= 0 ms, got {self.latency_ms}")
        _check_choice("codec", self.codec, RTSP_CODECS)


@dataclass(frozen=True)
class SyntheticParams:
    """Synthetic frames at `fps`; `count` frames in all (None: endless); same `seed`, same frames.
    `objects`, `gt`: pattern `moving`'s number of objects and where its ground truth of the
    delivered frames goes (MOTChallenge rows, written when the source closes); `moving`: the
    share of the time its objects move (the rest they stand still)."""

    size_wh: tuple[int, int] = (1280, 720)
    fps: float = 30.0
    pattern: str = "blobs"
    count: int | None = None
    seed: int = 0
    objects: int = 8
    gt: str | None = None
    moving: float = 1.0

    def __post_init__(self) -> None:
        _check_size(self.size_wh)
        _check_fps(self.fps)
        _check_choice("pattern", self.pattern, PATTERNS)
        if self.count is not None and self.count < 1:
            raise JetkitError(f"count must be >= 1, got {self.count}")
        if self.seed < 0:
            raise JetkitError(f"seed must be >= 0, got {self.seed}")
        if not 1 <= self.objects <= MAX_OBJECTS:
            raise JetkitError(f"objects must be in [1, {MAX_OBJECTS}], got {self.objects}")
        if self.gt is not None and self.pattern != "moving":
            raise JetkitError("gt= writes the ground truth of pattern=moving only")
        if not 0 < self.moving <= 1:
            raise JetkitError(f"moving must be in (0, 1], got {self.moving:g}")
        if self.moving != 1 and self.pattern != "moving":
            raise JetkitError("moving= is the share of time pattern=moving's objects move")


SourceParams = CsiParams | V4l2Params | RtspParams | SyntheticParams | None
# A source: its URI, or its URI and its stream id beside it (None: the URI's or the default).
SourceRef = str | tuple[str, str | None]
_PARAMS_TYPE: dict[SourceKind, type | None] = {
    "csi": CsiParams,
    "v4l2": V4l2Params,
    "rtsp": RtspParams,
    "file": None,
    "images": None,
    "test": SyntheticParams,
    "gst": None,
}


@dataclass(frozen=True)
class SourceSpec:
    """A parsed source. `location`: the CSI sensor id, device path, camera URI, file or directory
    path, or the GStreamer pipeline text; empty for `test://`."""

    uri: str
    kind: SourceKind
    location: str
    stream_id: str
    params: SourceParams = None

    def __post_init__(self) -> None:
        if self.kind not in SCHEMES:
            raise JetkitError(f"kind must be one of {', '.join(SCHEMES)}, got {self.kind!r}")
        if not is_stream_id(self.stream_id):
            raise JetkitError(f"id must be {STREAM_ID_RULE}, got {self.stream_id!r}")
        expected = _PARAMS_TYPE[self.kind]
        if (self.params is None) != (expected is None) or (
            expected is not None and not isinstance(self.params, expected)
        ):
            raise JetkitError(
                f"params of a {self.kind} source must be {expected and expected.__name__}, "
                f"got {type(self.params).__name__}"
            )

    @property
    def safe_uri(self) -> str:
        """The URI for messages, logs and `/status`: its credentials masked."""
        return redact(self.uri)

    @property
    def live(self) -> bool:
        """Produces at its own pace (keep only the newest frame) rather than waiting for reads."""
        if self.kind == "gst":
            return not self.location.lstrip().startswith("filesrc")
        return self.kind in _LIVE_KINDS


def is_stream_id(text: str) -> bool:
    return _STREAM_ID.fullmatch(text) is not None


def _query(text: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for piece in filter(None, text.split("&")):
        name, equals, value = piece.partition("=")
        if not equals:
            raise JetkitError(f"param {name!r} needs a value ({name}=VALUE)")
        if name in params:
            raise JetkitError(f"param {name!r} is given twice")
        params[name] = unquote(value)
    return params


def _take(params: dict[str, str], allowed: Sequence[str], scheme: str) -> None:
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise JetkitError(f"unknown param {unknown[0]!r} for {scheme}://; use {', '.join(allowed)}")


def _number(params: dict[str, str], name: str, kind: type[_Number]) -> _Number | None:
    if name not in params:
        return None
    try:
        return kind(params[name])
    except ValueError:
        noun = "an integer" if kind is int else "a number"
        raise JetkitError(f"param {name!r} must be {noun}, got {params[name]!r}") from None


def _size(params: dict[str, str]) -> tuple[int, int] | None:
    """`size=WxH`, or `width` and `height` given together."""
    if "size" in params:
        match = _SIZE.fullmatch(params["size"])
        if match is None:
            raise JetkitError(
                f"param 'size' must be WIDTHxHEIGHT like 1280x720, got {params['size']!r}"
            )
        return int(match.group(1)), int(match.group(2))
    width, height = _number(params, "width", int), _number(params, "height", int)
    if (width is None) != (height is None):
        raise JetkitError("params 'width' and 'height' go together: give both or neither")
    return None if width is None or height is None else (width, height)


def _csi(location: str, params: dict[str, str]) -> tuple[str, CsiParams]:
    if not (location.isascii() and location.isdigit() and len(location) <= 9):  # not "²"
        raise JetkitError(f"csi:// takes a sensor number like csi://0, got {location!r}")
    _take(params, ("width", "height", "fps", "flip", "id"), "csi")
    defaults = CsiParams()
    fps, flip = _number(params, "fps", float), _number(params, "flip", int)
    return str(int(location)), CsiParams(
        size_wh=_size(params) or defaults.size_wh,
        fps=defaults.fps if fps is None else fps,
        flip=defaults.flip if flip is None else flip,
    )


def _v4l2(location: str, params: dict[str, str]) -> tuple[str, V4l2Params]:
    device = f"/dev/video{location}" if location.isdigit() else location
    if not _VIDEO_DEVICE.fullmatch(device):
        raise JetkitError(f"v4l2:// takes a device like v4l2:///dev/video0, got {location!r}")
    _take(params, ("width", "height", "fps", "format", "id"), "v4l2")
    return device, V4l2Params(
        size_wh=_size(params), fps=_number(params, "fps", float), format=params.get("format", "raw")
    )


def _rtsp(uri: str) -> tuple[str, RtspParams, dict[str, str]]:
    """Ours (`latency`, `codec`, `id`) out of the query; the camera's own params stay in the URI."""
    base, _, query = uri.partition("?")
    if not base.removeprefix("rtsp://"):
        raise JetkitError("rtsp:// needs a host, like rtsp://192.168.1.20:554/stream")
    pieces = [piece for piece in query.split("&") if piece]
    ours = [piece for piece in pieces if piece.partition("=")[0] in ("latency", "codec", "id")]
    kept = [piece for piece in pieces if piece not in ours]
    params = _query("&".join(ours))
    latency_ms = _number(params, "latency", int)
    rtsp = RtspParams(
        latency_ms=RtspParams().latency_ms if latency_ms is None else latency_ms,
        codec=params.get("codec", RtspParams().codec),
    )
    return base + ("?" + "&".join(kept) if kept else ""), rtsp, params


def _test(location: str, params: dict[str, str]) -> SyntheticParams:
    if location:
        raise JetkitError(
            f"test:// takes only params, like test://?size=1280x720, got {location!r}"
        )
    _take(params, ("size", "fps", "pattern", "count", "seed", "objects", "gt", "moving", "id"),
          "test")  # fmt: skip
    defaults = SyntheticParams()
    fps, seed = _number(params, "fps", float), _number(params, "seed", int)
    objects, moving = _number(params, "objects", int), _number(params, "moving", float)
    return SyntheticParams(
        size_wh=_size(params) or defaults.size_wh,
        fps=defaults.fps if fps is None else fps,
        pattern=params.get("pattern", defaults.pattern),
        count=_number(params, "count", int),
        seed=defaults.seed if seed is None else seed,
        objects=defaults.objects if objects is None else objects,
        gt=params.get("gt"),
        moving=defaults.moving if moving is None else moving,
    )


def _gst(pipeline: str) -> str:
    last_element = pipeline.rsplit("!", 1)[-1].split()
    if not last_element or last_element[0] != "appsink":
        raise JetkitError(
            "a gst:// pipeline must end in appsink, like "
            "gst://videotestsrc ! videoconvert ! video/x-raw,format=BGR ! appsink"
        )
    return pipeline.strip()


def _stream_id(params: dict[str, str], default_id: str, id_beside: bool) -> str:
    if id_beside and params.get("id", default_id) != default_id:
        raise JetkitError(f"id={params['id']} contradicts the id {default_id!r} given beside it")
    return params.get("id", default_id)


def _path_kind(path: str) -> SourceKind:
    return "images" if path.lower().endswith(IMAGE_SUFFIXES) else "file"


def _parse(uri: str, default_id: str, id_beside: bool) -> SourceSpec:
    """`default_id`: the id beside the URI where `id_beside`, which an `id=` param may not
    contradict, else the positional default."""
    if "://" not in uri:
        if _VIDEO_DEVICE.fullmatch(uri):
            return SourceSpec(uri, "v4l2", uri, default_id, V4l2Params())
        return SourceSpec(uri, _path_kind(uri), uri, default_id)
    scheme, rest = uri.split("://", 1)
    if scheme == "gst":
        return SourceSpec(uri, "gst", _gst(rest), default_id)
    if scheme == "rtsp":
        location, rtsp, params = _rtsp(uri)
        return SourceSpec(uri, "rtsp", location, _stream_id(params, default_id, id_beside), rtsp)
    location, _, query = rest.partition("?")
    params = _query(query)
    stream_id = _stream_id(params, default_id, id_beside)
    if scheme == "csi":
        sensor, csi = _csi(location, params)
        return SourceSpec(uri, "csi", sensor, stream_id, csi)
    if scheme == "v4l2":
        device, v4l2 = _v4l2(location, params)
        return SourceSpec(uri, "v4l2", device, stream_id, v4l2)
    if scheme == "test":
        return SourceSpec(uri, "test", "", stream_id, _test(location, params))
    if scheme in ("file", "images"):
        _take(params, ("id",), scheme)
        # RFC 8089: a file URI percent-encodes spaces and the like.
        path = unquote(location) if scheme == "file" else location
        if not path:
            raise JetkitError(f"{scheme}:// needs a path, like {scheme}:///data/clips")
        return SourceSpec(
            uri, "images" if scheme == "images" else _path_kind(path), path, stream_id
        )
    raise JetkitError(f"unknown scheme {scheme + '://'!r}; use {_SCHEME_LIST} or a file path")


def parse_source_uri(uri: str, index: int = 0, stream_id: str | None = None) -> SourceSpec:
    """`uri` → SourceSpec; the stream id is `stream_id` where given, else the URI's `id=`, else
    `s<index>` (the source's position). Raises JetkitError naming the URI, the bad part and how
    to write it."""
    text = uri.strip()
    if not text:
        raise JetkitError(f"source {uri!r} is empty; give a file path or one of {_SCHEME_LIST}")
    try:
        if stream_id is None:
            return _parse(text, f"s{index}", id_beside=False)
        return _parse(text, stream_id, id_beside=True)
    except JetkitError as error:
        raise JetkitError(f"source {redact(text)!r}: {error}") from None


def parse_source_uris(sources: Sequence[SourceRef]) -> list[SourceSpec]:
    """Each source (a URI, or `(uri, stream id)`) parsed with its position as index; two
    sources with one stream id are an error."""
    specs = [
        parse_source_uri(source, index)
        if isinstance(source, str)
        else parse_source_uri(source[0], index, source[1])
        for index, source in enumerate(sources)
    ]
    seen: dict[str, str] = {}
    for spec in specs:
        if spec.stream_id in seen:
            raise JetkitError(
                f"sources {seen[spec.stream_id]!r} and {spec.safe_uri!r} share stream id "
                f"{spec.stream_id!r}; give each its own ?id=NAME"
            )
        seen[spec.stream_id] = spec.safe_uri
    return specs
