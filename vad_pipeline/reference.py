"""The reference of the weight-free terms: features of normal training data, and a query's
distance to its ``k`` nearest entries (S_m per object, :mod:`vad_pipeline.object_motion`; S_c per
window, :mod:`vad_pipeline.windows`).

One :class:`Reference` holds one pool (one camera's, or every camera's). Its training rows are
scored too (:meth:`Reference.score_training`): those scores give the z-statistics that the
fusion divides a camera's test scores by, so they must look like the scores of *unseen* normal
footage of that camera. A training row scored against a pool that holds its own neighbouring
frames (near-duplicates) would score too low. So each row is scored with a part of the footage
left out that holds the row and its neighbours:

- the row's camera has more than ``few`` training videos: the row's whole video (leave one
  video out);
- at most ``few`` (one, or very few): the row's time block, one of ``blocks`` equal spans of its
  video, ``margin`` frames either side of it, and, where rows are objects with ``tracks``
  (:mod:`vad_pipeline.tracks`), every row of the row's own object wherever it is in view (a
  walker takes longer than the margin to cross a scene); the rest of the camera's footage stays.
  Narrower where a short clip would keep fewer than ``k`` rows of the camera: the margin halves;
  an object that would leave too few stays in (both warned in the log, with counts:
  :class:`Narrowed`). Leaving one of a camera's few videos out would leave a pooled reference
  with only the other cameras' footage, a camera's own reference with nothing, and with two
  videos half the reference that judges the test footage (scores too high).
  tools/validate_leave_out.py and tools/own_footage.py measure both schemes against unseen
  clips of the camera (docs/scale.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

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


def scheme(n_videos: int, few: int) -> str:
    """The leave-out of a camera with ``n_videos`` training videos: time blocks up to ``few``."""
    return VIDEOS if n_videos > max(1, few) else BLOCKS


def block_edges(frames: np.ndarray, blocks: int) -> np.ndarray:
    """``blocks`` + 1 frame numbers cutting the span of ``frames`` into equal time blocks."""
    lo, hi = int(frames.min()), int(frames.max()) + 1
    return np.unique(np.linspace(lo, hi, max(1, blocks) + 1).round().astype(int))


@dataclass
class Narrowed:
    """What the leave-out of a camera with few videos could not leave out as it should, counted
    for the log: time blocks scored and those whose margin was narrowed (to ``margin`` frames at
    the least), training rows scored with their own object kept in, and rows with no other row
    to compare with (score 0)."""

    blocks: int = 0
    narrowed: int = 0
    margin: int | None = None
    kept: int = 0
    alone: int = 0

    def add(self, other: Narrowed) -> Narrowed:
        margins = [m for m in (self.margin, other.margin) if m is not None]
        return Narrowed(self.blocks + other.blocks, self.narrowed + other.narrowed, min(margins) if margins else None,
                        self.kept + other.kept, self.alone + other.alone)

    def log(self, what: str, margin: int, k: int) -> None:
        """A warning per thing not left out as it should (nothing where all was)."""
        if self.narrowed:
            log.warning("%s: %d of %d time blocks scored with their margin narrowed to %d frames (cameras.margin "
                        "%d): a clip too short to keep k=%d rows of its camera outside the full margin", what,
                        self.narrowed, self.blocks, self.margin, margin, k)
        if self.kept:
            log.warning("%s: %d training rows scored with their own object in the reference: leaving it out "
                        "would leave fewer than k=%d rows of its camera", what, self.kept, k)
        if self.alone:
            log.warning("%s: %d training rows without any other row to compare with: training score 0", what,
                        self.alone)


class Reference:
    """Training features (n, d), the video, frame and camera of each row, and ``k``: the mean
    distance of a query to its k nearest training rows. ``blocks``, ``margin``, ``few`` and
    ``tracks`` (an object number per row, unique across videos; -1: none): the leave-out of a
    camera with few training videos (module docstring; :func:`leave_out`), needed to score the
    training rows themselves; ``cameras`` None: one camera; ``threads``: the queries' threads."""

    def __init__(self, features: np.ndarray, videos, k: int, what: str = "reference", frames=None,
                 blocks: int | None = None, margin: int | None = None, cameras=None, threads: int = 1,
                 few: int | None = None, tracks=None):
        self.features = np.asarray(features, float).reshape(len(features), -1)
        self.videos = np.asarray(videos)
        self.frames = None if frames is None else np.asarray(frames, int)
        self.cameras = np.zeros(len(self.videos), int) if cameras is None else np.asarray(cameras)
        self.tracks = None if tracks is None else np.asarray(tracks, int)
        if any(len(a) != len(self.features) for a in (self.videos, self.cameras, self.frames, self.tracks)
               if a is not None):
            raise ValueError("one video (frame, camera, track) per training row")
        self.k, self.what, self.threads = int(k), what, max(1, int(threads))
        self.blocks, self.margin, self.few = (None if v is None else int(v) for v in (blocks, margin, few))
        self.narrowed = Narrowed()

    def score(self, query: np.ndarray) -> np.ndarray:
        """Mean distance of each query row to its k nearest training rows."""
        query = np.asarray(query, float).reshape(len(query), -1)
        if len(query) and len(self.features) == 0:
            raise VadError(f"{self.what}: no training data to compare with")
        return _mean_knn(self.features, query, self.k, self.threads)

    def score_training(self, report: bool = True) -> np.ndarray:
        """Each training row against the rows of the other videos; a row of a camera with at
        most ``few`` videos: against the rest, less the row's time block of its video, ``margin``
        frames either side and the row's own object (``tracks``) wherever it is seen. What could
        not be left out is counted in ``narrowed`` and, with ``report``, warned in the log."""
        if None in (self.blocks, self.margin, self.few):
            raise ValueError(f"{self.what}: training scores need the leave-out settings (blocks, margin, few: "
                             "reference.leave_out)")
        self.narrowed = Narrowed()
        out = np.zeros(len(self.features))
        names = list(dict.fromkeys(self.videos.tolist()))
        n_videos: dict = {}
        for v in names:
            cam = self.cameras[self.videos == v][0]
            n_videos[cam] = n_videos.get(cam, 0) + 1
        for v in names:
            mine = self.videos == v
            cam = self.cameras[mine][0]
            if scheme(n_videos[cam], self.few) == VIDEOS:
                out[mine] = _mean_knn(self.features[~mine], self.features[mine], self.k, self.threads)
            else:
                out[mine] = self._blocks(mine, self.cameras == cam)
        if report:
            self.narrowed.log(self.what, self.margin, self.k)
        return out

    def _near(self, video: np.ndarray, s: int, e: int, camera: np.ndarray) -> np.ndarray:
        """The rows of ``video`` (a mask) within ``margin`` frames of the block ``s`` to ``e``, the
        margin halved until ``k`` rows of ``camera`` stay outside (a clip too short for it)."""
        frames, margin = self.frames[video], self.margin
        while True:
            near = np.zeros(len(self.features), bool)
            near[video] = (frames >= s - margin) & (frames < e + margin)
            if (camera & ~near).sum() >= self.k or margin == 0:
                if margin < self.margin:
                    n = self.narrowed
                    n.narrowed, n.margin = n.narrowed + 1, margin if n.margin is None else min(n.margin, margin)
                return near
            margin //= 2

    def _blocks(self, video: np.ndarray, camera: np.ndarray) -> np.ndarray:
        """Scores of the rows of one ``video`` (a mask) of ``camera`` (a mask) in time blocks,
        each row's own object (``tracks``) left out wherever it is seen."""
        if self.frames is None:
            raise ValueError(f"{self.what}: a camera with few training videos needs the frame of each row")
        out = np.zeros(len(self.features))
        frames = np.where(video, self.frames, -1)
        edges = block_edges(self.frames[video], self.blocks)
        for s, e in zip(edges[:-1], edges[1:]):
            block = (frames >= s) & (frames < e)
            if not block.any():
                continue
            self.narrowed.blocks += 1
            near = self._near(video, s, e, camera)
            if near.all():               # one block holds every row: each against the others
                out[block] = _mean_knn_self(self.features[block], self.k, self.threads)
                self.narrowed.alone += int(block.sum() < 2)
            elif self.tracks is None:
                out[block] = _mean_knn(self.features[~near], self.features[block], self.k, self.threads)
            else:
                out[block] = self._without_objects(block, ~near, camera)
        return out[video]

    def _without_objects(self, block: np.ndarray, pool: np.ndarray, camera: np.ndarray) -> np.ndarray:
        """Scores of the ``block`` rows against the ``pool`` rows (masks) less each row's own
        object (one tree: its k nearest plus as many as the object has in the pool, the object's
        dropped); an object that would leave fewer than ``k`` rows of ``camera`` stays."""
        from sklearn.neighbors import NearestNeighbors

        rows = np.flatnonzero(pool)
        nn = NearestNeighbors(n_neighbors=min(self.k, len(rows)), n_jobs=self.threads).fit(self.features[rows])
        tracks, room = self.tracks[rows], int((camera & pool).sum())
        scored = np.flatnonzero(block)
        out = np.zeros(len(scored))
        for track in np.unique(self.tracks[scored]):
            mine = self.tracks[scored] == track
            own = tracks == track if track >= 0 else np.zeros(len(rows), bool)
            n_own = int(own.sum())
            if n_own == 0 or room - n_own < self.k:
                out[mine] = nn.kneighbors(self.features[scored[mine]])[0].mean(axis=1)
                self.narrowed.kept += int(mine.sum()) if n_own else 0
                continue
            dist, idx = nn.kneighbors(self.features[scored[mine]], n_neighbors=self.k + n_own)
            keep = ~own[idx]
            keep &= np.cumsum(keep, axis=1) <= self.k   # the k nearest of other objects
            out[mine] = (dist * keep).sum(axis=1) / self.k
        return out


def _mean_knn_self(rows: np.ndarray, k: int, threads: int = 1) -> np.ndarray:
    """Mean distance of each row to its ``k`` nearest other rows (itself left out)."""
    from sklearn.neighbors import NearestNeighbors

    if len(rows) < 2:
        return np.zeros(len(rows))
    nn = NearestNeighbors(n_neighbors=min(k + 1, len(rows)), n_jobs=max(1, int(threads))).fit(rows)
    return nn.kneighbors(rows)[0][:, 1:].mean(axis=1)


def leave_out(cfg: dict, window: int = 0) -> dict:
    """The few-video leave-out settings of ``cfg["cameras"]`` (``blocks``, ``margin``, ``few``:
    ``few_videos``), the margin at least the term's temporal ``window`` (frames sharing a flow are
    near-duplicates); a key not in ``cfg``: the schema's default."""
    from vad_pipeline.config import defaults

    cams = {**defaults()["cameras"], **cfg.get("cameras", {})}
    return {"blocks": int(cams["blocks"]), "margin": max(int(cams["margin"]), int(window)),
            "few": int(cams["few_videos"])}
