"""The device root: the `current` pointer only ever renamed over, the state's history, which
release a rollback returns to, and which releases pruning removes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from deploy.device import (
    DeviceState,
    Layout,
    current_release,
    installed_releases,
    load_state,
    releases_to_remove,
    save_state,
    switch_current,
)
from edge.errors import JetkitError


def _installed(layout, *versions):
    for version in versions:
        layout.release("det", version).mkdir(parents=True)


def test_switching_current_renames_a_new_link_over_the_old(tmp_path, monkeypatch):
    layout = Layout(tmp_path)
    _installed(layout, "1", "2")
    switch_current(layout, "det", "1")
    assert os.readlink(layout.current) == "releases/det/1"  # relative: the root can move
    calls = []
    real_replace, real_unlink = os.replace, os.unlink

    def no_unlink_of_current(path, *args, **kwargs):
        assert Path(path) != layout.current, "current was unlinked"
        real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "replace", lambda a, b: (calls.append((a, b)), real_replace(a, b)))
    monkeypatch.setattr(os, "unlink", no_unlink_of_current)
    switch_current(layout, "det", "2")
    link = tmp_path / f".current.{os.getpid()}.new"
    assert [(Path(a), Path(b)) for a, b in calls] == [(link, layout.current)]
    assert current_release(layout) == ("det", "2")
    with pytest.raises(JetkitError, match="release det 3 is not on this device"):
        switch_current(layout, "det", "3")


def test_state_round_trips_and_knows_the_previous_release(tmp_path):
    layout = Layout(tmp_path)
    assert load_state(layout).active is None
    state = DeviceState()
    for version in ("1", "2", "2", "3"):
        state.active = {"name": "det", "version": version}
        state.record("activated", name="det", version=version)
    save_state(layout, state)
    loaded = load_state(layout)
    assert loaded.active == {"name": "det", "version": "3"}
    assert loaded.previous() == ("det", "2")
    assert json.loads(layout.state.read_text())["schema"] == "jetkit-device-state/1"
    layout.state.write_text("{not json")
    with pytest.raises(JetkitError, match="state.json is not valid JSON"):
        load_state(layout)


def test_pruning_keeps_the_most_recently_active_and_always_the_active_one(tmp_path):
    layout = Layout(tmp_path)
    _installed(layout, "1", "2", "3", "4", "5")
    (layout.releases / "det" / ".5.tmp123").mkdir()  # an interrupted extraction is no release
    assert installed_releases(layout) == [("det", v) for v in "12345"]
    state = DeviceState()
    for version in ("1", "3", "2", "4"):
        state.record("activated", name="det", version=version)
    state.active = {"name": "det", "version": "1"}  # rolled back to 1
    removed = releases_to_remove(installed_releases(layout), state, keep=3)
    # Kept: 1 (active), 4 and 2 (most recent); 5 was never activated, 3 is the oldest.
    assert removed == [("det", "3"), ("det", "5")]
    with pytest.raises(JetkitError, match="--keep must be >= 1"):
        releases_to_remove([], state, keep=0)
