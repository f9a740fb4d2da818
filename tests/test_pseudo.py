"""Pseudo-anomalies (vad_pipeline.pseudo): the plan's frame mapping and labels, and the rendered pixels."""

from __future__ import annotations

import numpy as np
import pytest

from vad_pipeline.pseudo import KINDS, freeze_box, plan, render

N, H, W = 120, 48, 64
SQ = 8  # side of the moving square
OBJ = (10, 12)  # object_size (h, w)


def square_x(t: int) -> int:
    return 4 + t // 3  # the square's left edge: moves right, slowly enough to stay inside for N frames


@pytest.fixture(scope="module")
def video() -> list[np.ndarray]:
    """A bright square moving right on a still noisy background (noise never reaches the square's brightness);
    pixel (0, 0) holds t+1 so every frame differs from every other."""
    background = np.random.default_rng(0).integers(40, 120, (H, W, 3), dtype=np.uint8)
    frames = []
    for t in range(N):
        f = background.copy()
        f[20 : 20 + SQ, square_x(t) : square_x(t) + SQ] = 230
        f[0, 0] = t + 1
        frames.append(f)
    return frames


class Reader:
    """read(indices) over a list of frames, recording every call's indices; frames are returned as stored."""

    def __init__(self, frames: list[np.ndarray]) -> None:
        self.frames, self.calls = frames, []

    def __call__(self, indices: list[int]) -> dict[int, np.ndarray]:
        self.calls.append(list(indices))
        return {i: self.frames[i] for i in indices}


def checker(h: int, w: int) -> np.ndarray:
    """A 0/255 patch: differs from every background and square pixel, so the diff shows exactly where it lies."""
    return np.where((np.indices((h, w)).sum(0) % 2)[..., None] == 0, 0, 255).astype(np.uint8).repeat(3, axis=2)


def rendered(video, kinds, seed=0, patch=None, guard=4):
    src, labels, kinds_of, segs = plan(N, kinds, 0.1, guard)
    read = Reader(video)
    out = list(render(read, src, segs, patch, OBJ, seed))
    return src, labels, segs, out, read


# ---- plan ----


def test_skip_shows_every_second_frame_and_shortens_the_video():
    src, labels, kinds, segs = plan(N, ["skip"], 0.1, 4)
    (seg,) = segs
    L = seg.length
    assert L == 12 and len(src) == N - L
    inside = src[seg.start : seg.start + L]
    assert inside.tolist() == list(range(seg.source, seg.source + 2 * L, 2))
    assert src[seg.start + L] == seg.source + 2 * L  # resumes after the 2L consumed frames
    assert np.all(np.diff(np.delete(src, range(seg.start, seg.start + L))) >= 1)
    assert src[-1] == N - 1  # the whole source is used


def test_reverse_turns_back_without_a_cut_and_then_goes_forward_again():
    src, _, kinds, segs = plan(N, ["reverse"], 0.1, 4)
    (seg,) = segs
    L = seg.length
    inside = src[seg.start : seg.start + L]
    assert np.all(np.diff(inside) == -1)
    assert inside[0] == src[seg.start - 1] - 1          # one step back from the last frame shown: no jump
    assert inside.min() == seg.source
    assert np.all(np.abs(np.diff(src)) == 1)            # never a cut anywhere: every step is one frame
    assert np.all(np.diff(src[seg.start + L - 1 :]) == 1)   # forward again after it
    assert len(src) == N + 2 * L and src[-1] == N - 1   # the turned-back frames are shown twice
    assert set(kinds[seg.start : seg.start + L]) == {"reverse"}


@pytest.mark.parametrize("guard", [0, 4])
def test_labels_segments_and_guards(guard):
    src, labels, kinds, segs = plan(300, KINDS, 0.05, guard)
    assert [s.kind for s in segs] == list(KINDS)
    assert len(src) == 300 + segs[0].length and labels.dtype == np.int8   # skip: L fewer; reverse: 2L more
    expect = np.zeros(len(src), np.int8)
    expect_kind = np.full(len(src), "", dtype=object)
    prev_end = 0
    for s in segs:
        assert s.start >= prev_end + guard + 1  # no overlap, normal frames between (and before the first)
        end = s.start + s.length
        expect[s.start : end] = 1
        expect[end : end + guard] = -1
        expect_kind[s.start : end] = s.kind
        prev_end = end
    assert prev_end + guard + 1 <= len(src)  # inside the video, with normal frames after the last guard
    assert segs[0].start >= guard + 1
    assert labels.tolist() == expect.tolist() and kinds.tolist() == expect_kind.tolist()
    assert src.min() >= 0 and src.max() <= 299


