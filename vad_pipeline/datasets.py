"""Dataset adapters: list videos, stream their frames, load frame-level ground truth.

The adapter is chosen by ``dataset.layout`` in the config. ``frames`` is the layout of the
papers' code (``training/frames/<video>/*.jpg``, ``testing/frames/<video>/*.jpg`` and a
``.mat`` file whose key ``gt`` holds, per test video, [first; last] 1-based abnormal ranges);
``demo`` is the same layout written by :mod:`vad_pipeline.demo`, plus pixel masks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vad_pipeline.io import VadError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
SPLIT_DIRS = {"train": "training", "test": "testing"}


@dataclass(frozen=True)
class Video:
    name: str
    split: str
    frames: tuple[Path, ...]

    @property
    def n_frames(self) -> int:
        return len(self.frames)


def root_of(cfg: dict) -> Path:
    root = Path(cfg["dataset"]["root"])
    if not root.is_dir():
        raise VadError(
            f"{root}: dataset folder not found (dataset {cfg['name']!r}; "
            f"set datasets.{cfg['name']}.root in config.yaml)"
        )
    return root


def split_dir(cfg: dict, split: str) -> Path:
    if split not in SPLIT_DIRS:
        raise VadError(f"unknown split {split!r} (train or test)")
    return Path(cfg["dataset"]["root"]) / SPLIT_DIRS[split] / "frames"


def video_names(cfg: dict, split: str) -> list[str]:
    """Names of the videos of one split, sorted; the demo's are known before it is generated."""
    if cfg["dataset"]["layout"] == "demo":
        n = cfg["demo"]["n_train" if split == "train" else "n_test"]
        return [f"{i + 1:02d}" for i in range(n)]
    root_of(cfg)
    d = split_dir(cfg, split)
    if not d.is_dir():
        raise VadError(f"{d}: folder of {split} videos not found")
    names = sorted(p.name for p in d.iterdir() if p.is_dir())
    if not names:
        raise VadError(f"{d}: no video folders in it")
    return names


def get_video(cfg: dict, split: str, name: str) -> Video:
    d = split_dir(cfg, split) / name
    if not d.is_dir():
        raise VadError(f"{d}: video folder not found")
    frames = tuple(sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_EXTS))
    if not frames:
        raise VadError(f"{d}: empty video (no {'/'.join(IMAGE_EXTS)} frames)")
    return Video(name=name, split=split, frames=frames)


def read_frame(path: Path, gray: bool = False) -> np.ndarray:
    """One frame as uint8, HxWx3 (BGR) or HxW when ``gray``."""
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    if img is None:
        raise VadError(f"{path}: unreadable image")
    return img


def iter_frames(video: Video, gray: bool = False) -> Iterator[np.ndarray]:
    shape = None
    for path in video.frames:
        img = read_frame(path, gray)
        if shape is None:
            shape = img.shape
        elif img.shape != shape:
            raise VadError(f"{path}: frame size {img.shape[:2]} differs from the video's {shape[:2]}")
        yield img


def _ranges_from_mat(path: Path, n_videos: int) -> list[np.ndarray]:
    import scipy.io

    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as exc:
        raise VadError(f"{path}: not a readable .mat file ({exc})") from exc
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


def frame_labels(cfg: dict, videos: list[Video]) -> dict[str, np.ndarray]:
    """Per test video a bool array, True on abnormal frames; checked against the frame counts."""
    ds = cfg["dataset"]
    if not ds.get("labelled", True):
        return {}
    if "gt" not in ds:
        raise VadError(f"config: datasets.{cfg['name']}.gt is not set (or set labelled: false)")
    path = Path(ds["root"]) / ds["gt"]
    if not path.is_file():
        raise VadError(f"{path}: ground-truth file not found")
    labels = {}
    for video, ranges in zip(videos, _ranges_from_mat(path, len(videos))):
        lab = np.zeros(video.n_frames, dtype=bool)
        for first, last in ranges.T:
            if first < 1 or last < first or last > video.n_frames:
                raise VadError(
                    f"{path}: abnormal range [{first}, {last}] of test video {video.name} does not "
                    f"fit its {video.n_frames} frames"
                )
            lab[first - 1 : last] = True
        labels[video.name] = lab
    return labels


def pixel_masks(cfg: dict, name: str) -> np.ndarray | None:
    """Boolean (T, H, W) masks of a test video where the dataset has them (demo), else None."""
    path = Path(cfg["dataset"]["root"]) / "testing" / "pixel_masks" / f"{name}.npz"
    if not path.is_file():
        return None
    with np.load(path) as f:
        return np.unpackbits(f["bits"], axis=-1, count=int(f["width"])).astype(bool)
