"""Localisation metrics from the object boxes and the pixel masks: RBDC, TBDC and pixel-level AUC.

RBDC and TBDC are the region- and track-based detection criteria of B. Ramachandra and M. Jones,
"Street Scene: A new dataset and evaluation protocol for video anomaly detection", WACV 2020
(Section 4, "Evaluation criteria"). As defined there, and how they map onto this pipeline:

- An anomalous *region* is one ground-truth region in one frame. The paper's datasets annotate
  regions as boxes; pixel masks are turned into regions here: every 8-connected component of a
  frame's mask is one region, represented by its bounding box. Components smaller than
  ``min_region_area`` pixels (an object cut by the frame edge into a few-pixel sliver, mask noise)
  are fragments, not regions: they are neither counted nor matched (the pixel AUC keeps them).
- A *detected region* is an object box whose score is at least the threshold t (boxes are
  ``x1, y1, x2, y2`` with ``x2``, ``y2`` exclusive, as everywhere in the pipeline).
- **RBDC** (region-based detection criterion). A ground-truth region is detected when some
  detected region of the same frame overlaps it with IoU >= beta (``overlap``, the paper's 0.1).
  Region detection rate = detected regions / all ground-truth regions. A detected region whose IoU
  with every ground-truth region of its frame is below beta is a *false positive*.
- **TBDC** (track-based detection criterion). A *track* is one anomalous region followed through
  consecutive frames. A track is detected when at least a fraction alpha (``track_fraction``, the
  paper's 0.1) of its regions are detected (IoU >= beta as above). Track detection rate = detected
  tracks / all tracks. False positives are counted as for RBDC (false-positive regions).
- Both rates are traced against the *false-positive rate per frame* (false-positive regions /
  number of evaluated frames) over every threshold t (each distinct object score, from +inf down),
  and the figure reported is the area under that curve for false-positive rates from 0 to
  ``max_fpr`` (the paper's 1 false positive per frame), divided by ``max_fpr`` so a detector that
  finds every region before its first false positive scores 1. Between thresholds the curve is
  interpolated linearly (as a ROC curve); from the last threshold whose false-positive rate is
  within ``max_fpr`` it stays at that threshold's detection rate up to ``max_fpr`` (as the
  evaluation code published with later papers on Avenue and ShanghaiTech does).

Tracks from masks alone (the pixel-mask datasets carry no track ids): a region of frame t joins
the track of the region of frame t-1 (same video) it shares the most mask pixels with; a region
that shares no pixel with the previous frame's regions starts a new track (so two regions that
split from one stay in its track; a region bridging two tracks joins the one it overlaps most).

Pixel-level AUC: each pixel's score is the highest score of the object boxes covering it; a pixel
no box covers ranks below every box (the lowest object score of the dataset minus one); labels are
the mask. All pixels of every evaluated frame of the videos that have masks count (no
subsampling): pixels are counted per distinct score and the AUC is computed from the weighted
counts (scikit-learn's ``roc_auc_score`` with ``sample_weight``), which is exact.

The evaluated frames are those of ``frame_scores.csv`` that the frame-level metrics use (the first
``frame_scores.exclude_first`` frames of each video are left out), in the test videos that have
pixel masks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from vad_pipeline.io import VadError

log = logging.getLogger(__name__)

REFERENCE = ("B. Ramachandra and M. Jones, Street Scene: A new dataset and evaluation protocol for "
             "video anomaly detection, WACV 2020, Section 4")


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of boxes ``x1, y1, x2, y2`` with exclusive ends."""
    a, b = np.asarray(a, float).reshape(-1, 4), np.asarray(b, float).reshape(-1, 4)
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


@dataclass
class Tally:
    """What the threshold sweep needs, gathered frame by frame (see :func:`add_frame`)."""

    det_scores: list[float] = field(default_factory=list)    # every detected region's score
    det_fp: list[bool] = field(default_factory=list)         # ... and whether it is a false positive
    region_best: list[float] = field(default_factory=list)   # per GT region: best matching score (-inf: none)
    region_track: list[int] = field(default_factory=list)    # per GT region: its track id
    n_frames: int = 0
    n_tracks: int = 0
    pixel: dict[str, list[np.ndarray]] = field(default_factory=lambda: {"score": [], "pos": [], "neg": []})
    _prev: tuple | None = None   # (video, frame, labels image, track id per label) of the last frame


