"""The reference of the weight-free terms: features of normal training data, and a query's
distance to its ``k`` nearest entries (S_m per object, :mod:`vad_pipeline.motion`; S_c per
window, :mod:`vad_pipeline.cells`).

One :class:`Reference` holds one pool (one camera's, or every camera's). Its training rows are
scored too (:meth:`Reference.score_training`): those scores give the z-statistics that the
fusion divides a camera's test scores by, so they must look like the scores of *unseen* normal
footage of that camera. A training row scored against a pool that holds its own neighbouring
frames (near-duplicates) would score too low. So each row is scored with a part of the footage
left out that holds the row and its neighbours:

- the row's camera has several training videos: the row's whole video (leave one video out);
- its camera has a single video: the row's time block, one of ``blocks`` equal spans of the
  video, and ``margin`` frames either side of it (narrower where a short clip would keep fewer
  than ``k`` rows of its own); the rest of the video stays (a camera filmed
  once is judged like one filmed twice: tests/test_reference.py and docs/scale.md measure both
  against unseen clips of the camera). Leaving its one video out would leave a pooled reference
  with only the other cameras' footage, and a camera's own reference with nothing.
"""

from __future__ import annotations

import logging

import numpy as np

from vad_pipeline.io import VadError

log = logging.getLogger(__name__)

VIDEOS, BLOCKS = "videos", "time blocks"   # the two leave-out schemes (gt_summary.json, logs)


def _mean_knn(pool: np.ndarray, query: np.ndarray, k: int, threads: int = 1) -> np.ndarray:
    """Mean distance of each query row to its ``k`` nearest pool rows, the queries on ``threads``
    threads (scikit-learn's ``n_jobs``). scipy's cKDTree measured 2.4x faster (docs/scale.md) but
    crashed (segmentation fault) at random in this project's test suite: not used until that is
    understood."""
    from sklearn.neighbors import NearestNeighbors

    if len(query) == 0:
        return np.zeros(0)
    nn = NearestNeighbors(n_neighbors=min(k, len(pool)), n_jobs=max(1, int(threads))).fit(pool)
    return nn.kneighbors(query)[0].mean(axis=1)


def scheme(n_videos: int) -> str:
    """The leave-out of a camera with ``n_videos`` training videos."""
    return VIDEOS if n_videos >= 2 else BLOCKS


def block_edges(frames: np.ndarray, blocks: int) -> np.ndarray:
    """``blocks`` + 1 frame numbers cutting the span of ``frames`` into equal time blocks."""
    lo, hi = int(frames.min()), int(frames.max()) + 1
    return np.unique(np.linspace(lo, hi, max(1, blocks) + 1).round().astype(int))


class Reference:
    """Training features (n, d), the video, frame and camera of each row, and ``k``: the mean
    distance of a query to its k nearest training rows. ``blocks`` and ``margin``: the leave-out
    of a camera's single training video (module docstring); ``cameras`` None: one camera;
    ``threads``: the queries' threads."""

    def __init__(self, features: np.ndarray, videos, k: int, what: str = "reference", frames=None,
                 blocks: int = 5, margin: int = 50, cameras=None, threads: int = 1):
        self.features = np.asarray(features, float).reshape(len(features), -1)
        self.videos = np.asarray(videos)
        self.frames = None if frames is None else np.asarray(frames, int)
        self.cameras = np.zeros(len(self.videos), int) if cameras is None else np.asarray(cameras)
        if any(len(a) != len(self.features) for a in (self.videos, self.cameras, self.frames)
               if a is not None):
            raise ValueError("one video (frame, camera) per training row")
        self.k, self.what, self.blocks, self.margin = int(k), what, int(blocks), int(margin)
        self.threads = max(1, int(threads))

    def score(self, query: np.ndarray) -> np.ndarray:
        """Mean distance of each query row to its k nearest training rows."""
        query = np.asarray(query, float).reshape(len(query), -1)
        if len(query) and len(self.features) == 0:
            raise VadError(f"{self.what}: no training data to compare with")
        return _mean_knn(self.features, query, self.k, self.threads)

    def score_training(self) -> np.ndarray:
        """Each training row against the rows of the other videos; a row of a camera with a
        single video: against the rest, less the row's time block of that video and ``margin``
        frames either side."""
        out = np.zeros(len(self.features))
        names = list(dict.fromkeys(self.videos.tolist()))
        n_videos: dict = {}
        for v in names:
            cam = self.cameras[self.videos == v][0]
            n_videos[cam] = n_videos.get(cam, 0) + 1
        for v in names:
            mine = self.videos == v
            if scheme(n_videos[self.cameras[mine][0]]) == VIDEOS:
                out[mine] = _mean_knn(self.features[~mine], self.features[mine], self.k, self.threads)
            else:
                out[mine] = self._blocks(mine)
        return out

    def _blocks(self, video: np.ndarray) -> np.ndarray:
        """Scores of the rows of one ``video`` (a mask) in time blocks."""
        if self.frames is None:
            raise ValueError(f"{self.what}: a camera's single training video needs the frame of each row")
        frames, out = self.frames[video], np.zeros(int(video.sum()))
        if len(out) < 2:
            return out
        edges = block_edges(frames, self.blocks)
        for s, e in zip(edges[:-1], edges[1:]):
            mine = (frames >= s) & (frames < e)
            if not mine.any():
                continue
            near = np.zeros(len(self.features), bool)
            margin = self.margin
            while True:   # a clip too short for the margin: the widest that leaves k rows of its own
                near[video] = (frames >= s - margin) & (frames < e + margin)
                if (video & ~near).sum() >= self.k or margin == 0:
                    break
                margin //= 2
            if near.all():               # one block holds every row: each against the others
                out[mine] = _mean_knn_self(self.features[video][mine], self.k, self.threads)
                continue
            out[mine] = _mean_knn(self.features[~near], self.features[video][mine], self.k, self.threads)
        return out


def _mean_knn_self(rows: np.ndarray, k: int, threads: int = 1) -> np.ndarray:
    """Mean distance of each row to its ``k`` nearest other rows (itself left out)."""
    from sklearn.neighbors import NearestNeighbors

    if len(rows) < 2:
        return np.zeros(len(rows))
    nn = NearestNeighbors(n_neighbors=min(k + 1, len(rows)), n_jobs=max(1, int(threads))).fit(rows)
    return nn.kneighbors(rows)[0][:, 1:].mean(axis=1)


def leave_out(cfg: dict, window: int = 0) -> dict:
    """The single-video leave-out settings of ``cfg["cameras"]`` (``blocks``, ``margin``), the
    margin at least the term's temporal ``window`` (frames sharing a flow are near-duplicates)."""
    cams = cfg.get("cameras", {})
    return {"blocks": int(cams.get("blocks", 5)), "margin": max(int(cams.get("margin", 50)), int(window))}
