"""Minimum-cost assignment with a cost limit, as trackers use it: `scipy`'s Hungarian
(`linear_sum_assignment`), then pairs dearer than the limit dropped."""

from __future__ import annotations

import numpy as np

# Above any cost a caller admits (costs here are 1 - IoU-like values in [0, 1]).
_FORBIDDEN = 1e6


def assign(cost: np.ndarray, max_cost: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`cost (N,M)` → `pairs (K,2)` of (row, col) with cost <= `max_cost` minimising the total,
    and the unmatched `rows (N-K,)` and `cols (M-K,)`, each ascending."""
    rows_n, cols_n = cost.shape
    if rows_n == 0 or cols_n == 0:
        return np.zeros((0, 2), np.int64), np.arange(rows_n), np.arange(cols_n)
    from scipy.optimize import linear_sum_assignment

    # Pairs over the limit are made prohibitive before solving, so that the solver does not
    # trade an admissible pair away for one that would be dropped afterwards.
    limited = np.where(cost <= max_cost, cost, _FORBIDDEN)
    rows, cols = linear_sum_assignment(limited)
    keep = limited[rows, cols] <= max_cost
    pairs = np.stack([rows[keep], cols[keep]], axis=1).astype(np.int64)
    # Masks, not set differences: this runs three times a frame in the tracker.
    free_rows, free_cols = np.ones(rows_n, bool), np.ones(cols_n, bool)
    free_rows[pairs[:, 0]] = False
    free_cols[pairs[:, 1]] = False
    return pairs, np.flatnonzero(free_rows), np.flatnonzero(free_cols)


def load_solver() -> None:
    """Imports scipy's solver now (about half a second), so that a stream's first frame does
    not wait for it."""
    from scipy.optimize import linear_sum_assignment  # noqa: F401
