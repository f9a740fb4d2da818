"""Detection backend ``motion`` (weight-free, CPU): foreground = (|frame - median background| >
diff_threshold) OR (|frame - previous| > frame_diff_threshold), cleaned by morphology; each
connected component large enough is a box. The box helpers here serve ``mmdet`` too.
"""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from vad_pipeline.datasets import Video, iter_frames, read_frame
from vad_pipeline.detect import COLUMNS
from vad_pipeline.io import VadError


def median_background(video: Video, n: int, blur: int) -> np.ndarray:
    """Per-pixel median of ``n`` frames spread over the video (grey, float32)."""
    idx = set(np.linspace(0, video.n_frames - 1, min(n, video.n_frames)).astype(int).tolist())
    if video.file is None:  # image files: read only the sampled ones (sizes checked below)
        frames = ((video.frames[i], read_frame(video.frames[i], gray=True)) for i in sorted(idx))
    else:  # a container is decoded as a stream (iter_frames checks the sizes); keep the sampled frames
        frames = ((video.file, g) for t, g in enumerate(iter_frames(video, gray=True)) if t in idx)
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


def boxes_from_mask(fg: np.ndarray, p: dict) -> np.ndarray:
    """Connected components -> (N, 5) array x1, y1, x2, y2, fill ratio, area-filtered and padded."""
    h, w = fg.shape
    n, _, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    out = []
    for x, y, bw, bh, area in stats[1:n]:
        if area < p["min_area"] or area > p["max_area_frac"] * h * w:
            continue
        pad = p["pad"]
        out.append((max(0, x - pad), max(0, y - pad), min(w, x + bw + pad), min(h, y + bh + pad), area / (bw * bh)))
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
    return boxes_from_mask(fg, {"min_area": p["min_area"], "max_area_frac": p["max_area_frac"], "pad": 0})


def uncovered(fg: np.ndarray, det: np.ndarray, max_overlap: float) -> np.ndarray:
    """The foreground boxes that no detection covers by more than ``max_overlap``."""
    keep = [covered_fraction(b, det) <= max_overlap for b in fg]
    return fg[np.asarray(keep, bool)] if len(fg) else fg


def detect_motion(video: Video, p: dict) -> pd.DataFrame:
    bg = median_background(video, p["background_frames"], p["blur"])
    rows, prev = [], None
    for t, gray in enumerate(tqdm(iter_frames(video, gray=True), total=video.n_frames,
                                  desc=f"detect {video.split}/{video.name}", leave=False)):
        cur = _prep(gray, p["blur"])
        boxes = filter_overlaps(boxes_from_mask(foreground_mask(cur, prev, bg, p), p), p["max_overlap"])
        rows += [(t, *b[:4].astype(int), round(float(b[4]), 4), "motion") for b in boxes]
        prev = cur
    return pd.DataFrame(rows, columns=COLUMNS)
