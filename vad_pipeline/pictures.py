"""Pictures of the top anomalies: what the highest-scoring segments look like.

For each of the first ``report.pictures`` segments of ``top_anomalies.csv``: a strip of
``report.strip`` frames around the peak, on each frame the box of its highest-scoring object and
that object's score (red) and, given the cell stage's frame table, the window of its highest cell
term S_c (cyan, dashed: where the motion was most unusual, detected or not), and below the strip
the segment's frame-score curve. With ground truth, the
abnormal frames are marked (red titles, red bands on the curve) and, where the dataset has pixel
masks, the mask's outline is drawn. One contact sheet shows every segment's peak frame.

Only the frames shown are read (image files one by one, a video file decoded as a stream up to
the last frame needed), for every layout including own footage without labels.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from vad_pipeline.io import atomic_path  # noqa: E402

log = logging.getLogger(__name__)
CONTACT_SHEET = "contact_sheet.png"


def strip_frames(start: int, end: int, peak: int, n_frames: int, count: int, step: int) -> list[int]:
    """``count`` frames centred on ``peak``, ``step`` apart (0: spread over the segment), inside
    the video."""
    if step <= 0:
        step = max(1, int(np.ceil((end - start) / max(count - 1, 1))))
    first = peak - step * (count // 2)
    first = min(max(first, 0), max(n_frames - 1 - step * (count - 1), 0))
    return sorted({min(max(first + i * step, 0), n_frames - 1) for i in range(count)})


def file_name(row) -> str:
    video = re.sub(r"[^A-Za-z0-9_.-]", "_", str(row.video))
    return f"{int(row.rank):02d}_{video}_{int(row.peak_frame):05d}.png"


def _top_box(rows: pd.DataFrame | None, frame: int, score: str):
    """(box, score) of the frame's row with the highest ``score`` column (objects: "score", the cell
    stage's windows: "s_c"), or None."""
    if rows is None:
        return None
    g = rows[rows["frame"] == frame]
    if g.empty:
        return None
    r = g.loc[g[score].idxmax()]
    return (int(r.x1), int(r.y1), int(r.x2), int(r.y2)), float(r[score])


