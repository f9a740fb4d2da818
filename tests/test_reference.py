"""The leave-out of the weight-free terms' training scores (vad_pipeline.reference): a camera's
training scores, which its test z-scores are divided by, must look like those of unseen normal
footage of that camera, whether it was filmed once or several times; every camera gets its own
statistics in every term, or an error naming it."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from vad_pipeline import config as C
from vad_pipeline.fusion import camera_z
from vad_pipeline.io import VadError
from vad_pipeline.reference import BLOCKS, VIDEOS, Reference, block_edges, leave_out, scheme

LEAVE = leave_out(C.defaults())   # the schema's cameras.blocks, margin, few_videos


def _clip(rng, n: int, centre: float = 0.0, dim: int = 5) -> np.ndarray:
    """Normal footage's features: a slowly drifting state (neighbouring frames near-duplicates,
    as an object walking across the view), around ``centre``."""
    x = np.zeros((n, dim))
    for t in range(1, n):
        x[t] = 0.97 * x[t - 1] + rng.normal(0, 0.25, dim)
    return x + centre


def _train_mean(clips: list[np.ndarray], cameras=None, **kw) -> list[float]:
    """Mean training score of each clip in one reference of ``clips`` (one video each)."""
    feats = np.concatenate(clips)
    videos = np.repeat(np.arange(len(clips)), [len(c) for c in clips])
    frames = np.concatenate([np.arange(len(c)) for c in clips])
    cams = None if cameras is None else np.repeat(cameras, [len(c) for c in clips])
    s = Reference(feats, videos, 5, frames=frames, cameras=cams, **{**LEAVE, **kw}).score_training()
    return [float(s[videos == i].mean()) for i in range(len(clips))]


def test_a_single_clip_is_judged_like_a_camera_filmed_twice_and_like_unseen_footage():
    rng = np.random.default_rng(0)
    a, b, *unseen = (_clip(rng, 600) for _ in range(6))
    one = _train_mean([a])[0]
    two = _train_mean([a, b])[0]
    # the unseen clips' scores against the single clip: what the z-statistics stand for
    test = float(np.mean([Reference(a, np.zeros(len(a)), 5).score(u).mean() for u in unseen]))
    assert one == pytest.approx(two, rel=0.25) and one == pytest.approx(test, rel=0.25)
    # without the margin, the block's neighbours are near-duplicates: scores too low
    assert _train_mean([a], margin=0)[0] < one
    # each row against the rest of its clip, itself alone left out (the old way): far too low
    alone = Reference(a, np.zeros(len(a)), 6).score(a)   # k + 1 nearest, the first is itself
    assert alone.mean() < 0.6 * test


def test_a_single_clip_camera_in_a_pooled_reference_keeps_its_own_footage():
    """Leaving a camera's only video out of a pooled reference would leave only other cameras'
    footage: its training scores would be far larger than its unseen footage's."""
    rng = np.random.default_rng(1)
    x, y1, y2, unseen = _clip(rng, 500), _clip(rng, 500, 8.0), _clip(rng, 500, 8.0), _clip(rng, 500)
    pooled = _train_mean([x, y1, y2], cameras=["x", "y", "y"])
    test = float(Reference(np.concatenate([x, y1, y2]), np.zeros(1500), 5).score(unseen).mean())
    assert pooled[0] == pytest.approx(test, rel=0.25)
    # camera y has two videos: each against the other (and camera x), as before
    assert pooled[1] == pytest.approx(_train_mean([y1, y2])[0], rel=0.05)


def _objects(rng, n: int = 600, life: int = 250, every: int = 25, start: int = 0, dim: int = 4):
    """Objects' rows (features, frames, tracks): one object arrives every ``every`` frames and
    stays ``life`` frames (longer than the margin) with features near its own (a walker's speed
    and size), so an object's rows far apart in time are still near-duplicates."""
    rows, frames, tracks = [], [], []
    for o, t0 in enumerate(range(every - life, n, every)):
        x = rng.normal(0, 1, dim)
        for t in range(max(t0, 0), min(t0 + life, n)):
            x = x + rng.normal(0, 0.03, dim)
            rows.append(x.copy()), frames.append(t), tracks.append(o + start)
    return np.array(rows), np.array(frames), np.array(tracks)


def test_objects_in_view_longer_than_the_margin_are_left_out_whole():
    """A camera filmed once or twice whose objects stay in view for longer than the margin: with
    the block's objects left out wherever they are seen (tracks), its training scores match its
    unseen footage's; with time alone they are far too low, and leaving one of two videos out
    judges each against half the footage (too high)."""
    one, frames_only, videos, blocks = [], [], [], []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        (a, fa, ta), (b, fb, tb) = _objects(rng), _objects(rng, start=1000)
        unseen = [_objects(rng)[0] for _ in range(3)]
        v = np.zeros(len(a))
        test = np.mean([Reference(a, v, 5).score(u).mean() for u in unseen])
        one.append(Reference(a, v, 5, frames=fa, tracks=ta, **LEAVE).score_training().mean() / test)
        frames_only.append(Reference(a, v, 5, frames=fa, **LEAVE).score_training().mean() / test)
        two, vv = np.concatenate([a, b]), np.r_[v, np.ones(len(b))]
        test = np.mean([Reference(two, vv, 5).score(u).mean() for u in unseen])
        kw = {**LEAVE, "frames": np.r_[fa, fb], "tracks": np.r_[ta, tb]}
        videos.append(Reference(two, vv, 5, **{**kw, "few": 1}).score_training()[: len(a)].mean() / test)
        blocks.append(Reference(two, vv, 5, **{**kw, "few": 2}).score_training()[: len(a)].mean() / test)
    assert 0.85 < np.mean(one) < 1.2 and np.mean(frames_only) < 0.7
    assert 0.85 < np.mean(blocks) < 1.15 < np.mean(videos)


