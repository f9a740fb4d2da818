"""Cell motion term S_c: how unusual the motion in each image cell is for that cell.

A frame-level companion of S_m that needs no detection: the frame is covered by square cells
(``cells.size`` px, every ``cells.stride`` px); :func:`cell_stats` summarises the flow in each cell
over the last ``cells.frames`` flows with five statistics (95th-percentile and mean magnitude,
fraction of pixels moving more than ``cells.moving_px``, mean dx, mean dy), each divided by its
standard deviation over all training cells. :func:`cell_scores` gives each cell the mean distance to
its ``cells.k`` nearest training frames' statistics *in the same cell* (or within ``cells.rows`` /
``cells.cols`` cells of it; ``cols: -1`` the whole row band), so speed is judged against what moved
at that place (camera perspective makes speed depend on where). A frame's S_c is its highest cell;
the cell is kept (x1, y1, x2, y2) for the pictures. Training frames are scored leaving out their
own video, for the z-score statistics. Pooled into the frame score in :mod:`vad_pipeline.evaluate`
with ``score.w_c``.

No torch: this stage reads only the stored flow.
"""

from __future__ import annotations

import logging
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from vad_pipeline.io import VadError, atomic_path, read_csv, write_csv

log = logging.getLogger(__name__)

STATS = ["mag_p95", "mag_mean", "moving", "dx", "dy"]
COLUMNS = ["video", "frame", "s_c", "x1", "y1", "x2", "y2"]


