"""Cell motion term S_c: how unusual the motion in each window of the view is for where it is.

A frame-level companion of S_m that does not rely on the detector separating objects: the frame
is covered by windows (:func:`make_layout`). By default (``cells.windows: perspective``) they
have the size of an object at that image row, scaled by ``cells.scale``: the expected box height
and width are fitted, as straight lines in the box's bottom row, to the training detections
(:func:`fit_perspective`; a walker far away is small and slow in pixels, one close by large and
fast), with a row of windows every ``cells.row_step`` px, each window overlapping its neighbours
by half. ``windows: grid`` gives square cells of ``cells.size`` px every ``cells.stride`` px
instead. Pixels are those of the working resolution (``dataset.work_height``, as the stored
flow's vectors), so the settings mean the same whatever the frame size. The layout is kept in
fractions of the frame, so footage of another frame size is covered at the same places of the view.

:func:`window_means` summarises one flow per window (mean magnitude, fraction of pixels moving
more than ``cells.moving_px``, mean dx, mean dy; integral images, so every window costs the
same); frame t pools the last ``cells.frames`` flows (``STATS``: the peak and the mean of the
window's mean magnitude, the moving fraction, dx, dy), each divided by its standard deviation
over the training windows. :func:`cell_scores` gives each window the mean distance to its
``cells.k`` nearest training statistics among the windows of its row (``cells.rows`` rows either
side; ``cells.cols`` >= 0: only those within that many horizontal steps), so speed is judged
against what moved at that distance from the camera. A frame's S_c is its highest window, whose
box is kept for the pictures. Training frames are scored leaving out their own video (a camera's
single video: their time block, :mod:`vad_pipeline.reference`), for the z-score statistics. Pooled into the frame score in :mod:`vad_pipeline.evaluate` with ``score.w_c``.

Every row of windows is scored on its own, and every layout, so the work is cut into part jobs
(:func:`jobs`; rule cell_terms): one per layout (per camera with ``cameras.cells: camera``) and
band of rows (``cells.jobs``), each writing its frames' highest window among its own; their
gather (rule gather_cell_terms) keeps each frame's highest over the parts, which is the file one
job writes: :data:`TERM`, a :class:`~vad_pipeline.term_jobs.Term`.

No torch: this stage reads only the stored flow and the training boxes.
"""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from vad_pipeline.datasets.cameras import ONE
from vad_pipeline.io import VadError, atomic_path, read_csv, virtual_rows, write_json
from vad_pipeline.reference import Narrowed, Reference
from vad_pipeline.standardise import zstats
from vad_pipeline.term_jobs import Term, groups, warn_few_videos

log = logging.getLogger(__name__)

# The cells keys each stage reads: the rules track only these, so a new k rescores without
# refitting the layout or recomputing the statistics.
LAYOUT_KEYS = ("windows", "scale", "row_step", "size", "stride")
STATS_KEYS = ("frames", "moving_px")
TERMS_KEYS = ("k", "rows", "cols", "frames", "reference_frames")   # frames: the leave-out's least margin
JOBS_KEYS = ("jobs",)   # how the terms are cut into jobs: in the part files' names (the gather's inputs), no result

STATS = ["mag_peak", "mag_mean", "moving", "dx", "dy"]
COLUMNS = ["video", "frame", "s_c", "x1", "y1", "x2", "y2"]
MIN_BOXES = 20   # training boxes a row band needs to count in the perspective fit
# cells.jobs auto: a band of window rows per this many videos of a layout: Ped2, Avenue and each
# ShanghaiTech camera one job (~0.1-1 h), ShanghaiTech pooled (437 videos) nine
AUTO_VIDEOS = 50
PART_COLUMNS = [*COLUMNS, "order", "window"]   # a part job's rows: + the video's place in its split, the window