def test_too_short_unknown_empty_and_deterministic():
    with pytest.raises(ValueError, match="n_frames=40"):
        plan(40, KINDS, 0.1, 4)
    with pytest.raises(ValueError, match="jitter"):
        plan(N, ["skip", "jitter"], 0.1, 4)
    src, labels, kinds, segs = plan(N, [], 0.1, 4)
    assert src.tolist() == list(range(N)) and not labels.any() and segs == []
    a, b = plan(N, ["paste", "freeze"], 0.1, 4), plan(N, ["paste", "freeze"], 0.1, 4)
    assert a[3] == b[3] and all(np.array_equal(x, y) for x, y in zip(a[:3], b[:3]))


# ---- freeze_box ----


def test_freeze_box_finds_the_moving_square(video):
    x1, y1, x2, y2 = freeze_box(video[30], video[60], (16, 16))
    assert (x2 - x1, y2 - y1) == (16, 16) and 0 <= x1 and x2 <= W and 0 <= y1 and y2 <= H
    path = (square_x(30), 20, square_x(60) + SQ, 20 + SQ)
    assert x1 < path[2] and path[0] < x2 and y1 < path[3] and path[1] < y2


# ---- render ----


def test_normal_frames_are_exact_and_read_is_chunked(video):
    src, labels, segs, out, read = rendered(video, ["paste", "freeze", "skip", "reverse"], patch=checker(6, 8))
    assert len(out) == len(src)
    inside = np.zeros(len(src), bool)
    for s in segs:
        inside[s.start : s.start + s.length] = True
    for t in np.flatnonzero(~inside):
        assert np.array_equal(out[t], video[src[t]])
    for s in segs:
        if s.kind in ("skip", "reverse"):  # unmodified pixels, frames as src says
            assert all(np.array_equal(out[t], video[src[t]]) for t in range(s.start, s.start + s.length))
    assert all(f.dtype == np.uint8 and f.shape == (H, W, 3) for f in out)
    assert max(len(c) for c in read.calls) <= 64


def test_read_stays_chunked_on_a_long_video():
    frames = [np.full((4, 4, 3), t % 256, np.uint8) for t in range(1000)]
    src, _, _, segs = plan(1000, KINDS, 0.1, 4)
    read = Reader(frames)
    n = sum(1 for _ in render(read, src, segs, None, (2, 2), 0))
    assert n == len(src) and max(len(c) for c in read.calls) <= 64


def test_output_frames_are_fresh(video):
    kept = [f.copy() for f in video]
    src, _, segs, out, _ = rendered(video, ["paste", "freeze"])
    assert all(np.array_equal(a, b) for a, b in zip(video, kept))  # read's frames untouched
    assert not any(np.shares_memory(o, f) for o in out[:5] for f in video)


def test_paste_is_a_patch_moving_in_a_straight_line(video):
    ph, pw = 6, 8
    src, labels, segs, out, _ = rendered(video, ["paste"], patch=checker(ph, pw))
    (s,) = segs
    xs, ys = [], []
    for t in range(s.start, s.start + s.length):
        yy, xx = np.nonzero((out[t] != video[src[t]]).any(axis=2))
        assert yy.max() - yy.min() < ph and xx.max() - xx.min() < pw  # only a patch-sized region changed
        xs.append(xx.min())
        ys.append(yy.min())
    steps = np.diff(xs)
    assert len(set(ys)) == 1  # horizontal line
    assert np.all(steps > 0) or np.all(steps < 0)  # monotonic, in one direction
    assert abs(xs[-1] - xs[0]) >= W // 2 - pw  # across about half the frame (less only where clipped)


def test_paste_without_patch_uses_a_crop_of_object_size(video):
    src, _, segs, out, _ = rendered(video, ["paste"])
    (s,) = segs
    t = s.start + 1
    yy, xx = np.nonzero((out[t] != video[src[t]]).any(axis=2))
    assert 0 < yy.max() - yy.min() < OBJ[0] and 0 < xx.max() - xx.min() < OBJ[1]


def test_freeze_holds_the_moving_region(video):
    src, labels, segs, out, _ = rendered(video, ["freeze"])
    (s,) = segs
    first = video[s.source]
    x1, y1, x2, y2 = freeze_box(first, video[s.source + s.length // 2], (2 * OBJ[0], 2 * OBJ[1]))
    assert x1 < square_x(s.source + s.length) + SQ and square_x(s.source) < x2  # the square's path is frozen
    box = np.zeros((H, W), bool)
    box[y1:y2, x1:x2] = True
    for t in range(s.start, s.start + s.length):
        assert np.array_equal(out[t][box], first[box])
        assert np.array_equal(out[t][~box], video[src[t]][~box])
    assert not np.array_equal(out[s.start + s.length - 1], video[src[s.start + s.length - 1]])  # visible


def test_seed_determinism(video):
    patch = checker(6, 8)
    a = rendered(video, ["paste"], seed=1, patch=patch)[3]
    b = rendered(video, ["paste"], seed=1, patch=patch)[3]
    c = rendered(video, ["paste"], seed=2, patch=patch)[3]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
