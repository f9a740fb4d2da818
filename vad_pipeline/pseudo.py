"""Pseudo-anomalies: one normal video turned into a labelled anomalous one, for label-free validation.

:func:`plan` decides which source frame every output frame shows and how it is labelled; :func:`render`
streams the output frames, reading the source in small chunks so a long 1080p video never sits in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

KINDS = ("skip", "reverse", "paste", "freeze")
CHUNK = 64  # source frames per read call: bounds memory (64 frames of 1080p are ~400 MB)
MIN_LENGTH = 8  # output frames of the shortest segment: shorter ones are hardly seen by 4-frame models

Modifier = Callable[[int, np.ndarray], None]


@dataclass(frozen=True)
class Segment:
    """One pseudo-anomaly: output frames ``start .. start+length-1``, reading source frames from ``source`` on."""

    kind: str  # one of KINDS
    start: int  # first OUTPUT frame of the anomalous segment
    length: int  # output frames in the segment
    source: int  # first (lowest) SOURCE frame the segment reads


def plan(
    n_frames: int, kinds: Sequence[str], segment: float, guard: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Segment]]:
    """Return (src, labels, kind_of_frame, segments): per OUTPUT frame the source frame index it shows (int array),
    its label (int8: 1 anomalous, 0 normal, -1 ignored), and its kind (object array of str: the segment's kind,
    '' elsewhere). One segment per kind, in order, between normal stretches; ``segment`` is a fraction of n_frames."""
    kinds = list(kinds)
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"unknown pseudo-anomaly kind {kind!r} (known: {', '.join(KINDS)})")
    if guard < 0:
        raise ValueError(f"guard must be >= 0, got {guard}")
    if not kinds:
        n = max(0, n_frames)
        return np.arange(n), np.zeros(n, np.int8), np.full(n, "", dtype=object), []
    length = max(MIN_LENGTH, round(segment * n_frames))
    used = sum({"skip": 2 * length, "reverse": 0}.get(kind, length) for kind in kinds)   # new source frames
    gaps = len(kinds) + 1
    need = used + gaps * (guard + 1)
    if n_frames < need:
        raise ValueError(
            f"n_frames={n_frames} is too short for pseudo-anomalies {kinds}: {need} frames needed "
            f"({used} for segments of {length} frames, {gaps} normal stretches of at least guard+1={guard + 1})"
        )
    base, extra = divmod(n_frames - used, gaps)
    # the first stretches take the remainder: every stretch, the first included, is >= guard+1 frames
    normal = [base + (i < extra) for i in range(gaps)]
    parts: list[np.ndarray] = []
    segments: list[Segment] = []
    s = o = 0  # next source frame, next output frame
    for kind, gap in zip(kinds, normal):
        parts.append(np.arange(s, s + gap))
        s, o = s + gap, o + gap
        segments.append(Segment(kind, o, length, s))
        if kind == "skip":  # twice the speed: 2L source frames in L output frames
            parts.append(np.arange(s, s + 2 * length, 2))
            s += 2 * length
        elif kind == "reverse":
            # continuous, no cut: back from the last frame shown (s - 1), then forward again from
            # where it turned, re-showing those L frames (normal motion) before the L new ones
            if s < length + 1:
                raise ValueError(f"n_frames={n_frames}: a reverse segment of {length} frames needs {length + 1} "
                                 f"frames shown before it, there are {s}")
            parts.append(np.arange(s - 2, s - 2 - length, -1))
            parts.append(np.arange(s - length, s))
            o += length
            segments[-1] = Segment(kind, segments[-1].start, length, s - 1 - length)
        else:  # paste, freeze: frames in order, render changes their pixels
            parts.append(np.arange(s, s + length))
            s += length
        o += length
    parts.append(np.arange(s, s + normal[-1]))
    src = np.concatenate(parts).astype(np.int64)
    labels = np.zeros(len(src), np.int8)
    kind_of_frame = np.full(len(src), "", dtype=object)
    for seg in segments:
        end = seg.start + seg.length
        labels[seg.start : end] = 1
        kind_of_frame[seg.start : end] = seg.kind
        # the terms look back (cubes 4 frames, S_m and S_c their pooling windows: the caller's guard):
        # just after a segment a frame is neither clearly normal nor anomalous
        labels[end : end + guard] = -1
    return src, labels, kind_of_frame, segments


def freeze_box(first: np.ndarray, later: np.ndarray, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(x1, y1, x2, y2) of a size=(h, w) region, inside the frame, where the two frames differ most (box-filtered
    absolute difference of their grey levels): the region that moves, so freezing it is visible. Ties: top-left."""
    g1, g2 = (f if f.ndim == 2 else cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in (first, later))
    diff = np.abs(g1.astype(np.float32) - g2.astype(np.float32))
    H, W = diff.shape
    h, w = min(max(1, size[0]), H), min(max(1, size[1]), W)
    ii = cv2.integral(diff, sdepth=cv2.CV_64F)  # (H+1, W+1): any box sum in 4 look-ups
    sums = ii[h:, w:] - ii[:-h, w:] - ii[h:, :-w] + ii[:-h, :-w]  # sums[y, x]: box with top-left (x, y)
    y, x = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(x), int(y), int(x) + w, int(y) + h


