"""display:// — refused with a way out where there is no screen or OpenCV has no GUI."""

from __future__ import annotations

import pytest

from edge.errors import JetkitError
from edge.sinks import open_sink
from edge.sinks.display import opencv_has_gui, screen_available


def test_a_screen_is_where_display_or_wayland_is_set():
    assert screen_available({"DISPLAY": ":0"}) and screen_available({"WAYLAND_DISPLAY": "wl-0"})
    assert not screen_available({}) and not screen_available({"DISPLAY": ""})


def test_the_gui_line_of_the_opencv_build_tells_headless_builds_apart():
    assert opencv_has_gui("  GUI:                           GTK3\n    GTK+:  YES (ver 3.24)")
    assert not opencv_has_gui("  Video I/O:\n  GUI:                           NONE\n")
    assert not opencv_has_gui("no such line")


def test_without_a_screen_display_fails_at_open_pointing_to_video(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(JetkitError, match=r"sink 'display://': no display here .*use video://"):
        open_sink("display://")


def test_display_takes_no_params_or_path():
    with pytest.raises(JetkitError, match="unknown param 'fps' for display://"):
        open_sink("display://?fps=3")
    with pytest.raises(JetkitError, match="display:// takes nothing after it"):
        open_sink("display://window")
