"""`rtsp://HOST:PORT/PATH` out: an RTSP server (gst-rtsp-server) in this process, each stream at
`PATH/<stream id>` from its first frame on, encoded only while a player watches.

A player's slow network must not slow inference: a frame its pipeline has no room for is
dropped for it and counted.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from edge.errors import JetkitError
from edge.sinks.base import Result
from edge.sinks.frames import fit_to_size
from edge.sinks.gst_out import load_gst
from edge.sinks.gst_uri import APPSRC_NAME, appsrc_caps
from edge.sinks.rtsp_uri import RtspOutConfig, rtsp_launch
from edge.sinks.video_uri import DEFAULT_FPS
from edge.sources.gst import element_exists

RTSP_SERVER_PACKAGE = "gir1.2-gst-rtsp-server-1.0"
# Frames waiting in a player's pipeline before that player's frames are dropped.
PLAYER_QUEUE_FRAMES = 2


def rtsp_server_available() -> bool:
    load_gst()
    import gi

    try:
        gi.require_version("GstRtspServer", "1.0")
    except ValueError:
        return False
    return True


class RtspSink:
    def __init__(self, uri: str, config: RtspOutConfig, log: Callable[[str], None]) -> None:
        self.uri = uri
        self.config = config
        self.dropped = 0
        self._log = log
        self._sizes_wh: dict[str, tuple[int, int]] = {}
        # Filled by the server's thread as players come and go, read by write().
        self._lock = threading.Lock()
        self._players: dict[str, list[Any]] = {}
        self._server: Any = None
        self._context: Any = None
        self._loop: Any = None
        self._source_id = 0
        self._thread: threading.Thread | None = None

    def open(self) -> None:
        if not rtsp_server_available():
            raise JetkitError(
                f"serving RTSP needs GStreamer's RTSP server (Debian package "
                f"{RTSP_SERVER_PACKAGE}); or send the stream on with gst://appsrc name=src ! …"
            )
        _, _, glib = load_gst()
        from gi.repository import GstRtspServer

        self._server = GstRtspServer.RTSPServer.new()
        self._server.set_address(self.config.host)
        self._server.set_service(str(self.config.port))
        self._context = glib.MainContext.new()
        self._source_id = self._server.attach(self._context)
        if not self._source_id:
            raise JetkitError(
                f"cannot listen on {self.config.host}:{self.config.port} (in use?); choose "
                "another port"
            )
        self._loop = glib.MainLoop.new(self._context, False)
        self._thread = threading.Thread(target=self._loop.run, name="rtsp-sink", daemon=True)
        self._thread.start()

    def write(self, result: Result) -> None:
        stream_id = result.frame.stream_id
        if stream_id not in self._sizes_wh:
            self._mount(stream_id, result.frame.image_bgr.shape[1::-1])
        with self._lock:
            players = list(self._players.get(stream_id, ()))
        if not players:
            return
        gst, _, _ = load_gst()
        image = fit_to_size(result.annotated_bgr(), self._sizes_wh[stream_id])
        data = np.ascontiguousarray(image).tobytes()
        for appsrc in players:
            if appsrc.get_property("current-level-bytes") >= PLAYER_QUEUE_FRAMES * len(data):
                self.dropped += 1
                continue
            appsrc.emit("push-buffer", gst.Buffer.new_wrapped(data))

    def close(self) -> None:
        if self._loop is None:
            return
        with self._lock:
            players = [appsrc for appsrcs in self._players.values() for appsrc in appsrcs]
            self._players.clear()
        for appsrc in players:
            appsrc.emit("end-of-stream")
        self._context.find_source_by_id(self._source_id).destroy()
        self._loop.quit()
        if self._thread is not None:
            self._thread.join()
        self._loop = self._server = self._context = None

    def _mount(self, stream_id: str, size_wh: tuple[int, int]) -> None:
        from gi.repository import GstRtspServer

        self._sizes_wh[stream_id] = size_wh
        factory = GstRtspServer.RTSPMediaFactory.new()
        factory.set_launch(rtsp_launch(appsrc_caps(size_wh, DEFAULT_FPS), element_exists))
        # One encoder per stream, however many players.
        factory.set_shared(True)
        factory.connect("media-configure", self._on_media, stream_id)
        mount = self.config.mount_for(stream_id)
        self._server.get_mount_points().add_factory(mount, factory)
        address = f"{self.config.host}:{self.config.port}"
        self._log(f"sink {self.uri}: stream {stream_id} at rtsp://{address}{mount}")

    def _on_media(self, factory: Any, media: Any, stream_id: str) -> None:
        appsrc = media.get_element().get_by_name(APPSRC_NAME)
        with self._lock:
            self._players.setdefault(stream_id, []).append(appsrc)
        media.connect("unprepared", self._on_media_gone, stream_id, appsrc)

    def _on_media_gone(self, media: Any, stream_id: str, appsrc: Any) -> None:
        with self._lock:
            players = self._players.get(stream_id, [])
            if appsrc in players:
                players.remove(appsrc)