def _paste(first: np.ndarray, length: int, patch: np.ndarray | None, object_size: tuple[int, int],
           rng: np.random.Generator) -> Modifier:
    """Modifier pasting ``patch`` (or a mirrored crop of ``first``) moving across half the frame width."""
    H, W = first.shape[:2]
    if patch is None:
        ph, pw = min(object_size[0], H), min(object_size[1], W)
        py, px = int(rng.integers(0, H - ph + 1)), int(rng.integers(0, W - pw + 1))
        # mirrored so the frame's own content still looks out of place where it is pasted
        patch = first[py : py + ph, px : px + pw, ::-1].copy()
    patch = patch[:H, :W]
    h, w = patch.shape[:2]
    y = int(rng.integers(0, H - h + 1))
    margin = max(1, W // 8)  # "near a side": the start lies in the outer eighth of the frame
    if rng.integers(2) == 0:  # enters on the left, moves right
        x0, step = int(rng.integers(0, margin)), 1
    else:
        x0, step = W - w - int(rng.integers(0, margin)), -1
    travel = W / 2

    def apply(i: int, frame: np.ndarray) -> None:
        x = x0 + step * round(travel * i / max(1, length - 1))  # constant speed, straight line
        a, b = max(0, x), min(W, x + w)  # clipped to the frame
        if b > a:
            frame[y : y + h, a:b] = patch[:, a - x : b - x]

    return apply


def _freeze(first: np.ndarray, middle: np.ndarray, object_size: tuple[int, int]) -> Modifier:
    """Modifier holding the most-moving region of the segment at its first frame's content."""
    H, W = first.shape[:2]
    x1, y1, x2, y2 = freeze_box(first, middle, (min(2 * object_size[0], H), min(2 * object_size[1], W)))
    still = first[y1:y2, x1:x2].copy()

    def apply(i: int, frame: np.ndarray) -> None:
        frame[y1:y2, x1:x2] = still

    return apply


def render(read: Callable[[list[int]], dict[int, np.ndarray]], src: np.ndarray, segments: list[Segment],
           patch: np.ndarray | None, object_size: tuple[int, int], seed: int) -> Iterator[np.ndarray]:
    """Yield the output frames in order (uint8, same shape as the source frames, H x W x 3): ``src[t]`` for frame t,
    changed by the paste and freeze segments; ``read`` is called with at most CHUNK indices at a time."""
    rng = np.random.default_rng(seed)
    by_start = {seg.start: seg for seg in segments}
    bounds = sorted({0, len(src), *(b for seg in segments for b in (seg.start, seg.start + seg.length))})
    for o0, o1 in zip(bounds[:-1], bounds[1:]):
        seg = by_start.get(o0)
        modify: Modifier | None = None
        if seg is not None and seg.kind == "paste":
            modify = _paste(read([seg.source])[seg.source], seg.length, patch, object_size, rng)
        elif seg is not None and seg.kind == "freeze":
            mid = seg.source + seg.length // 2
            got = read([seg.source, mid])
            modify = _freeze(got[seg.source], got[mid], object_size)
        for c0 in range(o0, o1, CHUNK):
            idx = src[c0 : min(c0 + CHUNK, o1)].tolist()
            got = read(idx)
            for k, i in enumerate(idx):
                out = got[i].copy()  # the caller may cache what read returned: never hand it out or change it
                if modify is not None:
                    modify(c0 + k - o0, out)
                yield out
            del got  # drop this chunk before reading the next: one chunk in memory, not two
