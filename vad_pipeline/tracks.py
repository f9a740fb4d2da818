"""Tracks: a video's detected boxes linked frame to frame into objects, so that the training
scores of a camera with few training videos can leave out *the same objects* as the scored row
(:class:`vad_pipeline.reference.Reference`), not only its neighbouring frames: a walker that
takes longer than the leave-out margin to cross the scene would otherwise stay in the reference
and make its own training score too small.

Greedy overlap linking, no appearance: a box joins the track whose last box (at most ``gap``
frames missed since) it overlaps most, with intersection over union at least ``iou``. Two walkers
that meet may share a track (more is left out: the safe side); a detector that drops an object
for longer than ``gap`` frames splits it.
"""

from __future__ import annotations

import numpy as np


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of boxes ``a`` (n, 4) and ``b`` (m, 4), x1, y1, x2, y2: (n, m)."""
    a, b = np.asarray(a, float).reshape(-1, 4), np.asarray(b, float).reshape(-1, 4)
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def link(frames, boxes, min_iou: float = 0.1, gap: int = 3) -> np.ndarray:
    """The track (0, 1, ...) of each box of one video: ``frames`` (n,) and ``boxes`` (n, 4), in any
    order."""
    frames = np.asarray(frames, int)
    boxes = np.asarray(boxes, float).reshape(-1, 4)
    out = np.full(len(frames), -1, int)
    last_box = np.zeros((0, 4))
    last_frame = np.zeros(0, int)
    for t in np.unique(frames):
        rows = np.flatnonzero(frames == t)
        live = np.flatnonzero(last_frame >= t - 1 - gap)
        taken = np.zeros(len(rows), bool)
        if len(live):
            o = iou(boxes[rows], last_box[live])
            for flat in np.argsort(o, axis=None)[::-1]:   # best overlaps first, each side once
                i, j = divmod(int(flat), len(live))
                if o[i, j] < min_iou:
                    break
                if taken[i] or last_frame[live[j]] == t:
                    continue
                taken[i], out[rows[i]] = True, live[j]
                last_box[live[j]], last_frame[live[j]] = boxes[rows[i]], t
        new = rows[~taken]
        out[new] = np.arange(len(last_frame), len(last_frame) + len(new))
        last_box = np.vstack([last_box, boxes[new]])
        last_frame = np.concatenate([last_frame, np.full(len(new), t)])
    return out


def of_videos(videos, frames, boxes, min_iou: float = 0.1, gap: int = 3) -> np.ndarray:
    """A track number per row of several videos (``videos`` (n,)), unique across videos."""
    videos = np.asarray(videos)
    out = np.zeros(len(videos), int)
    start = 0
    for v in dict.fromkeys(videos.tolist()):
        mine = videos == v
        t = link(np.asarray(frames)[mine], np.asarray(boxes)[mine], min_iou, gap)
        out[mine] = t + start
        start += int(t.max()) + 1 if len(t) else 0
    return out