def grid_windows(height: int, width: int, size: int, stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Square cells of ``size`` px (at most the frame's smaller side) every ``stride`` px: boxes
    (n, 4: x1, y1, x2, y2), the row of each and its horizontal step."""
    size, stride = max(1, min(size, height, width)), max(1, stride)
    ys, xs = np.arange(0, height - size + 1, stride), np.arange(0, width - size + 1, stride)
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    boxes = np.stack([xx, yy, xx + size, yy + size], axis=-1).reshape(-1, 4)
    rows = np.repeat(np.arange(len(ys)), len(xs))
    return boxes.astype(float), rows, np.full(len(rows), float(stride))


def fit_perspective(boxes: np.ndarray, row_step: float) -> dict | None:
    """Expected object height and width (px) as straight lines in the bottom row of the box,
    ``{"height": [slope, intercept], "width": [...]}``, through the medians (bottom, height, width)
    of the row bands (``row_step`` px) that hold at least ``MIN_BOXES`` boxes, weighted by the
    square root of their counts (medians: merged blobs and fragments do not pull the line); a
    single such band: constant sizes; none: None."""
    boxes = np.asarray(boxes, float).reshape(-1, 4)
    band = np.floor(boxes[:, 3] / row_step)
    rows = []
    for b in np.unique(band):
        m = band == b
        if m.sum() >= MIN_BOXES:
            rows.append((np.median(boxes[m, 3]), np.median(boxes[m, 3] - boxes[m, 1]),
                         np.median(boxes[m, 2] - boxes[m, 0]), m.sum()))
    if not rows:
        return None
    y, h, w, n = (np.asarray(c, float) for c in zip(*rows))
    if len(rows) == 1:
        return {"height": [0.0, float(h[0])], "width": [0.0, float(w[0])]}
    wt = np.sqrt(n)
    return {"height": np.polyfit(y, h, 1, w=wt).tolist(), "width": np.polyfit(y, w, 1, w=wt).tolist()}


def perspective_windows(height: int, width: int, fit: dict, scale: float,
                        row_step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A row of windows ending every ``row_step`` px, each ``scale`` x the fitted object size at
    that bottom row (at least ``row_step`` px, at most the frame), overlapping by half."""
    out, rows, steps = [], [], []
    row_step = max(1, row_step)
    for r, bottom in enumerate(range(min(row_step, height), height + 1, row_step)):
        h, w = (int(round(np.clip(scale * np.polyval(fit[k], bottom), min(row_step, lim), lim)))
                for k, lim in (("height", height), ("width", width)))
        step = max(1, w // 2)
        xs = list(range(0, width - w + 1, step))
        if xs[-1] != width - w:   # the right edge is covered too
            xs.append(width - w)
        out += [(x, max(bottom - h, 0), x + w, bottom) for x in xs]
        rows += [r] * len(xs)
        steps += [float(step)] * len(xs)
    return np.asarray(out, float), np.asarray(rows), np.asarray(steps)


def fit_layout(box_paths: list[str], flow_paths: list[str], p: dict, what: str = "") -> dict:
    """The windows of ``cells.windows`` for these training videos' most common working frame size
    (pixel settings are pixels of it), in fractions of the frame; the perspective is fitted to
    their boxes (``box_paths``, one CSV per video; ``flow_paths`` give each video's frame and
    working size). Too few boxes for a fit: the grid, with a warning."""
    sizes, boxes = [], []
    for bp, fp in zip(box_paths, flow_paths):
        with h5py.File(fp, "r") as f:
            h, w = int(f.attrs["height"]), int(f.attrs["width"])
            sizes.append((int(f.attrs.get("work_height", h)), int(f.attrs.get("work_width", w))))
        b = read_csv(bp, ["x1", "y1", "x2", "y2"])[["x1", "y1", "x2", "y2"]].to_numpy(float)
        boxes.append(b / [w, h, w, h])   # fractions of its frame: sizes may differ between videos
    if not sizes:
        raise VadError(f"cell layout{what}: no training video")
    height, width = pd.Series(sizes).value_counts().index[0]
    ref = np.concatenate(boxes) * [width, height, width, height]
    kind, fit = p["windows"], None
    if kind == "perspective":
        fit = fit_perspective(ref, p["row_step"])
        if fit is None:
            log.warning("cell layout%s: fewer than %d training boxes in any row band: square cells instead",
                        what, MIN_BOXES)
            kind = "grid"
    if kind == "perspective":
        win, rows, steps = perspective_windows(height, width, fit, float(p["scale"]), int(p["row_step"]))
    else:
        win, rows, steps = grid_windows(height, width, int(p["size"]), int(p["stride"]))
    log.info("cell layout%s: %s, %d windows in %d rows over %dx%d frames%s", what, kind, len(win),
             len(set(rows.tolist())), height, width,
             f", object height {fit['height'][0]:.3f} x bottom + {fit['height'][1]:.1f} px" if fit else "")
    return {"windows": kind, "frame_size": [height, width], "perspective": fit,
            "boxes": (win / [width, height, width, height]).round(6).tolist(),
            "rows": rows.tolist(), "steps": (steps / width).round(6).tolist()}


def make_layout(box_paths: list[str], flow_paths: list[str], out: str, p: dict,
                cameras: dict[str, str] | None = None) -> dict:
    """The layouts of the cell term, written to ``out`` (JSON ``{"cameras": {camera: layout}}``):
    given ``cameras`` ({video: camera}, videos named by their files' stems; ``cameras.cells:
    camera``), one per camera, fitted to that camera's training videos; else one
    (:data:`~vad_pipeline.datasets.cameras.ONE`) for all."""
    if len(box_paths) != len(flow_paths):
        raise VadError("--boxes and --flows must list the same videos")
    groups: dict[str, list[int]] = {}
    for i, bp in enumerate(box_paths):
        cam = cameras.get(Path(bp).stem, ONE) if cameras else ONE
        groups.setdefault(cam, []).append(i)
    if len(groups) == 1:   # one camera, or pooled: the one layout of the whole training set
        groups = {ONE: list(range(len(box_paths)))}
    layouts = {cam: fit_layout([box_paths[i] for i in idx], [flow_paths[i] for i in idx], p,
                               "" if cam == ONE else f" of camera {cam}") for cam, idx in sorted(groups.items())}
    if not layouts:
        raise VadError("cell layout: no training video")
    out_layout = {"cameras": layouts}
    write_json(out, out_layout)
    return out_layout


def read_layout(path: str) -> dict:
    """A ``make_layout`` JSON file: ``{"cameras": {camera: layout}}`` (a single layout, as older
    versions wrote, is that of every camera)."""
    if not Path(path).is_file():
        raise VadError(f"{path}: cell layout not found; rerun the cell_layout rule")
    with open(path) as f:
        layout = json.load(f)
    return layout if "cameras" in layout else {"cameras": {ONE: layout}}


def layout_for(layouts: dict, video: str, cameras: dict[str, str] | None) -> tuple[str, dict]:
    """The camera whose layout covers ``video`` and that layout (the only one, if only one)."""
    per = layouts["cameras"]
    if len(per) == 1:
        return next(iter(per.items()))
    cam = (cameras or {}).get(video)
    if cam not in per:
        raise VadError(f"cell layout: no window layout for video {video} (camera {cam}); rerun the labels and "
                       "cell_layout rules")
    return cam, per[cam]


def pixel_boxes(layout: dict, height: int, width: int) -> np.ndarray:
    """The layout's windows in the pixels of a height x width frame (each at least 1 px)."""
    b = np.asarray(layout["boxes"], float).reshape(-1, 4) * [width, height, width, height]
    b = np.rint(b).astype(int)
    b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, width)
    b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, height)
    b[:, 0] = np.minimum(b[:, 0], width - 1)
    b[:, 1] = np.minimum(b[:, 1], height - 1)
    b[:, 2] = np.maximum(b[:, 2], b[:, 0] + 1)
    b[:, 3] = np.maximum(b[:, 3], b[:, 1] + 1)
    return b


def window_means(flow: np.ndarray, boxes: np.ndarray, moving_px: float) -> np.ndarray:
    """(n, 4) mean magnitude, fraction moving more than ``moving_px``, mean dx, mean dy of one
    flow (H, W, 2) in each window of ``boxes`` (n, 4 px of the flow)."""
    f = flow.astype(np.float64)
    mag = np.hypot(f[..., 0], f[..., 1])
    chans = np.stack([mag, mag > moving_px, f[..., 0], f[..., 1]], axis=-1)
    integral = np.zeros((chans.shape[0] + 1, chans.shape[1] + 1, 4))
    integral[1:, 1:] = chans.cumsum(0).cumsum(1)
    x1, y1, x2, y2 = boxes.T
    sums = integral[y2, x2] - integral[y1, x2] - integral[y2, x1] + integral[y1, x1]
    return sums / ((x2 - x1) * (y2 - y1))[:, None]


def pool(means: np.ndarray, n_t: int) -> np.ndarray:
    """(T, n, 5) ``STATS`` of every frame from per-flow window means (T, n, 4): frame t pools
    flows t-n_t+1 .. t (flow 0 is all zero: it is used only for frame 0)."""
    csum = np.concatenate([np.zeros((1, *means.shape[1:])), np.cumsum(means, axis=0)])
    out = np.zeros((len(means), means.shape[1], len(STATS)), np.float32)
    for t in range(len(means)):
        s = max(t - n_t + 1, 1 if t > 0 else 0)
        out[t, :, 0] = means[s : t + 1, :, 0].max(axis=0)
        out[t, :, 1:] = (csum[t + 1] - csum[s]) / (t + 1 - s)
    return out


def video_stats(flow_h5: str, layout: dict, p: dict) -> tuple[np.ndarray, np.ndarray]:
    """(frames, windows, 5) statistics of one video's flow file and the windows' boxes in its
    full-frame pixels (n, 4)."""
    block = 64
    with h5py.File(flow_h5, "r") as f:
        fl = f["flow"]
        n, fh, fw = fl.shape[:3]
        boxes = pixel_boxes(layout, fh, fw)   # flow pixels (a downscaled flow is covered alike)
        means = np.zeros((n, len(boxes), 4))
        for start in range(0, n, block):   # a block of flows at a time: long videos fit in memory
            for i, flow in enumerate(fl[start : start + block]):
                means[start + i] = window_means(flow, boxes, float(p["moving_px"]))   # values: working px
        full = pixel_boxes(layout, int(f.attrs["height"]), int(f.attrs["width"]))
    return pool(means, int(p["frames"])), full


@contextmanager
def _stats_file(out: str, layouts: dict):
    """A :func:`split_stats` file being written to ``out`` (atomically): its ``layout`` written,
    its ``stats`` and ``boxes`` groups yielded for the videos."""
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as h:
        h.create_dataset("layout", data=json.dumps(layouts, sort_keys=True), dtype=h5py.string_dtype())
        yield h.create_group("stats"), h.create_group("boxes")


def split_stats(flow_paths: list[str], layout_path: str, out: str, p: dict,
                cameras: dict[str, str] | None = None) -> None:
    """Every video's window statistics of a split into one HDF5 file: ``stats/<video>`` (frames,
    windows, 5), ``boxes/<video>`` its windows in frame pixels, ``layout`` the layouts' JSON; each
    video under its camera's layout (``cameras``: {video: camera}). Datasets, not attributes: HDF5
    refuses attributes over 64 kB, and these grow with the frame size and the number of windows."""
    from vad_pipeline.progress import Progress

    layouts = read_layout(layout_path)
    progress = Progress(f"cell statistics {Path(out).name}", len(flow_paths), "videos")
    with _stats_file(out, layouts) as (stats_group, boxes_group):
        for fp in flow_paths:
            _, layout = layout_for(layouts, Path(fp).stem, cameras)
            stats, boxes = video_stats(fp, layout, p)
            stats_group.create_dataset(Path(fp).stem, data=stats, compression="gzip")
            boxes_group.create_dataset(Path(fp).stem, data=boxes, compression="gzip")
            progress.update()


def gather_stats(parts: list[str], out: str) -> None:
    """One :func:`split_stats` file of a split from its videos' (rule cell_stats_video writes one
    per video; in the split's order): ``stats/<video>`` virtual datasets over the parts (relative
    paths: the folder may move; no statistic copied), the boxes and the layout copied. Parts of
    other layouts are an error naming the file."""
    layout, metas = None, []
    for path in parts:
        lay, names = stats_index(path)
        if layout is not None and lay != layout:
            raise VadError(f"{path}: window statistics of another layout than {parts[0]}'s; rerun the "
                           "cell_stats_video rule")
        layout = lay
        with h5py.File(path, "r") as h:
            metas += [(path, v, h["stats"][v].shape, h["stats"][v].dtype, h["boxes"][v][:]) for v in names]
    if layout is None:
        raise VadError(f"{out}: no video to gather")
    with _stats_file(out, layout) as (stats_group, boxes_group):
        for path, v, shape, dtype, boxes in metas:
            virtual_rows(stats_group, v, [(path, f"stats/{v}", shape[0])], shape[1:], dtype, out)
            boxes_group.create_dataset(v, data=boxes)


def copy_stats(src: str, out: str) -> None:
    """A :func:`split_stats` file with every statistic in it (``src`` may be a gathered file of
    virtual datasets over other files): one file that can be moved alone (a bundle's)."""
    layout, names = stats_index(src)
    with h5py.File(src, "r") as h, _stats_file(out, layout) as (stats_group, boxes_group):
        for v in names:
            stats_group.create_dataset(v, data=h["stats"][v][:], compression="gzip")
            boxes_group.create_dataset(v, data=h["boxes"][v][:])


def stats_index(path: str) -> tuple[dict, list[str]]:
    """The layouts of a ``split_stats`` file and its videos, in the file's order (no statistics read)."""
    if not Path(path).is_file():
        raise VadError(f"{path}: cell statistics not found; rerun the cell_stats rule")
    with h5py.File(path, "r") as h:
        if not {"layout", "stats", "boxes"} <= set(h):
            raise VadError(f"{path}: written by an older version; rerun the cell_stats rule")
        raw = h["layout"][()]
        layout = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        return (layout if "cameras" in layout else {"cameras": {ONE: layout}}), list(h["stats"])


def read_stats(path: str, videos=None) -> tuple[dict, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """The layout of a ``split_stats`` file and, per video (those of ``videos`` only, if given),
    its statistics and windows' boxes."""
    layout, names = stats_index(path)
    keep = None if videos is None else set(videos)
    with h5py.File(path, "r") as h:
        return layout, {v: (h["stats"][v][:], h["boxes"][v][:]) for v in names if keep is None or v in keep}


def _neighbourhoods(layout: dict, p: dict, rows=None):
    """(windows scored, windows they are compared with) as boolean masks over the layout's
    windows: a row of windows and its row band (``cols`` -1), else each window and the windows of
    the band within ``cols`` horizontal steps of it; of the rows ``rows`` only (None: all)."""
    all_rows = np.asarray(layout["rows"])
    box = np.asarray(layout["boxes"], float).reshape(-1, 4)
    centre, step = (box[:, 0] + box[:, 2]) / 2, np.asarray(layout["steps"], float)
    dr, dc = int(p["rows"]), int(p["cols"])
    for r in np.unique(all_rows) if rows is None else rows:
        mine, band = all_rows == r, np.abs(all_rows - r) <= dr
        if dc < 0:   # every window of the row band: one pool for the whole row
            yield mine, band
            continue
        for i in np.flatnonzero(mine):
            one = np.zeros(len(all_rows), bool)
            one[i] = True
            yield one, band & (np.abs(centre - centre[i]) <= dc * step[i] + 1e-9)


def parse_band(band: str) -> tuple[int, int]:
    """``"IofN"``: the I-th (from 1) of N bands of window rows."""
    i, sep, n = str(band).partition("of")
    if not (sep and i.isdigit() and n.isdigit() and 1 <= int(i) <= int(n)):
        raise VadError(f"band {band!r}: expected IofN with 1 <= I <= N (2of4: the second of four bands of rows)")
    return int(i), int(n)


def band_rows(layout: dict, band: str) -> np.ndarray:
    """The window rows of ``band`` (``IofN``, :func:`parse_band`): the layout's rows cut into N
    runs of consecutive rows, as equal as can be (more bands than rows: some are empty). Each
    row's neighbourhoods are scored on their own, so a band is a job of its own."""
    i, n = parse_band(band)
    return np.array_split(np.unique(np.asarray(layout["rows"])), n)[i - 1]


def jobs(cfg: dict, cameras: dict[str, str]) -> list[tuple[str, str]]:
    """The (layout, band) parts of the cell term, one job each (rule cell_terms), from the videos'
    cameras ``cameras`` ({video: camera} of both splits; DAG time, no frame counts): with
    ``cameras.cells: camera`` and several training cameras a layout per camera, else one
    (:data:`~vad_pipeline.datasets.cameras.ONE`); each cut into ``cells.jobs`` bands of window
    rows (``auto``: one per ``AUTO_VIDEOS`` videos of the layout, at least one)."""
    layouts = groups(cfg, "cells", cameras)
    videos = {cam: sum(1 for c in cameras.values() if cam in (c, ONE)) for cam in layouts}
    n = cfg["cells"]["jobs"]
    return [(cam, f"{i}of{b}") for cam in layouts
            for b in [max(1, -(-videos[cam] // AUTO_VIDEOS)) if n == "auto" else int(n)]
            for i in range(1, b + 1)]


def _reference(train: np.ndarray, videos, frames, cams, pool: np.ndarray, scale: np.ndarray, k: int,
               leave: dict | None, threads: int = 1) -> Reference:
    """The training statistics of the ``pool`` windows of every frame, divided by ``scale`` (one
    row band at a time: no scaled copy of all the statistics), each row's video, frame and camera
    kept."""
    n = pool.sum()
    return Reference((train[:, pool] / scale).reshape(-1, train.shape[2]), np.repeat(np.asarray(videos), n),
                     k, "cell term", frames=np.repeat(np.asarray(frames), n),
                     cameras=None if cams is None else np.repeat(np.asarray(cams), n), threads=threads, **(leave or {}))


def _check(train: np.ndarray, query: np.ndarray) -> None:
    if train.shape[1:] != query.shape[1:]:
        raise VadError(f"window layouts differ between training {train.shape[1:]} and test {query.shape[1:]}: "
                       "rerun the cell_stats rule")
    if len(train) == 0:
        raise VadError("cell term: no training frame to compare with")


def _count(layout: dict, p: dict, rows=None) -> int:
    """How many neighbourhoods :func:`_neighbourhoods` yields."""
    all_rows = np.asarray(layout["rows"])
    rows = np.unique(all_rows) if rows is None else np.asarray(rows)
    return len(rows) if int(p["cols"]) < 0 else int(np.isin(all_rows, rows).sum())


def window_scores(train: np.ndarray, videos, query: np.ndarray, scale: np.ndarray, layout: dict, p: dict,
                  training: bool = True, frames=None, leave: dict | None = None,
                  cams=None, rows=None, threads: int = 1, what: str = "") -> tuple[np.ndarray | None, np.ndarray]:
    """Mean distance of each window to its ``k`` nearest training statistics in its
    neighbourhood, of the training frames ``train`` (N, windows, 5; with ``training``, each
    against the other videos' frames, ``videos`` the video of each frame, ``frames`` its number,
    ``cams`` its camera; a camera with few videos: in time blocks, ``leave``,
    :func:`vad_pipeline.reference.leave_out`) and of the ``query`` frames (M, windows, 5). One
    reference per neighbourhood, built once for both; ``rows``: only the windows of these rows
    (the others stay 0: a band job, :func:`band_rows`); ``threads``: the queries' threads."""
    from vad_pipeline.progress import Progress

    _check(train, query)
    out_train = np.zeros(train.shape[:2]) if training else None
    out = np.zeros(query.shape[:2])
    frames = np.arange(len(train)) if frames is None else frames
    progress = Progress(f"S_c{what}", _count(layout, p, rows), "neighbourhoods")
    narrowed = Narrowed()   # over every neighbourhood: one warning, not one each
    for mine, pool in _neighbourhoods(layout, p, rows):
        ref = _reference(train, videos, frames, cams, pool, scale, int(p["k"]), leave, threads)
        if training:
            s = ref.score_training(report=False).reshape(len(train), -1)
            out_train[:, mine] = s[:, mine[pool]]   # the pool's columns that are the scored windows
            narrowed = narrowed.add(ref.narrowed)
        if len(query):
            out[:, mine] = ref.score((query[:, mine] / scale).reshape(-1, query.shape[2])).reshape(len(query), -1)
        progress.update()
    if training:
        narrowed.log(f"S_c{what} (time blocks of every neighbourhood of windows)", leave["margin"], int(p["k"]))
    return out_train, out


def cell_scores(train: np.ndarray, query: np.ndarray, scale: np.ndarray, layout: dict, p: dict) -> np.ndarray:
    """(M, windows) :func:`window_scores` of the ``query`` frames against all of ``train``."""
    return window_scores(train, np.zeros(len(train), int), query, scale, layout, p, training=False)[1]


def training_cell_scores(train: np.ndarray, videos, scale: np.ndarray, layout: dict, p: dict,
                         leave: dict) -> np.ndarray:
    """(N, windows) :func:`window_scores` of the training frames themselves, each frame's windows
    against the other videos' frames (a camera with few videos: ``leave``)."""
    return window_scores(train, videos, train[:0], scale, layout, p, leave=leave)[0]


def _frame_rows(video: str, scores: np.ndarray, boxes: np.ndarray, windows=None, step: int = 1) -> pd.DataFrame:
    """One row per frame: its highest window's score and box (of ``windows``, indices into the
    layout; None: every window) and that window's index (``window``); the scores are of every
    ``step``-th frame (:func:`reference_step`)."""
    windows = np.arange(scores.shape[1]) if windows is None else np.asarray(windows, int)
    scores = scores[:, windows]
    best = scores.argmax(axis=1) if scores.size else np.zeros(len(scores), int)
    b = np.asarray(boxes).reshape(-1, 4)[windows][best] if len(boxes) else np.zeros((len(scores), 4))
    return pd.DataFrame({"video": video, "frame": np.arange(len(scores)) * int(step),
                         "s_c": scores.max(axis=1) if scores.size else np.zeros(len(scores)),
                         "x1": b[:, 0], "y1": b[:, 1], "x2": b[:, 2], "y2": b[:, 3],
                         "window": windows[best] if len(windows) else best})


def frame_table(video: str, scores: np.ndarray, boxes: np.ndarray) -> pd.DataFrame:
    """One row per frame: its highest window's score and box."""
    return _frame_rows(video, scores, boxes)[COLUMNS]


def _stack(arrays: dict) -> tuple[list[str], list[int], np.ndarray]:
    """Names, lengths and the concatenation of {video: (frames, windows, 5)}, emptying ``arrays``
    as it goes (ShanghaiTech's training statistics are gigabytes: never two copies at once)."""
    names = list(arrays)
    lens = [len(arrays[v]) for v in names]
    first = arrays[names[0]] if names else np.zeros((0, 0, len(STATS)), np.float32)
    out = np.empty((sum(lens), *first.shape[1:]), first.dtype)
    at = 0
    for v, n in zip(names, lens):
        out[at : at + n] = arrays.pop(v)
        at += n
    return names, lens, out


def _terms(train: dict, test: dict, layout: dict, p: dict, leave: dict,
           cameras: dict[str, str] | None = None, rows=None, threads: int = 1, what: str = "",
           step: int = 1, training: bool = True) -> tuple[dict, dict]:
    """Window scores of the training frames (their video, or time block, left out: ``leave``;
    ``cameras``: {video: camera} where the layout serves several) and the test frames of one
    layout's videos ({video: (frames, windows, 5)}, emptied), statistics divided by their
    standard deviation over these training windows (all of them, whatever ``rows`` scores);
    ``train`` holds every ``step``-th frame of each video (:func:`reference_step`)."""
    names, lens, everything = _stack(train)
    scale = zstats(everything.reshape(-1, len(STATS)), axis=0)[1]
    videos = np.repeat(np.arange(len(names)), lens)
    frames = np.concatenate([np.arange(n) * step for n in lens]) if lens else np.zeros(0, int)
    cams = np.repeat([(cameras or {}).get(v, ONE) for v in names], lens) if cameras else None
    test_names, test_lens, query = _stack(test)
    if not test_names:
        query = everything[:0]
    tr, te = window_scores(everything, videos, query, scale, layout, p, training=training, frames=frames,
                           leave=leave, cams=cams, rows=rows, threads=threads, what=what)
    ends, test_ends = np.cumsum([0, *lens]), np.cumsum([0, *test_lens])
    return ({v: tr[ends[i] : ends[i + 1]] for i, v in enumerate(names)} if training else {},
            {v: te[test_ends[i] : test_ends[i + 1]] for i, v in enumerate(test_names)})


def _read_split(path: str, videos: list[str], boxes: dict, step: int = 1) -> dict[str, np.ndarray]:
    """{video: statistics} of these ``videos`` of a ``split_stats`` file (every ``step``-th frame),
    their boxes into ``boxes`` (the statistics held once: :func:`_stack` empties the dict as it
    concatenates)."""
    stats_index(path)   # a clear error for a missing or old file
    with h5py.File(path, "r") as h:
        for v in videos:
            boxes[v] = h["boxes"][v][:]
        return {v: h["stats"][v][::step] for v in videos}


def reference_step(frames: int, reference_frames: int | None) -> int:
    """Every how many frames a layout's ``frames`` training frames are kept in its S_c reference,
    so that at most ``reference_frames`` are (None: all). Neighbouring frames pool nearly the same
    flows (``cells.frames``), so the reference loses little, and both its build and the training
    frames' own scores (the z-statistics) stop growing with the footage."""
    if not reference_frames or frames <= reference_frames:
        return 1
    return -(-int(frames) // int(reference_frames))


def frame_counts(path: str, videos: list[str]) -> int:
    """Frames of these ``videos`` in a ``split_stats`` file (no statistics read)."""
    with h5py.File(path, "r") as h:
        return int(sum(h["stats"][v].shape[0] for v in videos))


def term_parts(train_stats: str, test_stats: str, cfg: dict, cameras: dict[str, str] | None = None,
               camera: str | None = None, band: str = "1of1", threads: int = 1,
               training: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``PART_COLUMNS`` rows of one part of S_c (:func:`jobs`), training frames (their video, or
    time block, left out) and test frames: the videos of the layout ``camera`` (None or
    :data:`~vad_pipeline.datasets.cameras.ONE`: of every layout), each frame's highest window of
    the rows of ``band`` (:func:`band_rows`), each camera of the layouts against its own training
    videos (one layout: all against all). Only that layout's statistics are read. ``training``
    False: the test frames only (no training row; the validation's)."""
    from vad_pipeline.reference import leave_out

    p, leave = cfg["cells"], leave_out(cfg, cfg["cells"]["frames"])
    layouts, train_names = stats_index(train_stats)
    test_layouts, test_names = stats_index(test_stats)
    if test_layouts != layouts:
        raise VadError(f"{train_stats} and {test_stats} have different window layouts; rerun the cell_stats rule")
    if not train_names:
        raise VadError(f"{train_stats}: no training video")
    if camera in (None, ONE):
        chosen = list(layouts["cameras"])
    elif camera in layouts["cameras"]:
        chosen = [camera]
    else:
        raise VadError(f"{train_stats}: no window layout of camera {camera} (have {', '.join(layouts['cameras'])}); "
                       "rerun the cell_layout rule")
    group = {v: layout_for(layouts, v, cameras)[0] for v in [*train_names, *test_names]}
    parts: tuple[list, list] = ([], [])
    for cam in chosen:
        layout = layouts["cameras"][cam]
        tr_names, te_names = [v for v in train_names if group[v] == cam], [v for v in test_names if group[v] == cam]
        if not tr_names:
            if te_names:
                raise VadError(f"{train_stats}: no training video of camera {cam}")
            continue
        rows = band_rows(layout, band)
        if not len(rows):
            log.info("S_c%s: band %s holds no row of windows", "" if cam == ONE else f" of camera {cam}", band)
            continue
        warn_few_videos("S_c", "frames", pd.Series([(cameras or {}).get(v, cam) for v in tr_names]).value_counts()
                        .to_dict(), leave)
        boxes: dict[str, np.ndarray] = {}
        n_train = frame_counts(train_stats, tr_names)
        step = reference_step(n_train, p["reference_frames"])
        what = ("" if cam == ONE else f" of camera {cam}") + ("" if band == "1of1" else f", rows band {band}")
        if step > 1:
            log.info("S_c%s: %d training frames, every %d-th in the reference and scored (cells.reference_frames %d)",
                     what, n_train, step, p["reference_frames"])
        train, test = _read_split(train_stats, tr_names, boxes, step), _read_split(test_stats, te_names, boxes)
        a, b = _terms(train, test, layout, p, leave, cameras, rows, threads, what, step, training)
        windows = np.flatnonzero(np.isin(np.asarray(layout["rows"]), rows))
        for out, scores, names, s in ((parts[0], a, train_names, step), (parts[1], b, test_names, 1)):
            out += [_frame_rows(v, x, boxes[v], windows, s).assign(order=names.index(v))[PART_COLUMNS]
                    for v, x in scores.items()]
    empty = pd.DataFrame(columns=PART_COLUMNS)
    return tuple(pd.concat(rows, ignore_index=True) if rows else empty for rows in parts)


def _highest_window(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of S_c's parts reduced to each frame's highest window over the parts (on a tie the
    layout's first window, as one job's argmax), in the split's order of videos."""
    rows = rows.iloc[np.lexsort((rows["window"].to_numpy(), -rows["s_c"].to_numpy(float), rows["frame"].to_numpy(),
                                 rows["order"].to_numpy()))]
    return rows[~rows.duplicated(["order", "frame"])]


# S_c's part jobs (rule cell_terms), their gather (rule gather_cell_terms) and the one job that
# writes what the gather writes (TERM.write without a part)
TERM = Term("S_c", "frames", tuple(COLUMNS), tuple(PART_COLUMNS), term_parts, _highest_window)


def read_terms(path: str) -> pd.DataFrame:
    """A file of S_c (``cells/train.csv``, ``test.csv``)."""
    return read_csv(path, COLUMNS).astype({"video": str})


def layout_terms(train: dict, test: dict, layout: dict, p: dict, leave: dict,
                 cameras: dict[str, str] | None = None) -> tuple[dict, dict]:
    """Window scores of one layout's training frames (their video left out, or a time block of a
    camera with few videos: ``leave``, :func:`vad_pipeline.reference.leave_out`; ``cameras``:
    {video: camera}) and test frames, from statistics in memory ({video: (frames, windows, 5)};
    both dicts are emptied): what :data:`TERM` computes per camera, for studies of the reference
    (tools/validate_cameras.py); with ``cells.reference_frames``, of every step-th training frame."""
    step = reference_step(sum(len(x) for x in train.values()), p["reference_frames"])
    if step > 1:
        train.update({v: x[::step] for v, x in train.items()})
    return _terms(train, test, layout, p, leave, cameras, step=step)
