"""Detection backend ``motion`` (weight-free, CPU, at the working resolution): foreground = (|frame - median background| >
diff_threshold) OR (|frame - previous| > frame_diff_threshold), cleaned by morphology; each
connected component large enough is a box. The box helpers here serve ``mmdet`` too.
"""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd

from vad_pipeline.datasets import Video, iter_frames, read_frame, read_frames
from vad_pipeline.datasets.video import at_work_size
from vad_pipeline.detect import COLUMNS
from vad_pipeline.io import VadError
from vad_pipeline.progress import Progress


def median_background(video: Video, n: int, blur: int) -> np.ndarray:
    """Per-pixel median of ``n`` frames spread over the video (grey, float32)."""
    idx = set(np.linspace(0, video.n_frames - 1, min(n, video.n_frames)).astype(int).tolist())
    if video.file is None:  # image files: read only the sampled ones (sizes checked below)
        frames = ((video.frames[i], at_work_size(video, read_frame(video.frames[i], gray=True))) for i in sorted(idx))
    else:  # a container is decoded as a stream up to the last sampled frame; only those converted
        frames = ((video.file, g) for _, g in sorted(read_frames(video, idx, gray=True).items()))
    sampled, shape = [], None
    for where, g in frames:
        shape = shape or g.shape
        if g.shape != shape:
            raise VadError(f"{where}: frame size {g.shape} differs from the video's {shape}")
        sampled.append(_prep(g, blur))
    return np.median(np.stack(sampled), axis=0)


def _prep(gray: np.ndarray, blur: int) -> np.ndarray:
    g = gray.astype(np.float32)
    return cv2.GaussianBlur(g, (blur, blur), 0) if blur > 1 else g


def _kernel(k: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))


def foreground_mask(frame: np.ndarray, prev: np.ndarray | None, bg: np.ndarray, p: dict) -> np.ndarray:
    """Binary foreground (uint8 0/1) of one preprocessed grey frame."""
    fg = np.abs(frame - bg) > p["diff_threshold"]
    if prev is not None and p["frame_diff_threshold"] > 0:
        fg |= np.abs(frame - prev) > p["frame_diff_threshold"]
    fg = fg.astype(np.uint8)
    if p["open_kernel"] > 1:
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, _kernel(p["open_kernel"]))
    if p["close_kernel"] > 1:
        fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, _kernel(p["close_kernel"]))
    if p["dilate"] > 0:
        fg = cv2.dilate(fg, _kernel(2 * p["dilate"] + 1))
    return fg


def _cut(counts: np.ndarray, edge: int, valley: float, min_area: float) -> int | None:
    """Where a profile of foreground counts dips below ``valley`` times the fuller entry on each
    side (at least ``edge`` entries from either end, ``min_area`` pixels a side); None: nowhere."""
    n = len(counts)
    if valley <= 0 or n <= 2 * edge:
        return None
    j = edge + int(np.argmin(counts[edge : n - edge]))
    if counts[j] >= valley * min(counts[:j].max(), counts[j:].max()) or min(counts[:j].sum(), counts[j:].sum()) < min_area:
        return None
    return j


