"""GStreamer pipeline text (`Gst.parse_launch` syntax) for a source spec: NVIDIA elements where
they exist (hardware decode and conversion on a Jetson), software ones elsewhere. Pure: the
caller says which elements exist (`Gst.ElementFactory.find`), so both sets are testable anywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

from edge.errors import JetkitError
from edge.sources.uri import CsiParams, RtspParams, SourceSpec, V4l2Params

NVIDIA_DECODE = ("nvv4l2decoder", "nvvidconv")
CSI_ELEMENTS = ("nvarguscamerasrc", "nvvidconv")
# nvvidconv cannot write 3-byte BGR: it hands over BGRx and videoconvert drops the fourth byte.
_NV_TO_BGRX = "nvvidconv ! video/x-raw,format=BGRx"
_TO_BGR = "videoconvert ! video/x-raw,format=BGR"


def quote(value: str) -> str:
    """A parse_launch property value that survives spaces, `!`, quotes and backslashes."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def caps_framerate(fps: float) -> str:
    """`30` → `30/1`, `29.97` → `2997/100`: caps take a fraction."""
    fraction = Fraction(fps).limit_denominator(1001)
    return f"{fraction.numerator}/{fraction.denominator}"


# Decoded frames a file source holds ahead of its reader. Unbounded, GStreamer decodes the whole
# file into memory as fast as it can (845 MB for 300 frames of 720p).
FILE_READ_AHEAD_FRAMES = 4


def appsink(live: bool) -> str:
    """Live sources keep only the newest frame, so a slow reader sees a fresh image rather than a
    growing backlog; files keep every frame, decoding at most a few ahead of the reader."""
    if live:
        return "appsink name=sink max-buffers=1 drop=true sync=false"
    return f"appsink name=sink max-buffers={FILE_READ_AHEAD_FRAMES} drop=false sync=false"


def _mode_caps(size_wh: tuple[int, int] | None, fps: float | None) -> str:
    caps = f",width={size_wh[0]},height={size_wh[1]}" if size_wh else ""
    return caps + (f",framerate={caps_framerate(fps)}" if fps else "")


def _csi(sensor: str, params: CsiParams, has_element: Callable[[str], bool]) -> str:
    missing = [name for name in CSI_ELEMENTS if not has_element(name)]
    if missing:
        raise JetkitError(
            f"csi://{sensor} needs {' and '.join(missing)} (a Jetson with JetPack's GStreamer "
            "plugins); elsewhere use a USB camera, v4l2:///dev/video0"
        )
    return (
        f"nvarguscamerasrc sensor-id={sensor} ! "
        f"video/x-raw(memory:NVMM){_mode_caps(params.size_wh, params.fps)},format=NV12 ! "
        f"nvvidconv flip-method={params.flip} ! video/x-raw,format=BGRx"
    )


def _v4l2(device: str, params: V4l2Params, nvidia: bool) -> str:
    mode = _mode_caps(params.size_wh, params.fps)
    if params.format == "raw":
        return f"v4l2src device={quote(device)} ! video/x-raw{mode}"
    decode = "nvv4l2decoder mjpeg=1 ! " + _NV_TO_BGRX if nvidia else "jpegdec"
    return f"v4l2src device={quote(device)} ! image/jpeg{mode} ! {decode}"


def _rtsp(location: str, params: RtspParams, nvidia: bool) -> str:
    # drop-on-latency: a jitter buffer that runs over drops old packets instead of growing delay.
    source = f"rtspsrc location={quote(location)} latency={params.latency_ms} drop-on-latency=true"
    if nvidia:
        codec = params.codec
        return f"{source} ! rtp{codec}depay ! {codec}parse ! nvv4l2decoder ! {_NV_TO_BGRX}"
    return f"{source} ! decodebin"


def _file(path: str, nvidia: bool) -> str:
    # decodebin picks the container's demuxer and the best-ranked decoder (nvv4l2decoder on a
    # Jetson, whose NVMM output nvvidconv brings back to system memory).
    source = f"filesrc location={quote(path)} ! decodebin"
    return f"{source} ! {_NV_TO_BGRX}" if nvidia else source


def pipeline_for(spec: SourceSpec, has_element: Callable[[str], bool]) -> str:
    """The pipeline for a camera, stream or video file spec, ending in BGR frames at an appsink
    named `sink`; a `gst://` spec's own text as written."""
    if spec.kind == "gst":
        return spec.location
    nvidia = all(has_element(name) for name in NVIDIA_DECODE)
    params = spec.params
    if spec.kind == "csi" and isinstance(params, CsiParams):
        head = _csi(spec.location, params, has_element)
    elif spec.kind == "v4l2" and isinstance(params, V4l2Params):
        head = _v4l2(spec.location, params, nvidia)
    elif spec.kind == "rtsp" and isinstance(params, RtspParams):
        head = _rtsp(spec.location, params, nvidia)
    elif spec.kind == "file":
        head = _file(spec.location, nvidia)
    else:
        raise ValueError(f"{spec.kind} sources are not read through GStreamer")
    return f"{head} ! {_TO_BGR} ! {appsink(spec.live)}"