def test_an_objects_rows_are_scored_against_the_rest_less_its_block_margin_and_itself():
    """The one-tree search (k nearest plus the object's rows, the object's dropped) gives what
    scoring each object of a block against its own reduced pool gives."""
    rng = np.random.default_rng(3)
    x, frames, tracks = _objects(rng, n=200, life=60, every=10)
    s = Reference(x, np.zeros(len(x)), 4, frames=frames, tracks=tracks,
                  **{**LEAVE, "blocks": 4, "margin": 10}).score_training()
    expect = np.zeros(len(x))
    for lo, hi in zip(range(0, 200, 50), range(50, 250, 50)):
        block = (frames >= lo) & (frames < hi)
        for t in np.unique(tracks[block]):
            mine = block & (tracks == t)
            pool = ~((frames >= lo - 10) & (frames < hi + 10)) & (tracks != t)
            d = np.linalg.norm(x[mine][:, None] - x[pool][None], axis=2)
            expect[mine] = np.sort(d, axis=1)[:, :4].mean(axis=1)
    np.testing.assert_allclose(s, expect, rtol=1e-9)


def test_leave_out_schemes_and_blocks(caplog):
    few = C.defaults()["cameras"]["few_videos"]   # the schema's, as every stage takes it
    assert LEAVE == {"blocks": C.defaults()["cameras"]["blocks"], "margin": C.defaults()["cameras"]["margin"],
                     "few": few}
    assert scheme(1, few) == BLOCKS == scheme(few, few) and scheme(few + 1, few) == VIDEOS == scheme(13, few)
    assert scheme(2, 2) == BLOCKS and scheme(3, 2) == VIDEOS and scheme(1, 0) == BLOCKS and scheme(2, 1) == VIDEOS
    # the margin at least the term's temporal window; a setting not given: the schema's
    assert leave_out({"cameras": {"margin": 3}}, 8) == {**LEAVE, "margin": 8}
    assert block_edges(np.arange(100), 5).tolist() == [0, 20, 40, 60, 80, 100]
    assert block_edges(np.array([3, 3, 4]), 5).tolist() == [3, 4, 5]   # a short clip: fewer, non-empty blocks
    # a clip too short for its margin still gets finite training scores (its block alone left out),
    # and the log says the margin was narrowed
    short = {**LEAVE, "margin": 25}
    with caplog.at_level(logging.WARNING, logger="vad_pipeline.reference"):
        s = Reference(np.arange(12.0)[:, None], np.zeros(12), 3, "toy", frames=np.arange(12), **short).score_training()
    assert np.isfinite(s).all() and (s > 0).all()
    assert "toy: 5 of 5 time blocks scored with their margin narrowed to" in caplog.text
    # one object seen throughout: leaving it out would leave nothing, so only its block goes (warned)
    caplog.clear()
    one = Reference(np.arange(12.0)[:, None], np.zeros(12), 3, "toy", frames=np.arange(12), tracks=np.zeros(12),
                    **short)
    with caplog.at_level(logging.WARNING, logger="vad_pipeline.reference"):
        assert one.score_training().tolist() == s.tolist()
    assert "toy: 12 training rows scored with their own object in the reference" in caplog.text
    with pytest.raises(ValueError, match="frame of each row"):
        Reference(np.zeros((4, 2)), np.zeros(4), 1, **LEAVE).score_training()
    with pytest.raises(ValueError, match="leave-out settings"):   # no copy of the settings to fall back on
        Reference(np.zeros((4, 2)), np.zeros(4), 1, frames=np.arange(4)).score_training()


def test_a_video_of_a_single_row_is_scored_against_the_rest(caplog):
    """A camera with few videos, one of them a single row: that row's training score is its
    distance to the rest (not 0); a reference of one row alone has nothing to compare with: 0, warned."""
    x = np.r_[10.0, np.arange(20.0)][:, None]   # video 0: one row (10), video 1: 20 rows (0 .. 19)
    videos, frames = np.r_[0, np.ones(20)], np.r_[0, np.arange(20)]
    s = Reference(x, videos, 3, frames=frames, **LEAVE).score_training()
    assert s[0] == pytest.approx(np.mean([0.0, 1.0, 1.0]))   # its 3 nearest of video 1: 10, 9 and 11
    with caplog.at_level(logging.WARNING, logger="vad_pipeline.reference"):
        alone = Reference(np.ones((1, 2)), ["v"], 3, "toy", frames=[7], **LEAVE).score_training()
    assert alone.tolist() == [0.0] and "toy: 1 training rows without any other row to compare with" in caplog.text


def test_every_camera_gets_its_own_statistics_or_an_error_naming_it():
    train = pd.DataFrame({"camera": ["01"] * 50, "s_f": np.linspace(0, 1, 50)})
    test = pd.DataFrame({"camera": ["01", "02"], "s_f": [0.5, 10.0]})
    # camera 02 has test objects but no training object: judged by camera 01's statistics before
    with pytest.raises(VadError, match="camera 02: no training value of s_f"):
        camera_z(train, test, "s_f", by_camera=True)
    z, stats = camera_z(train, test, "s_f", by_camera=False)   # pooled: one set of statistics for all
    assert "cameras" not in stats and np.isfinite(z).all()
    # a camera with training rows but no test object needs nothing
    z, stats = camera_z(pd.concat([train, train.assign(camera="03")]), test.iloc[:1], "s_f", by_camera=True)
    assert set(stats["cameras"]) == {"01", "03"}