def grid(height: int, width: int, size: int, stride: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Top-left corners (rows, columns) of the cells of a height x width grid, and the cell size
    (at most the grid's smaller side)."""
    size = max(1, min(size, height, width))
    stride = max(1, stride)
    return np.arange(0, height - size + 1, stride), np.arange(0, width - size + 1, stride), size


def cell_stats(flows: np.ndarray, size: int, stride: int, moving_px: float,
               mag: np.ndarray | None = None) -> np.ndarray:
    """(rows, cols, 5) ``STATS`` of every cell, pooled over the T flows of ``flows`` (T, H, W, 2);
    ``mag``: their magnitudes (T, H, W) when the caller has them already."""
    flows = flows.astype(np.float32, copy=False)
    ys, xs, size = grid(flows.shape[1], flows.shape[2], size, stride)
    stride = max(1, stride)

    def windows(a: np.ndarray) -> np.ndarray:   # (T, H, W) -> (rows, cols, T * size * size)
        # a strided view (fancy indexing would copy every window position first: ~10x slower)
        w = sliding_window_view(a, (size, size), axis=(1, 2))[:, ::stride, ::stride][:, : len(ys), : len(xs)]
        return w.transpose(1, 2, 0, 3, 4).reshape(len(ys), len(xs), -1)

    mag = windows(np.hypot(flows[..., 0], flows[..., 1]) if mag is None else mag)
    return np.stack([np.percentile(mag, 95, axis=2), mag.mean(axis=2), (mag > moving_px).mean(axis=2),
                     windows(flows[..., 0]).mean(axis=2), windows(flows[..., 1]).mean(axis=2)], axis=-1)


def video_stats(flow_h5: str, p: dict) -> tuple[np.ndarray, np.ndarray]:
    """(frames, rows, cols, 5) cell statistics of one video's flow file, and its cells' boxes
    (rows, cols, 4: x1, y1, x2, y2 in full-frame pixels). Frame t pools flows t-frames+1 .. t
    (flow 0 is all zero: it is used only for frame 0)."""
    n_t, block = int(p["frames"]), 32
    with h5py.File(flow_h5, "r") as f:
        fl, scale = f["flow"], int(f.attrs["downscale"])
        n, height, width = fl.shape[:3]
        size, stride = max(1, round(p["size"] / scale)), max(1, round(p["stride"] / scale))
        ys, xs, size = grid(height, width, size, stride)
        out = np.zeros((n, len(ys), len(xs), len(STATS)), np.float32)
        for start in range(0, n, block):   # a block of frames and the flows before it: long videos fit in memory
            first = max(start - n_t + 1, 0)
            flows = fl[first : min(start + block, n)].astype(np.float32)
            mags = np.hypot(flows[..., 0], flows[..., 1])   # once per flow, not once per frame it pools into
            for t in range(start, min(start + block, n)):
                w = slice(max(t - n_t + 1, 1 if t > 0 else 0) - first, t + 1 - first)
                out[t] = cell_stats(flows[w], size, stride, float(p["moving_px"]), mags[w])
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    boxes = np.stack([xx, yy, xx + size, yy + size], axis=-1) * scale
    return out, boxes


def split_stats(flow_paths: list[str], out: str, p: dict) -> None:
    """Every video's cell statistics of a split into one HDF5 file (a dataset per video)."""
    from tqdm import tqdm

    with atomic_path(out) as tmp, h5py.File(tmp, "w") as h:
        for fp in tqdm(flow_paths, desc=f"cell statistics {Path(out).name}", unit="video"):
            stats, boxes = video_stats(fp, p)
            d = h.create_dataset(Path(fp).stem, data=stats, compression="gzip")
            d.attrs["boxes"] = boxes


def read_stats(path: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per video of a ``split_stats`` file: its cell statistics and its cells' boxes."""
    if not Path(path).is_file():
        raise VadError(f"{path}: cell statistics not found; rerun the cell_stats rule")
    with h5py.File(path, "r") as h:
        return {v: (h[v][:], h[v].attrs["boxes"]) for v in h}


def to_grid(stats: np.ndarray, boxes: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A video's cells mapped onto a ``shape`` (rows, cols) grid by relative position (each grid
    cell takes the video's cell at the same fraction of the frame): footage of another frame size
    is compared with the training cells at the same place of the view."""
    r, c = stats.shape[1:3]
    if (r, c) == tuple(shape):
        return stats, boxes
    ri = np.minimum(((np.arange(shape[0]) + 0.5) * r / shape[0]).astype(int), r - 1)
    ci = np.minimum(((np.arange(shape[1]) + 0.5) * c / shape[1]).astype(int), c - 1)
    return stats[:, ri][:, :, ci], boxes[ri][:, ci]


def cell_scores(train: np.ndarray, query: np.ndarray, scale: np.ndarray, p: dict,
                skip_self: bool = False) -> np.ndarray:
    """(M, rows, cols) mean distance of each query cell to its ``k`` nearest training statistics in
    its neighbourhood; ``train`` (N, rows, cols, 5), ``query`` (M, rows, cols, 5); ``skip_self``:
    the query frames are among the training ones (leave each one's own statistics out)."""
    if train.shape[1:] != query.shape[1:]:
        raise VadError(f"cell grids differ between training {train.shape[1:3]} and test {query.shape[1:3]}: "
                       "frame sizes or flow downscale differ")
    n, rows, cols, f = train.shape
    if n == 0:
        raise VadError("cell term: no training frame to compare with")
    a, q = train / scale, query / scale
    dr, dc = int(p["rows"]), int(p["cols"])
    out = np.zeros(query.shape[:3])
    for r in range(rows):
        rs = slice(max(r - dr, 0), r + dr + 1)
        if dc < 0:   # the whole row band: one pool for every cell of the row
            d = _knn(a[:, rs].reshape(-1, f), q[:, r].reshape(-1, f), int(p["k"]), skip_self)
            out[:, r] = d.reshape(len(q), cols)
            continue
        for c in range(cols):
            out[:, r, c] = _knn(a[:, rs, max(c - dc, 0): c + dc + 1].reshape(-1, f), q[:, r, c], int(p["k"]), skip_self)
    return out


def _knn(pool: np.ndarray, query: np.ndarray, k: int, skip_self: bool) -> np.ndarray:
    """Mean distance of each query row to its k nearest pool rows (the nearest left out when the
    query rows are themselves in the pool)."""
    from sklearn.neighbors import NearestNeighbors

    k = min(k + skip_self, len(pool))
    d, _ = NearestNeighbors(n_neighbors=k).fit(pool).kneighbors(query)
    return d[:, int(skip_self):].mean(axis=1) if d.shape[1] > int(skip_self) else np.zeros(len(query))


def frame_table(video: str, scores: np.ndarray, boxes: np.ndarray) -> pd.DataFrame:
    """One row per frame: its highest cell's score and box."""
    flat = scores.reshape(len(scores), -1)
    best = flat.argmax(axis=1) if len(flat) else np.zeros(0, int)
    b = boxes.reshape(-1, 4)[best]
    return pd.DataFrame({"video": video, "frame": np.arange(len(scores)), "s_c": flat.max(axis=1) if len(flat) else [],
                         "x1": b[:, 0], "y1": b[:, 1], "x2": b[:, 2], "y2": b[:, 3]})[COLUMNS]


def cell_terms(train_stats: str, test_stats: str, train_out: str, test_out: str, cfg: dict) -> None:
    """S_c of every training frame (its video left out) and every test frame."""
    p = cfg["cells"]
    train, test = read_stats(train_stats), read_stats(test_stats)
    if not train:
        raise VadError(f"{train_stats}: no training video")
    shapes = pd.Series([x.shape[1:3] for x, _ in train.values()]).value_counts()
    grid_shape = shapes.index[0]   # the training videos' most common grid
    for name, split in (("training", train), ("test", test)):
        for v, (x, b) in split.items():
            if x.shape[1:3] != grid_shape:
                log.warning("%s video %s: %s cells, not the training grid's %s (another frame size): "
                            "mapped by relative position", name, v, x.shape[1:3], grid_shape)
                split[v] = to_grid(x, b, grid_shape)
    train_boxes, test_boxes = {v: b for v, (_, b) in train.items()}, {v: b for v, (_, b) in test.items()}
    train, test = {v: x for v, (x, _) in train.items()}, {v: x for v, (x, _) in test.items()}
    everything = np.concatenate(list(train.values()))
    sd = everything.reshape(-1, len(STATS)).std(axis=0)
    scale = np.where(sd > 0, sd, 1.0)
    names = list(train)
    rows_train = []
    for v in names:
        others = [train[u] for u in names if u != v]
        if others:
            s = cell_scores(np.concatenate(others), train[v], scale, p)
        else:   # a single training video: against its own other frames
            s = cell_scores(train[v], train[v], scale, p, skip_self=True)
        rows_train.append(frame_table(v, s, train_boxes[v]))
    rows_test = [frame_table(v, cell_scores(everything, x, scale, p), test_boxes[v]) for v, x in test.items()]
    tr = pd.concat(rows_train, ignore_index=True) if rows_train else pd.DataFrame(columns=COLUMNS)
    te = pd.concat(rows_test, ignore_index=True) if rows_test else pd.DataFrame(columns=COLUMNS)
    log.info("S_c: %d training frames (mean %.3f), %d test frames (mean %.3f)", len(tr),
             tr["s_c"].mean() if len(tr) else float("nan"), len(te), te["s_c"].mean() if len(te) else float("nan"))
    write_csv(train_out, tr)
    write_csv(test_out, te)


def read_terms(path: str) -> pd.DataFrame:
    """A ``cell_terms`` CSV."""
    return read_csv(path, COLUMNS).astype({"video": str})
