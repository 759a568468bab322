"""`display://`: one window per stream with the annotated frames, where a screen exists and
OpenCV was built with a GUI (opencv-python, JetPack's OpenCV; not opencv-python-headless)."""

from __future__ import annotations

from collections.abc import Mapping

from edge.errors import JetkitError
from edge.sinks.base import Result

SCREEN_VARIABLES = ("DISPLAY", "WAYLAND_DISPLAY")


def screen_available(environ: Mapping[str, str]) -> bool:
    return any(environ.get(name) for name in SCREEN_VARIABLES)


def opencv_has_gui(build_information: str) -> bool:
    """From `cv2.getBuildInformation()`: its `GUI:` line says NONE in headless builds."""
    for line in build_information.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "GUI":
            return value.strip().upper() != "NONE"
    return False


class DisplaySink:
    def __init__(self, uri: str, environ: Mapping[str, str]) -> None:
        self.uri = uri
        self._environ = environ
        self._windows: set[str] = set()

    def open(self) -> None:
        import cv2

        if not screen_available(self._environ):
            raise JetkitError(
                "no display here (DISPLAY and WAYLAND_DISPLAY are unset); use video://PATH.mp4 "
                "to record the annotated frames"
            )
        if not opencv_has_gui(cv2.getBuildInformation()):
            raise JetkitError(
                "this OpenCV has no GUI (opencv-python-headless?); install opencv-python, or "
                "use video://PATH.mp4"
            )

    def write(self, result: Result) -> None:
        import cv2

        window = f"jetkit {result.frame.stream_id}"
        self._windows.add(window)
        cv2.imshow(window, result.annotated_bgr())
        # HighGUI draws only while it handles events; 1 ms keeps the sink thread moving.
        cv2.waitKey(1)

    def close(self) -> None:
        import cv2

        for window in self._windows:
            cv2.destroyWindow(window)
        self._windows.clear()
