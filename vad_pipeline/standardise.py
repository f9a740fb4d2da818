"""z-scaling against training statistics, one definition for every place that does it: the
fusion's z-scores of the terms (:func:`vad_pipeline.fusion.camera_z`, per camera), S_m's feature
standardisation (:func:`vad_pipeline.object_motion.fit`), S_c's window statistics divided by
their spread (:mod:`vad_pipeline.windows`), and the tools' studies of the references
(tools/validate_cameras.py, tools/validate_leave_out.py).
"""

from __future__ import annotations

import numpy as np


def zstats(values: np.ndarray, axis: int | None = None):
    """Mean and standard deviation of training ``values``: of all their finite values (``axis``
    None: two floats), or per column of a 2-D array (``axis`` 0: two arrays; rows with a value
    that is not finite left out). A standard deviation of 0 or undefined (no value) is 1, so a
    z-score stays finite; no value at all: mean 0."""
    values = np.asarray(values)
    if axis is None:
        v = values[np.isfinite(values)]
        if len(v) == 0:
            return 0.0, 1.0
        mu, sd = float(v.mean()), float(v.std())
        return mu, sd if sd > 0 else 1.0
    if axis != 0 or values.ndim != 2:
        raise ValueError("zstats: axis None, or 0 of a 2-D array (one statistic per column)")
    if len(values) == 0:
        return np.zeros(values.shape[1]), np.ones(values.shape[1])
    mu = values.mean(axis=0)
    if not np.isfinite(mu).all():   # a NaN or infinity anywhere (no copy of the rows otherwise)
        values = values[np.isfinite(values).all(axis=1)]
        if len(values) == 0:
            return np.zeros(values.shape[1]), np.ones(values.shape[1])
        mu = values.mean(axis=0)
    sd = values.std(axis=0)
    return mu, np.where(sd > 0, sd, 1.0)


def zscore(values: np.ndarray, stats) -> np.ndarray:
    """``values`` z-scored with ``stats`` (:func:`zstats` of the training values: mean, std)."""
    mu, sd = stats
    return (np.asarray(values) - mu) / sd
