"""A constant-velocity Kalman filter over many boxes at once, in ByteTrack's (and DeepSORT's)
`xyah` state: centre x, centre y, aspect ratio w/h, height, and their velocities.

Vectorized over tracks (`mean (N,8)`, `cov (N,8,8)`), so that 50 tracks cost about what one
does. Time runs in frame periods and may be fractional or skip: `predict(dt)` with `dt` 3 for a
track whose stream dropped two frames moves it three frames' worth and grows its uncertainty as
much (process noise is a random walk, so its variance grows linearly with `dt`). With `dt` 1 every
matrix equals ByteTrack's `KalmanFilterXYAH`.
"""

from __future__ import annotations

import numpy as np

# ByteTrack's noise scales: standard deviations relative to the box height, per frame.
STD_POSITION = 1.0 / 20
STD_VELOCITY = 1.0 / 160


def xyxy_to_xyah(xyxy: np.ndarray) -> np.ndarray:
    """`(N,4)` corners → `(N,4)` centre x, centre y, aspect w/h, height."""
    x0, y0, x1, y1 = xyxy.T
    height = np.maximum(y1 - y0, 1e-6)
    return np.stack(((x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / height, height), axis=1)


def xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    """`(N,4)` (or the first four columns of a state) → `(N,4)` corners."""
    cx, cy, aspect, height = xyah[:, :4].T
    half_w, half_h = aspect * height / 2, height / 2
    return np.stack((cx - half_w, cy - half_h, cx + half_w, cy + half_h), axis=1)


def _diag_squared(std: np.ndarray) -> np.ndarray:
    """`(N,K)` standard deviations → `(N,K,K)` diagonal covariances."""
    count, size = std.shape
    out = np.zeros((count, size, size))
    out[:, np.arange(size), np.arange(size)] = std * std
    return out


def _scaled(height: np.ndarray, weights: tuple[float, float, float, float]) -> np.ndarray:
    """`(N,)` heights → `(N,4)` standard deviations: `weight * h`, except the aspect ratio's,
    which is absolute (the second value is used as is)."""
    std = np.outer(height, weights)
    std[:, 2] = weights[2]
    return std


def initiate(xyah: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """New tracks from `(N,4)` measurements: `mean (N,8)` at rest, `cov (N,8,8)`."""
    height = xyah[:, 3]
    mean = np.concatenate([xyah, np.zeros_like(xyah)], axis=1)
    std = np.concatenate(
        [
            _scaled(height, (2 * STD_POSITION, 2 * STD_POSITION, 1e-2, 2 * STD_POSITION)),
            _scaled(height, (10 * STD_VELOCITY, 10 * STD_VELOCITY, 1e-5, 10 * STD_VELOCITY)),
        ],
        axis=1,
    )
    return mean, _diag_squared(std)


def predict(mean: np.ndarray, cov: np.ndarray, dt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every track `dt (N,)` frame periods ahead: `F = [[I, dt·I], [0, I]]`,
    `P' = F P Fᵀ + dt·Q`. Returns new arrays."""
    dt = np.asarray(dt, dtype=float).reshape(-1)
    height = mean[:, 3].copy()  # the noise scales with the height before the motion
    mean = mean.copy()
    mean[:, :4] += dt[:, None] * mean[:, 4:]
    # F P Fᵀ blockwise, with P = [[A, B], [C, D]]: [[A + dt(B + C) + dt²D, B + dt D], [C + dt D, D]].
    a, b, c, d = cov[:, :4, :4], cov[:, :4, 4:], cov[:, 4:, :4], cov[:, 4:, 4:]
    t = dt[:, None, None]
    out = np.empty_like(cov)
    out[:, :4, :4] = a + t * (b + c) + t * t * d
    out[:, :4, 4:] = b + t * d
    out[:, 4:, :4] = c + t * d
    out[:, 4:, 4:] = d
    std = np.concatenate(
        [
            _scaled(height, (STD_POSITION, STD_POSITION, 1e-2, STD_POSITION)),
            _scaled(height, (STD_VELOCITY, STD_VELOCITY, 1e-5, STD_VELOCITY)),
        ],
        axis=1,
    )
    out += t * _diag_squared(std)
    return mean, out


def update(mean: np.ndarray, cov: np.ndarray, xyah: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Correct `mean (M,8)`, `cov (M,8,8)` with their `(M,4)` measurements. Returns new
    arrays."""
    height = mean[:, 3]
    noise = _diag_squared(_scaled(height, (STD_POSITION, STD_POSITION, 1e-1, STD_POSITION)))
    innovation_cov = cov[:, :4, :4] + noise  # S = H P Hᵀ + R
    # K = P Hᵀ S⁻¹, solved rather than inverted; S and P are symmetric.
    gain = np.linalg.solve(innovation_cov, cov[:, :4, :]).transpose(0, 2, 1)
    innovation = xyah - mean[:, :4]
    new_mean = mean + np.einsum("nij,nj->ni", gain, innovation)
    new_cov = cov - gain @ innovation_cov @ gain.transpose(0, 2, 1)
    return new_mean, new_cov
