"""Object detection per video. Backend ``motion``: weight-free foreground boxes.

Foreground = (|frame - median background| > diff_threshold) OR (|frame - previous| >
frame_diff_threshold), cleaned by morphology; each connected component large enough is a box.
Boxes are written as a CSV table: frame, x1, y1, x2, y2, score, class (x2/y2 exclusive).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from vad_pipeline.datasets import Video, iter_frames, read_frame
from vad_pipeline.io import VadError, write_csv

COLUMNS = ["frame", "x1", "y1", "x2", "y2", "score", "class"]


def median_background(video: Video, n: int, blur: int) -> np.ndarray:
    """Per-pixel median of ``n`` frames spread over the video (grey, float32)."""
    idx = set(np.linspace(0, video.n_frames - 1, min(n, video.n_frames)).astype(int).tolist())
    if video.file is None:  # image files: read only the sampled ones
        frames = (read_frame(video.frames[i], gray=True) for i in sorted(idx))
    else:  # a container is decoded as a stream; keep the sampled frames
        frames = (g for t, g in enumerate(iter_frames(video, gray=True)) if t in idx)
    return np.median(np.stack([_prep(g, blur) for g in frames]), axis=0)


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


def filter_overlaps(boxes: np.ndarray, max_overlap: float) -> np.ndarray:
    """Keep boxes largest first; drop one when more than ``max_overlap`` of it lies inside a kept box."""
    if len(boxes) == 0:
        return boxes
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    kept: list[int] = []
    for i in np.argsort(-area, kind="stable"):
        b = boxes[i]
        covered = 0.0
        for j in kept:
            k = boxes[j]
            iw = max(0.0, min(b[2], k[2]) - max(b[0], k[0]))
            ih = max(0.0, min(b[3], k[3]) - max(b[1], k[1]))
            covered = max(covered, iw * ih / max(area[i], 1e-9))
        if covered <= max_overlap:
            kept.append(int(i))
    return boxes[sorted(kept)]


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


BACKENDS: dict[str, Callable[[Video, dict], pd.DataFrame]] = {"motion": lambda v, cfg: detect_motion(v, cfg["motion"])}


def detect_video(video: Video, cfg: dict, out: str) -> pd.DataFrame:
    """Run the configured backend on one video and write its box table atomically."""
    backend = cfg["detect"]["backend"]
    if backend not in BACKENDS:
        raise VadError(f"config: detect.backend {backend!r} is not available (have {sorted(BACKENDS)})")
    df = BACKENDS[backend](video, cfg["detect"])
    if df.empty and not cfg["detect"]["allow_empty"]:
        raise VadError(
            f"{video.source}: no object detected in any of the {video.n_frames} frames; "
            "lower detect.motion thresholds or set detect.allow_empty: true"
        )
    write_csv(out, df)
    return df


def boxes_by_frame(df: pd.DataFrame) -> dict[int, np.ndarray]:
    return {int(t): g[["x1", "y1", "x2", "y2"]].to_numpy(int) for t, g in df.groupby("frame")}


