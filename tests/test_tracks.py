"""Boxes linked into objects (vad_pipeline.tracks): what the leave-out of a camera with few
training videos removes with a block, so that an object that stays in view longer than the
margin does not judge itself."""

from __future__ import annotations

import numpy as np
import pandas as pd

from vad_pipeline import object_motion as M
from vad_pipeline.tracks import iou, link, of_videos


def _walk(x0: float, y0: float, dx: float, frames) -> np.ndarray:
    return np.array([[x0 + dx * t, y0, x0 + dx * t + 20, y0 + 40] for t in frames], float)


def test_iou():
    a = np.array([[0, 0, 10, 10]])
    assert iou(a, np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])).round(3).tolist() == [[1.0, 0.333, 0.0]]
    assert iou(np.array([[0, 0, 0, 0]]), a).tolist() == [[0.0]]   # an empty box overlaps nothing


def test_two_walkers_in_parallel_stay_two_objects_and_a_short_drop_out_is_bridged():
    t = np.arange(30)
    a, b = _walk(0, 0, 3, t), _walk(200, 100, -3, t)
    keep = (t < 10) | (t > 12)          # walker a missed for 3 frames (within gap 3)
    frames = np.concatenate([t[keep], t])
    boxes = np.vstack([a[keep], b])
    order = np.random.default_rng(0).permutation(len(frames))   # rows in any order
    tracks = link(frames[order], boxes[order], gap=3)
    back = np.empty_like(tracks)
    back[order] = tracks
    assert len(set(back[: keep.sum()])) == 1 and len(set(back[keep.sum():])) == 1
    assert back[0] != back[-1]
    # missed longer than the gap: a new object
    late = (t < 10) | (t > 20)
    assert len(set(link(t[late], a[late], gap=3))) == 2


def test_a_new_object_and_one_that_jumps_get_new_tracks():
    frames = np.array([0, 1, 1, 2])
    boxes = np.array([[0, 0, 20, 40], [2, 0, 22, 40], [100, 100, 120, 140], [300, 0, 320, 40]], float)
    assert link(frames, boxes).tolist() == [0, 0, 1, 2]


def test_tracks_are_unique_across_videos_and_only_where_a_camera_has_few_videos():
    t = np.arange(5)
    boxes = np.vstack([_walk(0, 0, 2, t)] * 3)
    videos = np.repeat(["v1", "v2", "v3"], 5)
    assert of_videos(videos, np.tile(t, 3), boxes).tolist() == np.repeat([0, 1, 2], 5).tolist()
    df = pd.DataFrame({"video": videos, "frame": np.tile(t, 3), **dict(zip(["x1", "y1", "x2", "y2"], boxes.T))})
    cams = np.array(["a"] * 5 + ["b"] * 10)
    # camera a (1 video) is scored in blocks and needs its objects; camera b (2 videos), blocks up to
    # 1 video, does not; blocks up to 2 (the schema's cameras.few_videos): both
    assert M.object_tracks(df, cams, 1).tolist() == [0] * 5 + [-1] * 10
    assert sorted(set(M.object_tracks(df, cams, 2).tolist())) == [0, 1, 2]
