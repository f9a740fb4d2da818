"""Ground-truth readers: every format the official archives and the papers' code ship.

Each reader returns plain arrays and names the file when its content is not what we expect.
Nothing here executes or unpickles a file unless the user allowed it (``allow_pickle``).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np

from vad_pipeline.io import VadError

log = logging.getLogger(__name__)


def load_mat(path: Path) -> dict:
    """Variables of a MATLAB file (v5 through scipy, v7.3 through h5py)."""
    import scipy.io

    if not path.is_file():
        raise VadError(f"{path}: ground-truth file not found")
    try:
        return scipy.io.loadmat(str(path))
    except NotImplementedError:  # v7.3 files are HDF5
        import h5py

        with h5py.File(path, "r") as f:
            return {k: np.asarray(f[k]).T for k in f if isinstance(f[k], h5py.Dataset)}
    except Exception as exc:
        raise VadError(f"{path}: not a readable .mat file ({exc})") from exc


def ranges_from_mat(path: Path, n_videos: int) -> list[np.ndarray]:
    """The ``gt`` variable of the papers' ``<name>.mat``: per video a 2xK [first; last] array."""
    mat = load_mat(path)
    if "gt" not in mat:
        raise VadError(f"{path}: no variable 'gt' in it")
    entries = list(np.asarray(mat["gt"]).ravel())
    if entries and not isinstance(entries[0], np.ndarray):
        entries = [np.asarray(mat["gt"])]  # a single video stored as a plain 2xK array
    if len(entries) != n_videos:
        raise VadError(f"{path}: 'gt' has {len(entries)} entries but there are {n_videos} test videos")
    out = []
    for i, e in enumerate(entries):
        e = np.asarray(e, dtype=np.int64)
        if e.size == 0:
            e = e.reshape(2, 0)
        if e.ndim != 2 or e.shape[0] != 2:
            raise VadError(f"{path}: gt entry {i + 1} has shape {e.shape}, expected [first; last] rows")
        out.append(e)
    return out


_M_LINE = re.compile(r"gt_frame\s*=\s*\[([^\]]*)\]")


def ranges_from_ucsd_m(path: Path) -> list[np.ndarray]:
    """The official ``UCSDped1.m`` / ``UCSDped2.m``, parsed as text (never executed).

    Each ``TestVideoFile{end+1}.gt_frame = [a:b, c:d];`` line is one test video.
    """
    if not path.is_file():
        raise VadError(f"{path}: ground-truth file not found")
    out = []
    for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        line = line.split("%", 1)[0]
        if "gt_frame" not in line:
            continue
        m = _M_LINE.search(line)
        if not m:
            raise VadError(f"{path}:{lineno}: cannot parse {line.strip()!r} (expected gt_frame = [a:b, ...])")
        pairs = []
        for tok in re.split(r"[,\s]+", m.group(1).strip()):
            if not tok:
                continue
            parts = tok.split(":")
            if len(parts) > 2 or not all(p.strip().isdigit() for p in parts):
                raise VadError(f"{path}:{lineno}: cannot parse {tok!r} in {line.strip()!r}")
            pairs.append((int(parts[0]), int(parts[-1])))
        out.append(np.asarray(pairs, dtype=np.int64).reshape(-1, 2).T)
    if not out:
        raise VadError(f"{path}: no 'gt_frame = [...]' line in it")
    return out


def labels_from_ranges(ranges: np.ndarray, n_frames: int, path: Path, video: str) -> np.ndarray:
    """2xK 1-based inclusive [first; last] ranges -> bool per frame, checked against ``n_frames``."""
    lab = np.zeros(n_frames, dtype=bool)
    for first, last in np.asarray(ranges).reshape(2, -1).T:
        if first < 1 or last < first or last > n_frames:
            raise VadError(f"{path}: abnormal range [{first}, {last}] of test video {video} does not "
                           f"fit its {n_frames} frames")
        lab[first - 1 : last] = True
    return lab


def check_length(labels: np.ndarray, n_frames: int, path: Path, video: str) -> np.ndarray:
    if len(labels) != n_frames:
        raise VadError(f"{path}: ground truth of test video {video} has {len(labels)} frames "
                       f"but the video has {n_frames}")
    return labels


def per_frame_lists(path: Path, allow_pickle: bool) -> list[np.ndarray]:
    """A list of per-frame 0/1 label lists (one per test video): JSON, or the pickled
    ``gt_label.json`` of older code when ``allow_pickle`` is set."""
    if not path.is_file():
        raise VadError(f"{path}: ground-truth file not found")
    raw = path.read_bytes()
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        if not allow_pickle:
            raise VadError(f"{path}: not JSON; if it is the pickled gt_label.json of older code and you "
                           "trust its source, set allow_pickle: true for this dataset") from None
        import pickle

        log.warning("%s: unpickling ground truth (allow_pickle: true); only do this for files you trust", path)
        try:
            data = pickle.loads(raw)  # noqa: S301 - explicitly allowed by the user
        except Exception as exc:
            raise VadError(f"{path}: neither JSON nor a readable pickle ({exc})") from exc
    try:
        return [np.asarray(v, dtype=np.int64).ravel() > 0 for v in data]
    except (TypeError, ValueError) as exc:
        raise VadError(f"{path}: expected one list of per-frame 0/1 labels per test video ({exc})") from exc


def labels_from_csv(path: Path, videos: dict[str, int]) -> dict[str, np.ndarray]:
    """``video,start_frame,end_frame`` rows (0-based, inclusive, several per video allowed);
    videos without a row are normal throughout."""
    import pandas as pd

    try:
        df = pd.read_csv(path, dtype={"video": str})
    except Exception as exc:
        raise VadError(f"{path}: not a readable CSV ({exc})") from exc
    missing = [c for c in ("video", "start_frame", "end_frame") if c not in df.columns]
    if missing:
        raise VadError(f"{path}: missing columns {missing} (expected video,start_frame,end_frame)")
    labels = {name: np.zeros(n, bool) for name, n in videos.items()}
    for i, row in enumerate(df.itertuples(index=False), start=2):  # line 1 is the header
        if row.video not in labels:
            raise VadError(f"{path}:{i}: video {row.video!r} is not a test video (have {sorted(labels)})")
        try:
            a, b = int(row.start_frame), int(row.end_frame)
        except (TypeError, ValueError):
            raise VadError(f"{path}:{i}: start_frame/end_frame must be integers") from None
        n = len(labels[row.video])
        if a < 0 or b < a or b >= n:
            raise VadError(f"{path}:{i}: range [{a}, {b}] of video {row.video} does not fit its "
                           f"{n} frames (0-based, inclusive)")
        labels[row.video][a : b + 1] = True
    return labels


def masks_from_npy(path: Path) -> np.ndarray:
    """A (T, H, W) pixel mask or a (T,) frame mask stored as .npy (no pickle)."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:
        raise VadError(f"{path}: not a readable .npy array ({exc})") from exc


def vol_label(path: Path) -> list[np.ndarray]:
    """Avenue's ``N_label.mat``: ``volLabel``, one HxW mask per frame."""
    mat = load_mat(path)
    if "volLabel" not in mat:
        raise VadError(f"{path}: no variable 'volLabel' in it")
    return [np.asarray(m) > 0 for m in np.asarray(mat["volLabel"]).ravel()]
