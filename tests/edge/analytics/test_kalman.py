"""The vectorized Kalman filter: with `dt` 1 it is ByteTrack's `KalmanFilterXYAH` (the reference's
dense matrices, transcribed below from supervision's copy, `tracker/byte_tracker/kalman_filter.py`);
with a larger `dt` it is that many steps of motion at once."""

import numpy as np
import pytest

from edge.analytics import kalman

POS, VEL = kalman.STD_POSITION, kalman.STD_VELOCITY


def reference_predict(mean, cov):
    motion = np.eye(8)
    motion[:4, 4:] = np.eye(4)
    h = mean[3]
    q = np.diag(np.square([POS * h, POS * h, 1e-2, POS * h, VEL * h, VEL * h, 1e-5, VEL * h]))
    return motion @ mean, motion @ cov @ motion.T + q


def reference_update(mean, cov, measurement):
    h = mean[3]
    projected = cov[:4, :4] + np.diag(np.square([POS * h, POS * h, 1e-1, POS * h]))
    gain = cov[:, :4] @ np.linalg.inv(projected)
    return mean + gain @ (measurement - mean[:4]), cov - gain @ projected @ gain.T


@pytest.fixture
def boxes_xyxy():
    return np.array([[10.0, 20, 50, 100], [200, 40, 230, 70], [5, 5, 6, 9]])


def test_conversions_round_trip(boxes_xyxy):
    xyah = kalman.xyxy_to_xyah(boxes_xyxy)
    np.testing.assert_allclose(xyah[0], [30, 60, 0.5, 80])
    np.testing.assert_allclose(kalman.xyah_to_xyxy(xyah), boxes_xyxy)


def test_one_step_equals_bytetracks_filter(boxes_xyxy):
    rng = np.random.default_rng(0)
    mean, cov = kalman.initiate(kalman.xyxy_to_xyah(boxes_xyxy))
    mean[:, 4:] = rng.normal(0, 2, (3, 4))  # moving, as after a few updates
    want = [reference_predict(m, c) for m, c in zip(mean, cov, strict=True)]
    got_mean, got_cov = kalman.predict(mean, cov, np.ones(3))
    for (m, c), gm, gc in zip(want, got_mean, got_cov, strict=True):
        np.testing.assert_allclose(gm, m)
        np.testing.assert_allclose(gc, c, rtol=1e-12, atol=1e-12)
    measured = kalman.xyxy_to_xyah(boxes_xyxy + rng.normal(0, 3, (3, 4)))
    want = [reference_update(m, c, z) for m, c, z in zip(got_mean, got_cov, measured, strict=True)]
    new_mean, new_cov = kalman.update(got_mean, got_cov, measured)
    for (m, c), gm, gc in zip(want, new_mean, new_cov, strict=True):
        np.testing.assert_allclose(gm, m, rtol=1e-10)
        np.testing.assert_allclose(gc, c, rtol=1e-9, atol=1e-9)


def test_a_skipped_interval_moves_as_far_as_its_steps_and_is_as_uncertain(boxes_xyxy):
    mean, cov = kalman.initiate(kalman.xyxy_to_xyah(boxes_xyxy))
    mean[:, 4] = 5.0  # 5 px per frame to the right
    jumped_mean, jumped_cov = kalman.predict(mean, cov, np.full(3, 3.0))
    np.testing.assert_allclose(jumped_mean[:, 0], mean[:, 0] + 15)
    stepped_mean, stepped_cov = mean, cov
    for _ in range(3):
        stepped_mean, stepped_cov = kalman.predict(stepped_mean, stepped_cov, np.ones(3))
    np.testing.assert_allclose(jumped_mean, stepped_mean)
    # As uncertain as three steps, to within the compounding of three: never more certain than
    # before, and not falsely confident about a track that was not seen for a while.
    jumped_var = np.diagonal(jumped_cov, axis1=1, axis2=2)
    stepped_var = np.diagonal(stepped_cov, axis1=1, axis2=2)
    assert np.all(jumped_var > np.diagonal(cov, axis1=1, axis2=2))
    assert np.all(jumped_var[:, :4] > 0.5 * stepped_var[:, :4])


def test_updates_pull_toward_the_measurement_and_shrink_the_uncertainty(boxes_xyxy):
    mean, cov = kalman.initiate(kalman.xyxy_to_xyah(boxes_xyxy))
    mean, cov = kalman.predict(mean, cov, np.ones(3))
    target = kalman.xyxy_to_xyah(boxes_xyxy + 4.0)
    new_mean, new_cov = kalman.update(mean, cov, target)
    before = np.abs(target[:, :2] - mean[:, :2])
    after = np.abs(target[:, :2] - new_mean[:, :2])
    assert np.all(after < before)
    assert np.all(np.linalg.eigvalsh(cov - new_cov) > -1e-9)  # P shrinks (PSD difference)
