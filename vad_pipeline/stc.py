"""Spatio-temporal cubes (STCs): per detected object at frame t, the crops of frames t-T..t and
of the flows ending at t-T+1..t, resized to size x size, streamed into one HDF5 file per split.

Layout of the file (N samples, T = t_past, C = 3 or 1, S = size):
  app   (N, T+1, C, S, S) uint8    frames t-T..t (RGB or grey)
  flow  (N, T, 2, S, S)   float16  flows ending at t-T+1..t, in pixels of the working resolution
  video (N,) int32 index into videos;  frame (N,) int32;  box (N, 4) int32 x1,y1,x2,y2 (frame px)
  videos (V,) str  the split's video names (a dataset: an attribute could not hold thousands)
  attrs["content_sha256"]: a hash of all of the above (see :func:`content_hash`)
N is 0 for a test split in which nothing was detected (:func:`build_split`).

The workflow builds one such file per video (``stc/<split>/<video>.h5``, jobs that run in
parallel) and gathers a split's (:func:`gather_split`): there ``app`` and ``flow`` are HDF5
virtual datasets read in place from the videos' files (found beside it, by relative path), the
index and the hash are its own; readers see the same arrays as in a file built whole.

Writing only; :mod:`vad_pipeline.cubes` reads them as model input. No torch import here, so
``score`` (which needs ``INDEX``) runs without torch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import cv2
import h5py
import numpy as np
import pandas as pd

from vad_pipeline.datasets import Video, iter_frames
from vad_pipeline.flow import box_scale, quantize
from vad_pipeline.io import VadError, atomic_path, read_csv, virtual_rows
from vad_pipeline.progress import Progress

INDEX = ["video", "frame", "x1", "y1", "x2", "y2"]
log = logging.getLogger(__name__)


def clip_box(box, h: int, w: int, scale: float | tuple[float, float] = 1) -> tuple[int, int, int, int]:
    """``box`` (x1, y1, x2, y2 in full-frame pixels, x2/y2 exclusive) in an array of h x w stored at
    1/``scale`` resolution (one factor, or x and y: :func:`vad_pipeline.flow.box_scale`), widened
    to whole pixels and clipped to the array (at least one pixel)."""
    sx, sy = (scale, scale) if np.isscalar(scale) else scale
    x1, y1, x2, y2 = (int(v) for v in box)
    x1, y1 = min(max(math.floor(x1 / sx), 0), w - 1), min(max(math.floor(y1 / sy), 0), h - 1)
    x2, y2 = max(min(math.ceil(x2 / sx), w), x1 + 1), max(min(math.ceil(y2 / sy), h), y1 + 1)
    return x1, y1, x2, y2


def crop_resize(img: np.ndarray, box, size: int, scale: float | tuple[float, float] = 1) -> np.ndarray:
    """Crop ``box`` from ``img`` stored at 1/``scale`` resolution (:func:`clip_box`), resized to
    size x size."""
    x1, y1, x2, y2 = clip_box(box, *img.shape[:2], scale)
    return cv2.resize(img[y1:y2, x1:x2], (size, size), interpolation=cv2.INTER_LINEAR)


def square_box(box, width: int, height: int) -> tuple[int, int, int, int]:
    """The square around ``box``'s centre with its longer side, moved inside the frame: a crop
    that keeps the object's aspect ratio (a bicycle stays wider than a walker) when resized."""
    x1, y1, x2, y2 = (int(v) for v in box)
    side = min(max(x2 - x1, y2 - y1), width, height)
    nx = min(max((x1 + x2 - side) // 2, 0), width - side)
    ny = min(max((y1 + y2 - side) // 2, 0), height - side)
    return nx, ny, nx + side, ny + side


def _to_chw(img: np.ndarray) -> np.ndarray:
    return img[None] if img.ndim == 2 else img.transpose(2, 0, 1)


class _Writer:
    """Appends samples to resizable, chunked datasets; memory is bounded by one flush."""

    def __init__(self, f: h5py.File, cfg: dict, channels: int):
        s, t, c = cfg["size"], cfg["t_past"], cfg["chunk"]
        opts = {"compression": cfg["compression"], "shuffle": cfg["compression"] is not None}
        self.dsets = {
            "app": f.create_dataset("app", (0, t + 1, channels, s, s), np.uint8, maxshape=(None, t + 1, channels, s, s), chunks=(c, t + 1, channels, s, s), **opts),
            "flow": f.create_dataset("flow", (0, t, 2, s, s), np.float16, maxshape=(None, t, 2, s, s), chunks=(c, t, 2, s, s), **opts),
            "video": f.create_dataset("video", (0,), np.int32, maxshape=(None,), chunks=(4096,)),
            "frame": f.create_dataset("frame", (0,), np.int32, maxshape=(None,), chunks=(4096,)),
            "box": f.create_dataset("box", (0, 4), np.int32, maxshape=(None, 4), chunks=(4096, 4)),
        }
        self.buf: dict[str, list] = {k: [] for k in self.dsets}
        self.hashes = {k: hashlib.sha256() for k in self.dsets}
        self.flush_every = 4 * c
        self.n = 0

    def add(self, **sample) -> None:
        for k, v in sample.items():
            self.buf[k].append(v)
        if len(self.buf["frame"]) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        m = len(self.buf["frame"])
        if not m:
            return
        for k, d in self.dsets.items():
            d.resize(self.n + m, axis=0)
            rows = np.ascontiguousarray(np.stack(self.buf[k]) if k in ("app", "flow", "box") else np.asarray(self.buf[k]), d.dtype)
            d[self.n : self.n + m] = rows
            self.hashes[k].update(rows.tobytes())  # hashed as stored, while it is in memory anyway
            self.buf[k] = []
        self.n += m


def _combine(digests: dict[str, str], videos) -> str:
    return hashlib.sha256(json.dumps([sorted(digests.items()), [str(v) for v in videos]]).encode()).hexdigest()


def video_list(f: h5py.File) -> list[str]:
    """The video names of an open STC file (an attribute in files of older versions)."""
    names = f["videos"][:] if "videos" in f else f.attrs.get("videos", [])
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def content_hash(f: h5py.File, rows: int = 4096) -> str:
    """SHA-256 of every cube, index row and video name of an open STC file: what a trained model
    depends on, whatever shaped it (detector, flow backend, crop settings, the code). Written by
    :func:`build_split` as ``attrs["content_sha256"]``; read from the data for older files."""
    if "content_sha256" in f.attrs:
        return str(f.attrs["content_sha256"])
    digests = {}
    for k in ("app", "flow", "video", "frame", "box"):
        h, d = hashlib.sha256(), f[k]
        for s in range(0, d.shape[0], rows):
            h.update(np.ascontiguousarray(d[s : s + rows]).tobytes())
        digests[k] = h.hexdigest()
    return _combine(digests, video_list(f))


def _video_cubes(video: Video, boxes: pd.DataFrame, flow_path: str, cfg: dict,
                 progress: Progress | None = None) -> Iterator[dict]:
    s, tp, gray, square = cfg["size"], cfg["t_past"], cfg["color"] == "gray", cfg.get("crop") == "square"
    by_frame = {int(t): g[["x1", "y1", "x2", "y2"]].to_numpy(int) for t, g in boxes.groupby("frame")}
    frames: deque[np.ndarray] = deque(maxlen=tp + 1)
    flows: deque[np.ndarray] = deque(maxlen=tp)
    with h5py.File(flow_path, "r") as ff:
        fl, quantum = ff["flow"], float(ff.attrs.get("quantum", 0))
        if fl.shape[0] != video.n_frames:
            raise VadError(f"{flow_path}: {fl.shape[0]} flow frames but the video has {video.n_frames}; rerun the flow rule")
        scale = box_scale(ff)
        for t, img in enumerate(iter_frames(video, gray=gray)):
            if progress is not None and t:  # frame t-1's cubes are built
                progress.update(1)
            frames.append(img if gray else cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
            flows.append(fl[t].astype(np.float32))   # once per frame, not once per cube (the same values)
            if t < tp or t not in by_frame:
                continue
            for box in by_frame[t]:
                region = square_box(box, img.shape[1], img.shape[0]) if square else box
                app = np.stack([_to_chw(crop_resize(f, region, s)) for f in frames])
                flo = np.stack([crop_resize(f, region, s, scale).transpose(2, 0, 1) for f in flows])
                yield {"app": app, "flow": quantize(flo, quantum), "frame": t, "box": box}


def _no_cube(out: str, split: str, t_past: int, n_videos: int) -> None:
    """A split without any cube: an error for training, a warning for a test split."""
    why = f"no detection at frame >= {t_past} in any video"
    if split != "test":
        raise VadError(f"{out}: no cube could be built ({why}): nothing to train on")
    log.warning("%s: no object was detected in the test split (%s); its %d video(s) are scored from "
                "the no-object score (frame_scores.fill) and the cell term S_c", out, why, n_videos)


def build_split(videos: list[Video], box_paths: list[str], flow_paths: list[str], cfg: dict, out: str,
                part: bool = False) -> int:
    """Write the STCs of every video of a split to ``out``; returns the number of samples.

    A test split without any cube (nothing detected in any video: a night-time test set) gives a
    valid file with zero samples, scored downstream like a single quiet video; a training split
    without any is an error, as there is nothing to train on. ``part``: a part of a split that
    :func:`gather_split` joins (one video, in the workflow), which may hold no cube."""
    p = cfg["stc"]
    channels = 1 if p["color"] == "gray" else 3
    # frames, not cubes: their number is known before the boxes are read, and each costs a decode
    progress = Progress(f"stc {out}", sum(v.n_frames for v in videos), "frames")
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        w = _Writer(f, p, channels)
        for vi, (video, bp, fp) in enumerate(zip(videos, box_paths, flow_paths)):
            boxes = read_csv(bp, ["frame", "x1", "y1", "x2", "y2"])
            for cube in _video_cubes(video, boxes, fp, p, progress):
                w.add(video=vi, **cube)
            progress.update(1)  # the video's last frame
        w.flush()
        if w.n == 0 and not part:
            _no_cube(out, "test" if all(v.split == "test" for v in videos) else "train", p["t_past"], len(videos))
        names = [v.name for v in videos]
        f.create_dataset("videos", data=np.asarray(names, dtype=object), dtype=h5py.string_dtype())
        f.attrs.update(size=p["size"], t_past=p["t_past"], color=p["color"],
                       content_sha256=_combine({k: h.hexdigest() for k, h in w.hashes.items()}, names))
    return w.n


GATHERED = ("app", "flow")   # virtual in a gathered file: the cubes stay in the videos' files
INDEXED = {"video": (), "frame": (), "box": (4,)}   # its own, int32


def gather_split(parts: list[str], out: str, split: str, rows: int = 4096) -> int:
    """One STC file of a split from the files of its parts (:func:`build_split` with ``part``; in
    order): the same arrays, index and ``content_sha256`` as :func:`build_split` gives for the
    whole split, without copying a cube. ``app`` and ``flow`` are virtual datasets over the parts
    (relative paths: the folder may move); the hash reads every cube once. Returns the samples."""
    meta = []
    for path in parts:
        with h5py.File(path, "r") as f:
            if any(k not in f for k in (*GATHERED, *INDEXED)):
                raise VadError(f"{path}: not an STC file; rerun the stc_video rule")
            meta.append({"n": f["app"].shape[0], "videos": video_list(f),
                         "attrs": {k: f.attrs[k].item() if hasattr(f.attrs[k], "item") else f.attrs[k]
                                   for k in ("size", "t_past", "color")},
                         "dsets": {k: (f[k].shape[1:], f[k].dtype, f[k].chunks) for k in GATHERED},
                         **{k: f[k][:].astype(np.int32) for k in INDEXED}})
    if not meta:
        raise VadError(f"{out}: no video to gather")
    for path, m in zip(parts[1:], meta[1:]):
        if (m["attrs"], m["dsets"]) != (meta[0]["attrs"], meta[0]["dsets"]):
            raise VadError(f"{path}: cubes of other stc settings than {parts[0]}'s ({m['attrs']} against "
                           f"{meta[0]['attrs']}); rerun the stc_video rule")
    names = [v for m in meta for v in m["videos"]]
    first = np.cumsum([0] + [len(m["videos"]) for m in meta])   # each part's first video in the split
    index = {k: np.concatenate([m[k] + (first[i] if k == "video" else 0) for i, m in enumerate(meta)])
             .astype(np.int32).reshape(-1, *shape) for k, shape in INDEXED.items()}   # as stored whole
    n = int(sum(m["n"] for m in meta))
    if n == 0:   # before writing: a training split without cubes leaves no file
        _no_cube(out, split, meta[0]["attrs"]["t_past"], len(names))
    digests = {k: hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest() for k, v in index.items()}
    progress = Progress(f"stc {out} ({len(parts)} parts), hashing", n, "cubes")
    for k in GATHERED:   # as build_split hashes them: every row as stored, in order
        h = hashlib.sha256()
        for path, m in zip(parts, meta):
            with h5py.File(path, "r") as f:
                for s in range(0, m["n"], rows):
                    h.update(np.ascontiguousarray(f[k][s : s + rows]).tobytes())
                    if k == "flow":
                        progress.update(min(rows, m["n"] - s))
        digests[k] = h.hexdigest()
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        for k in GATHERED:
            shape, dtype, chunks = meta[0]["dsets"][k]
            virtual_rows(f, k, [(path, k, m["n"]) for path, m in zip(parts, meta)], shape, dtype, out,
                         maxshape=(None, *shape), chunks=chunks or True)
        for k, v in index.items():
            f.create_dataset(k, data=v, maxshape=(None, *v.shape[1:]), chunks=(4096, *v.shape[1:]))
        f.create_dataset("videos", data=np.asarray(names, dtype=object), dtype=h5py.string_dtype())
        f.attrs.update(**meta[0]["attrs"], content_sha256=_combine(digests, names))
    return n


def missing_parts(f: h5py.File) -> list[str]:
    """The files a gathered STC file reads its cubes from that are not there (HDF5 would read
    zeros in their place, silently)."""
    here = Path(f.filename).resolve().parent
    missing = set()
    for k in GATHERED:
        if k in f and f[k].is_virtual:
            for src in f[k].virtual_sources():
                if src.file_name != "." and not (here / src.file_name).is_file():
                    missing.add(str(here / src.file_name))
    return sorted(missing)


def read_index(path: str) -> pd.DataFrame:
    """The table mapping each sample back to its video, frame and box."""
    with h5py.File(path, "r") as f:
        names = np.asarray(video_list(f))
        box = f["box"][:]
        return pd.DataFrame({"video": names[f["video"][:]], "frame": f["frame"][:],
                             "x1": box[:, 0], "y1": box[:, 1], "x2": box[:, 2], "y2": box[:, 3]})