def _show(ax, img: np.ndarray, obj, mask: np.ndarray | None, title: str, abnormal: bool, bold: bool,
          cell=None) -> None:
    ax.imshow(img[..., ::-1] if img.ndim == 3 else img, cmap=None if img.ndim == 3 else "gray")
    if mask is not None and mask.any():
        ax.contour(mask.astype(float), levels=[0.5], colors="yellow", linewidths=0.8)
    if cell is not None:
        (x1, y1, x2, y2), _ = cell
        ax.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, ec="cyan", lw=1.2, ls="--"))
    if obj is not None:
        (x1, y1, x2, y2), s = obj
        ax.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, ec="red", lw=1.4))
        ax.text(x1, max(y1 - 2, 0), f"{s:.2f}", color="white", fontsize=7, va="bottom",
                bbox={"facecolor": "red", "alpha": 0.8, "pad": 1, "lw": 0})
    ax.set_title(title, fontsize=8, color="tab:red" if abnormal else "black",
                 fontweight="bold" if bold else "normal")
    ax.set_xticks([])
    ax.set_yticks([])


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    d = np.diff(np.r_[0, mask.astype(int), 0])
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def picture(row, imgs: dict[int, np.ndarray], objects: pd.DataFrame, scores: pd.DataFrame,
            masks: np.ndarray | None, out: Path, name: str, cells: pd.DataFrame | None = None) -> None:
    """One segment: the strip of frames (``imgs``) above its frame-score curve."""
    shown = sorted(imgs)
    labels = dict(zip(scores["frame"].to_numpy(int), scores["label"].to_numpy(int)))
    h, w = imgs[shown[0]].shape[:2]
    panel = 2.6
    fig = plt.figure(figsize=(panel * len(shown), panel * h / w + 2.0))
    gs = fig.add_gridspec(2, len(shown), height_ratios=[panel * h / w, 1.6])
    for i, f in enumerate(shown):
        ax = fig.add_subplot(gs[0, i])
        abnormal = labels.get(f, -1) > 0
        _show(ax, imgs[f], _top_box(objects, f, "score"), masks[f] if masks is not None else None,
              f"frame {f}" + (" (abnormal)" if abnormal else ""), abnormal, f == int(row.peak_frame),
              _top_box(cells, f, "s_c"))
    ax = fig.add_subplot(gs[1, :])
    start, end = int(row.start_frame), int(row.end_frame)
    margin = max(10, (end - start + 1) // 2)
    g = scores[(scores["frame"] >= start - margin) & (scores["frame"] <= end + margin)]
    ax.axvspan(start - 0.5, end + 0.5, color="tab:blue", alpha=0.12, lw=0, label="segment")
    lab = g["label"].to_numpy()
    if (lab >= 0).all():
        for k, (a, b) in enumerate(_runs(lab > 0)):
            ax.axvspan(g["frame"].iloc[a] - 0.5, g["frame"].iloc[b - 1] + 0.5, color="tab:red", alpha=0.2, lw=0,
                       label="abnormal (ground truth)" if k == 0 else None)
    ax.plot(g["frame"], g["score"], color="black", lw=1)
    for f in shown:
        ax.axvline(f, color="tab:red" if f == int(row.peak_frame) else "grey", lw=0.8, ls=":")
    ax.set(xlabel="frame", ylabel="frame score")
    ax.legend(loc="upper right", fontsize=7)
    when = f", {row.start_time}-{row.end_time}" if isinstance(row.start_time, str) else ""
    overlap = f", {row.label_overlap:.0%} abnormal" if pd.notna(row.label_overlap) else ""
    fig.suptitle(f"#{int(row.rank)} {name}: video {row.video}, frames {start}-{end}{when}, peak {int(row.peak_frame)} "
                 f"(score {row.peak_score:.3f}){overlap}", fontsize=9)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def contact_sheet(tiles: list[tuple], out: Path, name: str) -> None:
    """Every segment's peak frame with its boxes: (row, image, object, mask, cell) per segment."""
    cols = min(4, max(len(tiles), 1))
    rows = max(-(-len(tiles) // cols), 1)
    h, w = tiles[0][1].shape[:2] if tiles else (3, 4)
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 3.0 * h / w * rows + 0.6), squeeze=False)
    for ax, (row, img, obj, mask, cell) in zip(axes.flat, tiles):
        _show(ax, img, obj, mask, f"#{int(row.rank)} video {row.video} frame {int(row.peak_frame)}",
              pd.notna(row.label_overlap) and row.label_overlap > 0, False, cell)
    for ax in list(axes.flat)[len(tiles):]:
        ax.axis("off")
    if not tiles:
        axes[0, 0].text(0.5, 0.5, "no segment to show", ha="center", va="center")
    fig.suptitle(f"{name}: top anomalies (red: highest-scoring object; cyan: most unusual motion window; "
                 "yellow: ground-truth mask)", fontsize=10)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def pictures(top: pd.DataFrame, objects: pd.DataFrame, frames: pd.DataFrame, cfg: dict, out_dir: str,
             cells: pd.DataFrame | None = None) -> list[Path]:
    """Write one PNG per top segment and the contact sheet into ``out_dir``; returns the paths.
    ``cells``: the cell stage's test frame table (its windows drawn), or None."""
    from vad_pipeline import datasets as D

    p = cfg["report"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    top = top.astype({"video": str}).head(p["pictures"])
    objects = objects.astype({"video": str})
    frames = frames.astype({"video": str})
    cells = cells.astype({"video": str}) if cells is not None else None
    with_masks = D.has_pixel_masks(cfg)
    written, tiles = [], []
    for video_name, rows in top.groupby("video", sort=False):
        video = D.get_video(cfg, "test", video_name)
        strips = {r.rank: strip_frames(int(r.start_frame), int(r.end_frame), int(r.peak_frame), video.n_frames,
                                       p["strip"], p["strip_step"]) for r in rows.itertuples()}
        imgs = D.read_frames(video, {f for s in strips.values() for f in s} | set(rows["peak_frame"].astype(int)))
        masks = D.pixel_masks(cfg, video) if with_masks else None
        obj = objects[objects["video"] == video_name]
        cell = None if cells is None else cells[cells["video"] == video_name]
        scores = frames[frames["video"] == video_name].sort_values("frame")
        for r in rows.itertuples():
            path = out / file_name(r)
            picture(r, {f: imgs[f] for f in strips[r.rank]}, obj, scores, masks, path, cfg["name"], cell)
            written.append(path)
            peak = int(r.peak_frame)
            tiles.append((r, imgs[peak], _top_box(obj, peak, "score"), masks[peak] if masks is not None else None,
                          _top_box(cell, peak, "s_c")))
        log.info("video %s: %d pictures from %d frames read", video_name, len(rows), len(imgs))
    tiles.sort(key=lambda t: int(t[0].rank))
    contact_sheet(tiles, out / CONTACT_SHEET, cfg["name"])
    return [*sorted(written), out / CONTACT_SHEET]
