"""When a stream counts as healthy."""

import pytest

from edge.service.daemon import stream_health


@pytest.mark.parametrize(
    ("last_result_s", "in_backoff", "now_s", "healthy", "state"),
    [
        (99.0, False, 100.0, True, "delivering"),
        (90.0, True, 100.0, True, "reconnecting"),
        (None, False, 2.0, True, "starting"),
        (None, False, 100.0, False, "stalled"),
        (90.0, False, 100.0, False, "stalled"),
    ],
)
def test_stream_health(last_result_s, in_backoff, now_s, healthy, state):
    health = stream_health("cam", last_result_s, in_backoff, 0.0, now_s, stale_after_s=5.0)
    assert (health.healthy, health.state) == (healthy, state)