def add_frame(t: Tally, video: str, frame: int, mask: np.ndarray, boxes: np.ndarray, scores: np.ndarray,
              overlap: float, fill: float, min_area: int) -> None:
    """Add one evaluated frame: its ground-truth mask (H, W) and its object boxes (N, 4) with scores.
    Mask components smaller than ``min_area`` pixels are fragments, not regions (pixel AUC keeps them)."""
    mask = np.asarray(mask, bool)
    boxes = np.asarray(boxes, np.int64).reshape(-1, 4)
    scores = np.asarray(scores, float).reshape(-1)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    kept = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] >= min_area) + 1
    relabel = np.zeros(n, np.int64)
    relabel[kept] = np.arange(1, len(kept) + 1)
    labels, stats, n = relabel[labels], stats[kept], len(kept) + 1
    x, y, w, h = (stats[:, i] for i in (cv2.CC_STAT_LEFT, cv2.CC_STAT_TOP, cv2.CC_STAT_WIDTH, cv2.CC_STAT_HEIGHT))
    gt = np.stack([x, y, x + w, y + h], axis=1).reshape(n - 1, 4)
    m = iou(boxes, gt) >= overlap                              # (N, K) detection i matches region k
    t.det_scores.extend(scores.tolist())
    t.det_fp.extend((~m.any(1)).tolist())
    t.region_best.extend(np.where(m, scores[:, None], -np.inf).max(0, initial=-np.inf).tolist())
    # tracks: each region continues the previous frame's track it shares the most pixels with
    tracks = np.empty(n - 1, np.int64)
    prev = t._prev if t._prev is not None and t._prev[:2] == (video, frame - 1) else None
    for k in range(1, n):
        best = -1
        if prev is not None:
            shared = np.bincount(prev[2][labels == k], minlength=len(prev[3]) + 1)[1:]
            if shared.any():
                best = int(prev[3][int(np.argmax(shared))])
        if best < 0:
            best, t.n_tracks = t.n_tracks, t.n_tracks + 1
        tracks[k - 1] = best
    t.region_track.extend(tracks.tolist())
    t._prev = (video, frame, labels, tracks)
    t.n_frames += 1
    # pixel scores: boxes painted in ascending score order (as their rank, 0: no box), so each
    # pixel keeps its highest box; then positive and negative pixels counted per rank
    order = np.argsort(scores, kind="stable")
    rank = np.zeros(mask.shape, np.int64)
    hh, ww = mask.shape
    for r, i in enumerate(order, start=1):
        x1, y1, x2, y2 = boxes[i]
        rank[max(y1, 0) : min(y2, hh), max(x1, 0) : min(x2, ww)] = r
    pos = np.bincount(rank[mask], minlength=len(order) + 1)
    t.pixel["score"].append(np.r_[fill, scores[order]])
    t.pixel["pos"].append(pos)
    t.pixel["neg"].append(np.bincount(rank.ravel(), minlength=len(order) + 1) - pos)


def detection_curves(t: Tally, track_fraction: float) -> dict[str, np.ndarray]:
    """False positives per frame and region / track detection rates at every threshold, from +inf
    (nothing detected) down to the lowest object score."""
    s = np.asarray(t.det_scores, float)
    fp = np.asarray(t.det_fp, bool)
    best = np.asarray(t.region_best, float)
    track = np.asarray(t.region_track, np.int64)
    thr = np.r_[np.inf, np.unique(s)[::-1]]
    fp_sorted = np.sort(s[fp])
    n_fp = len(fp_sorted) - np.searchsorted(fp_sorted, thr, side="left")   # false positives with score >= t
    best_sorted = np.sort(best)
    n_reg = len(best_sorted) - np.searchsorted(best_sorted, thr, side="left")
    # a track is detected from the threshold at which ceil(alpha * length) of its regions are
    track_thr = []
    for k in range(t.n_tracks):
        b = np.sort(best[track == k])[::-1]
        need = max(1, int(np.ceil(round(track_fraction * len(b), 9))))
        track_thr.append(b[need - 1])
    track_sorted = np.sort(np.asarray(track_thr, float))
    n_trk = len(track_sorted) - np.searchsorted(track_sorted, thr, side="left")
    return {
        "threshold": thr,
        "fpr": n_fp / max(t.n_frames, 1),
        "rbdc": n_reg / len(best) if len(best) else np.zeros(len(thr)),
        "tbdc": n_trk / t.n_tracks if t.n_tracks else np.zeros(len(thr)),
    }