def split_blob(comp: np.ndarray, valley: float, min_area: float) -> list[tuple[int, int, int, int]]:
    """Boxes (x0, y0, x1, y1, within ``comp``) of the objects of one blob (``comp``: 0/1, its
    bounding box): cut where its foreground narrows, between columns (two walkers side by side,
    touching; each part at least a quarter of the blob's height wide) or else between rows (one
    behind the other; each part at least half the blob's width high), recursively; each part's
    box fitted to its own pixels."""
    ys, xs = np.nonzero(comp)
    if len(ys) == 0:
        return []
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    comp = comp[y0:y1, x0:x1]
    h, w = comp.shape
    for axis, edge in ((0, max(2, h // 4)), (1, max(2, w // 2))):
        j = _cut(comp.sum(axis=axis).astype(np.float64), edge, valley, min_area)
        if j is not None:
            a, b = (comp[:, :j], comp[:, j:]) if axis == 0 else (comp[:j], comp[j:])
            dx, dy = (j, 0) if axis == 0 else (0, j)
            return ([(x0 + p, y0 + q, x0 + r, y0 + s) for p, q, r, s in split_blob(a, valley, min_area)]
                    + [(x0 + dx + p, y0 + dy + q, x0 + dx + r, y0 + dy + s) for p, q, r, s in split_blob(b, valley, min_area)])
    return [(int(x0), int(y0), int(x1), int(y1))]


def boxes_from_mask(fg: np.ndarray, p: dict) -> np.ndarray:
    """Connected components -> (N, 5) array x1, y1, x2, y2, fill ratio, area-filtered and padded;
    with ``split_valley`` > 0 a component is first split where its foreground narrows
    (:func:`split_blob`), each part's box fitted to its own pixels."""
    h, w = fg.shape
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    out, pad, valley = [], p["pad"], p["split_valley"]
    for i, (x, y, bw, bh, area) in enumerate(stats[1:n], start=1):
        if area < p["min_area"] or area > p["max_area_frac"] * h * w:
            continue
        parts = [(x, y, bw, bh, area)]
        if valley > 0:
            comp = (labels[y : y + bh, x : x + bw] == i).astype(np.uint8)
            cuts = split_blob(comp, valley, p["min_area"])
            if len(cuts) > 1:
                parts = [(x + a, y + b, c - a, d - b, int(comp[b:d, a:c].sum())) for a, b, c, d in cuts]
        for px, py, pw, ph, pa in parts:
            out.append((max(0, px - pad), max(0, py - pad), min(w, px + pw + pad), min(h, py + ph + pad), pa / (pw * ph)))
    return np.asarray(out, dtype=np.float64).reshape(-1, 5)


def box_area(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def covered_fraction(box: np.ndarray, others: np.ndarray) -> float:
    """The largest fraction of ``box`` that lies inside any one of ``others`` (0 if none)."""
    if len(others) == 0:
        return 0.0
    iw = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    ih = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    return float((iw * ih).max() / max((box[2] - box[0]) * (box[3] - box[1]), 1e-9))


def filter_overlaps(boxes: np.ndarray, max_overlap: float, priority: np.ndarray | None = None) -> np.ndarray:
    """Visit boxes by decreasing ``priority`` (default: area) and drop one when more than
    ``max_overlap`` of it lies inside an already kept box; the kept rows stay in input order."""
    if len(boxes) == 0:
        return boxes
    priority = box_area(boxes) if priority is None else priority
    kept: list[int] = []
    for i in np.argsort(-priority, kind="stable"):
        if covered_fraction(boxes[i], boxes[kept]) <= max_overlap:
            kept.append(int(i))
    return boxes[sorted(kept)]


def difference_boxes(cur: np.ndarray, prev: np.ndarray | None, p: dict) -> np.ndarray:
    """Foreground boxes (N, 5) of |cur - prev| > diff_threshold on blurred grey frames."""
    if prev is None:
        return np.zeros((0, 5))
    fg = (np.abs(cur - prev) > p["diff_threshold"]).astype(np.uint8)
    return boxes_from_mask(fg, {"min_area": p["min_area"], "max_area_frac": p["max_area_frac"], "pad": 0,
                                "split_valley": 0.0})


def uncovered(fg: np.ndarray, det: np.ndarray, max_overlap: float) -> np.ndarray:
    """The foreground boxes that no detection covers by more than ``max_overlap``."""
    keep = [covered_fraction(b, det) <= max_overlap for b in fg]
    return fg[np.asarray(keep, bool)] if len(fg) else fg


def detect_motion(video: Video, p: dict) -> pd.DataFrame:
    bg = median_background(video, p["background_frames"], p["blur"])
    rows, prev = [], None
    progress = Progress(f"detect {video.split}/{video.name}", video.n_frames, "frames")
    for t, gray in enumerate(iter_frames(video, gray=True)):
        cur = _prep(gray, p["blur"])
        boxes = filter_overlaps(boxes_from_mask(foreground_mask(cur, prev, bg, p), p), p["max_overlap"])
        rows += [(t, *b[:4].astype(int), round(float(b[4]), 4), "motion") for b in boxes]
        prev = cur
        progress.update(1)
    return pd.DataFrame(rows, columns=COLUMNS)
