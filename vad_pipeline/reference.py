"""The reference of the weight-free terms: features of normal training data, and a query's
distance to its ``k`` nearest entries (S_m per object, :mod:`vad_pipeline.motion`; S_c per
window, :mod:`vad_pipeline.cells`).

One :class:`Reference` holds one pool (one camera's, or every camera's). Training data is scored
against the same pool with its own video left out (:meth:`Reference.score_training`): a
neighbouring frame of the same video is a near-duplicate, and would make training scores, which
the fusion z-scores with, smaller than a normal test frame's.
"""

from __future__ import annotations

import numpy as np

from vad_pipeline.io import VadError


def _mean_knn(pool: np.ndarray, query: np.ndarray, k: int, skip_self: bool = False) -> np.ndarray:
    """Mean distance of each query row to its ``k`` nearest pool rows (the nearest left out when
    the query rows are themselves in the pool)."""
    from sklearn.neighbors import NearestNeighbors

    if len(query) == 0:
        return np.zeros(0)
    k = min(k + skip_self, len(pool))
    d, _ = NearestNeighbors(n_neighbors=k).fit(pool).kneighbors(query)
    return d[:, int(skip_self):].mean(axis=1) if d.shape[1] > int(skip_self) else np.zeros(len(query))


class Reference:
    """Training features (n, d), the video of each row, and ``k``: the mean distance of a query to
    its k nearest training rows."""

    def __init__(self, features: np.ndarray, videos, k: int, what: str = "reference"):
        self.features = np.asarray(features, float).reshape(len(features), -1)
        self.videos = np.asarray(videos)
        if len(self.videos) != len(self.features):
            raise ValueError("one video per training row")
        self.k, self.what = int(k), what

    def score(self, query: np.ndarray) -> np.ndarray:
        """Mean distance of each query row to its k nearest training rows."""
        query = np.asarray(query, float).reshape(len(query), -1)
        if len(query) and len(self.features) == 0:
            raise VadError(f"{self.what}: no training data to compare with")
        return _mean_knn(self.features, query, self.k)

    def score_training(self) -> np.ndarray:
        """Each training row against the rows of the other videos; with a single video, against
        the other rows of its own (itself left out)."""
        out = np.zeros(len(self.features))
        names = list(dict.fromkeys(self.videos.tolist()))
        if len(names) == 1:
            return _mean_knn(self.features, self.features, self.k, skip_self=True) if len(out) > 1 else out
        for v in names:
            mine = self.videos == v
            out[mine] = _mean_knn(self.features[~mine], self.features[mine], self.k)
        return out