def area_to(fpr: np.ndarray, rate: np.ndarray, max_fpr: float) -> float:
    """Area under ``rate`` against ``fpr`` (non-decreasing, from (0, 0)) for fpr in [0, max_fpr],
    divided by ``max_fpr``: linear between the points up to max_fpr, then flat from the last of
    them to max_fpr."""
    x, y = np.asarray(fpr, float), np.asarray(rate, float)
    k = int(np.searchsorted(x, max_fpr, side="right"))   # x[:k] <= max_fpr; x[0] = 0
    xs, ys = np.r_[x[:k], max_fpr], np.r_[y[:k], y[k - 1]]
    return float(np.trapezoid(ys, xs) / max_fpr)


def pixel_auc(t: Tally) -> float | None:
    score = np.concatenate(t.pixel["score"]) if t.pixel["score"] else np.empty(0)
    pos = np.concatenate(t.pixel["pos"]) if t.pixel["pos"] else np.empty(0)
    neg = np.concatenate(t.pixel["neg"]) if t.pixel["neg"] else np.empty(0)
    if pos.sum() == 0 or neg.sum() == 0:
        return None
    y = np.r_[np.ones(len(score)), np.zeros(len(score))]
    w = np.r_[pos, neg]
    keep = w > 0
    return float(roc_auc_score(y[keep], np.r_[score, score][keep], sample_weight=w[keep]))


def summarise(t: Tally, p: dict) -> tuple[dict, dict[str, np.ndarray]]:
    """The figures (and the curves) of a filled :class:`Tally`; ``p`` is the ``localisation``
    section (overlap, track_fraction, max_fpr)."""
    curves = detection_curves(t, p["track_fraction"])
    n_regions = len(t.region_best)
    out = {
        "rbdc": area_to(curves["fpr"], curves["rbdc"], p["max_fpr"]) if n_regions else None,
        "tbdc": area_to(curves["fpr"], curves["tbdc"], p["max_fpr"]) if t.n_tracks else None,
        "pixel_auc": pixel_auc(t),
        "n_frames": t.n_frames,
        "n_regions": n_regions,
        "n_tracks": t.n_tracks,
        "n_detections": len(t.det_scores),
        "n_false_positives_at_lowest_threshold": int(np.sum(t.det_fp)),
    }
    return out, curves


def localise(objects: pd.DataFrame, frames: pd.DataFrame,
             masks: dict[str, np.ndarray | None] | Callable[[str], np.ndarray | None],
             p: dict) -> tuple[dict, dict[str, np.ndarray]]:
    """RBDC, TBDC and pixel AUC of the object boxes (``objects``: video, frame, x1, y1, x2, y2,
    score) on the evaluated frames of ``frames`` (frame_scores.csv) of the videos with masks.
    ``masks``: per video its (T, H, W) masks or None, as a dict or a function of the video name
    (called once per video, so only one video's masks are held at a time)."""
    get = masks.get if isinstance(masks, dict) else masks
    objects = objects.astype({"video": str})
    frames = frames.astype({"video": str})
    fill = float(objects["score"].min()) - 1.0 if len(objects) else -1.0
    by_frame = {key: g for key, g in objects.groupby(["video", "frame"])}
    empty = np.empty((0, 4), np.int64)
    t = Tally()
    for name, g in frames[~frames["excluded"].astype(bool)].groupby("video", sort=True):
        m = get(name)
        if m is None:
            continue
        for f in g["frame"].to_numpy(int):
            if f >= len(m):
                raise VadError(f"video {name}: frame {f} is beyond its {len(m)} pixel masks")
            o = by_frame.get((name, f))
            boxes = o[["x1", "y1", "x2", "y2"]].to_numpy(np.int64) if o is not None else empty
            scores = o["score"].to_numpy(float) if o is not None else np.empty(0)
            add_frame(t, name, int(f), m[f], boxes, scores, p["overlap"], fill, p["min_region_area"])
    if t.n_frames == 0:
        raise VadError("no evaluated frame has a pixel mask: no localisation metric")
    out, curves = summarise(t, p)
    out["protocol"] = {
        "reference": REFERENCE,
        "overlap": p["overlap"], "track_fraction": p["track_fraction"], "max_fpr": p["max_fpr"],
        "min_region_area": p["min_region_area"],
        "regions": "8-connected components of each frame's pixel mask (min_region_area px or more), as bounding boxes",
        "tracks": "a region continues the previous frame's track it shares the most mask pixels with",
        "frames": "the frame-level evaluation's frames (exclude_first left out) of videos with masks",
        "pixel_auc": "every pixel of those frames; score: highest box covering it, else below all boxes",
        "area": "under detection rate vs false positives per frame, 0..max_fpr, divided by max_fpr",
    }
    return out, curves
