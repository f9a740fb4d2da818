"""Runs of True in a per-frame mask: the one encoder behind ground-truth ranges, report segments
and shaded plot spans."""

from __future__ import annotations

import numpy as np


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) 0-based inclusive index of each run of True in a 1-D mask, in order."""
    d = np.diff(np.r_[0, np.asarray(mask).astype(np.int8), 0])
    return list(zip(np.flatnonzero(d == 1).tolist(), (np.flatnonzero(d == -1) - 1).tolist()))
