"""One adapter per on-disk layout, selected by ``dataset.layout``.

An adapter knows where a split's videos are, how to open one, and where its ground truth is.
Frame labels come back as one bool array per test video; pixel masks as a (T, H, W) bool array.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from vad_pipeline.datasets import groundtruth as G
from vad_pipeline.datasets.video import (
    IMAGE_EXTS,
    VIDEO_EXTS,
    Video,
    frame_size,
    image_folder,
    listed,
    read_frame,
    video_file,
)
from vad_pipeline.io import VadError


def _entries(folder: Path, what: str) -> list[Path]:
    if not folder.is_dir():
        raise VadError(f"{folder}: folder of {what} not found")
    return listed(folder)


def _fit_masks(masks: np.ndarray, video: Video, path: Path) -> np.ndarray:
    """Check a (T, H, W) mask stack against the video; resize when only the resolution differs."""
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise VadError(f"{path}: pixel masks of video {video.name} have shape {masks.shape}, expected (T, H, W)")
    G.check_length(masks, video.n_frames, path, video.name)
    h, w = frame_size(video)
    if masks.shape[1:] != (h, w):
        mh, mw = masks.shape[1:]
        if abs(mh / mw - h / w) > 0.02 * h / w:   # another shape, not another resolution: no resize can mend it
            hint = " (transposed?)" if (mh, mw) == (w, h) else ""
            raise VadError(f"{path}: pixel masks of video {video.name} are {mh}x{mw} (height x width), its frames "
                           f"{h}x{w}{hint}: the masks must have the frames' aspect ratio")
        masks = np.stack([cv2.resize(m.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) for m in masks])
    return masks.astype(bool)


def _matching(folder: Path, *endings: str) -> list[Path]:
    """The files of ``folder`` whose name ends with one of ``endings`` (any case), in natural
    order; none where the folder is missing."""
    if not folder.is_dir():
        return []
    return [p for p in listed(folder) if p.name.lower().endswith(endings) and p.is_file()]


def _video_files(folder: Path, split: str) -> dict[str, Path]:
    out = {p.stem: p for p in _entries(folder, f"{split} videos") if p.suffix.lower() in VIDEO_EXTS}
    if not out:
        raise VadError(f"{folder}: no video files ({'/'.join(VIDEO_EXTS)}) in it")
    return out


def videos_in(folder: Path, what: str) -> dict[str, Path]:
    """{name: path} of the video files and frame folders in ``folder`` (the ``videos`` layout's split
    folders, a batch of new footage)."""
    out: dict[str, Path] = {}
    for p in _entries(folder, what):
        if p.is_dir() or p.suffix.lower() in VIDEO_EXTS:
            name = p.name if p.is_dir() else p.stem
            if name in out:
                raise VadError(f"{folder}: two videos named {name!r} ({out[name].name}, {p.name})")
            out[name] = p
    if not out:
        raise VadError(f"{folder}: no video files ({'/'.join(VIDEO_EXTS)}) or frame folders in it")
    return out


class Layout:
    """Base adapter. ``sources`` maps video name -> folder or file; ``gt`` is the default path of
    the ground truth inside the root (a file or a folder, depending on the layout)."""

    name = ""
    gt: str | None = None
    gt_optional = False  # True: a missing ground truth means an unlabelled dataset, not an error
    gt_by_position = False  # True: the ground truth is a list, its i-th entry is the i-th test video

    def split_folder(self, root: Path, split: str) -> Path:
        raise NotImplementedError

    def sources(self, cfg: dict, split: str) -> dict[str, Path]:
        folder = self.split_folder(Path(cfg["dataset"]["root"]), split)
        out = {p.name: p for p in _entries(folder, f"{split} videos") if p.is_dir()}
        if not out:
            raise VadError(f"{folder}: no video folders in it")
        return out

    def open(self, cfg: dict, split: str, name: str, source: Path) -> Video:
        if source.is_file():
            return video_file(name, split, source, cfg["dataset"].get("fps"))
        return image_folder(name, split, source, cfg["dataset"].get("fps"))

    def n_frames(self, cfg: dict, split: str, name: str, source: Path) -> int:
        """A video's frame count (its listing, or its header)."""
        return self.open(cfg, split, name, source).n_frames

    def gt_path(self, cfg: dict) -> Path | None:
        rel = cfg["dataset"].get("gt") or self.gt
        return Path(cfg["dataset"]["root"]) / rel if rel else None

    def labels(self, cfg: dict, videos: list[Video]) -> dict[str, np.ndarray] | None:
        raise NotImplementedError

    def masks(self, cfg: dict, video: Video) -> np.ndarray | None:
        return None

    def has_masks(self, cfg: dict) -> bool:
        """Whether pixel masks exist, from the file tree alone (no mask is read)."""
        return False

    def mask_files(self, cfg: dict) -> list[Path]:
        """The files :meth:`masks` reads, of every test video (what tracks the masks' content)."""
        return []


class Frames(Layout):
    """``training/frames/<video>/*.jpg``, ``testing/frames/<video>/*.jpg``; frame ground truth in
    ``<gt>``: the papers' ``.mat`` (key ``gt``, 1-based [first; last] ranges) or a JSON list of
    per-frame labels per video (a pickled one with ``allow_pickle``)."""

    name = "frames"
    gt_by_position = True
    SPLIT_DIRS = {"train": "training", "test": "testing"}

    def split_folder(self, root: Path, split: str) -> Path:
        return root / self.SPLIT_DIRS[split] / "frames"

    def labels(self, cfg, videos):
        path = self.gt_path(cfg)
        if path is None:
            raise VadError(f"config: datasets.{cfg['name']}.gt is not set (or set labelled: false)")
        if path.suffix.lower() == ".mat":
            ranges = G.ranges_from_mat(path, len(videos))
            return {v.name: G.labels_from_ranges(r, v.n_frames, path, v.name) for v, r in zip(videos, ranges)}
        lists = G.per_frame_lists(path, cfg["dataset"]["allow_pickle"])
        if len(lists) != len(videos):
            raise VadError(f"{path}: {len(lists)} entries but there are {len(videos)} test videos")
        return {v.name: G.check_length(lab, v.n_frames, path, v.name) for v, lab in zip(videos, lists)}

    def has_masks(self, cfg):
        return (Path(cfg["dataset"]["root"]) / "testing" / "pixel_masks").is_dir()

    def mask_files(self, cfg):
        return _matching(Path(cfg["dataset"]["root"]) / "testing" / "pixel_masks", ".npz")

    def masks(self, cfg, video):
        path = Path(cfg["dataset"]["root"]) / "testing" / "pixel_masks" / f"{video.name}.npz"
        if not path.is_file():
            return None
        with np.load(path) as f:
            masks = np.unpackbits(f["bits"], axis=-1, count=int(f["width"])).astype(bool)
        return _fit_masks(masks, video, path)


class Demo(Frames):
    """The frames layout written by :mod:`vad_pipeline.demo`; names are known before it exists."""

    name = "demo"

    def has_masks(self, cfg):
        return True  # the generator writes them (the folder may not exist yet)

    def n_frames(self, cfg, split, name, source):
        return int(cfg["demo"]["n_frames"])   # known before the demo is generated

    def sources(self, cfg, split):
        n = cfg["demo"]["n_train" if split == "train" else "n_test"]
        folder = self.split_folder(Path(cfg["dataset"]["root"]), split)
        return {f"{i + 1:02d}": folder / f"{i + 1:02d}" for i in range(n)}


class UCSD(Layout):
    """The official UCSD Ped1/Ped2 archive: ``Train/TrainNNN/NNN.tif``, ``Test/TestNNN/NNN.tif``,
    ``Test/TestNNN_gt/*.bmp`` pixel masks where present, and ``UCSDpedN.m`` (read as text)."""

    name = "ucsd"
    gt_by_position = True
    PATTERN = {"train": re.compile(r"Train\d+$"), "test": re.compile(r"Test\d+$")}

    def split_folder(self, root, split):
        return root / {"train": "Train", "test": "Test"}[split]

    def sources(self, cfg, split):
        out = {k: v for k, v in super().sources(cfg, split).items() if self.PATTERN[split].match(k)}
        if not out:
            raise VadError(f"{self.split_folder(Path(cfg['dataset']['root']), split)}: no {split.title()}NNN folders in it")
        return out

    def labels(self, cfg, videos):
        path = self.gt_path(cfg)
        if path is None:
            raise VadError(f"config: datasets.{cfg['name']}.gt is not set (e.g. Test/UCSDped2.m)")
        ranges = G.ranges_from_ucsd_m(path) if path.suffix == ".m" else G.ranges_from_mat(path, len(videos))
        if len(ranges) != len(videos):
            raise VadError(f"{path}: {len(ranges)} test videos listed but {len(videos)} found")
        return {v.name: G.labels_from_ranges(r, v.n_frames, path, v.name) for v, r in zip(videos, ranges)}

    def has_masks(self, cfg):
        folder = self.split_folder(Path(cfg["dataset"]["root"]), "test")
        return folder.is_dir() and any(p.is_dir() for p in folder.glob("Test*_gt"))

    def mask_files(self, cfg):
        folder = self.split_folder(Path(cfg["dataset"]["root"]), "test")
        gts = [p for p in listed(folder) if p.is_dir() and p.name.endswith("_gt")] if folder.is_dir() else []
        return [f for g in gts for f in _matching(g, *IMAGE_EXTS)]

    def masks(self, cfg, video):
        folder = self.split_folder(Path(cfg["dataset"]["root"]), "test") / f"{video.name}_gt"
        if not folder.is_dir():
            return None
        files = [p for p in listed(folder) if p.suffix.lower() in IMAGE_EXTS]
        return _fit_masks(np.stack([read_frame(p, gray=True) > 0 for p in files]), video, folder)


class Avenue(Layout):
    """Official CUHK Avenue: ``training_videos/NN.avi``, ``testing_videos/NN.avi`` and
    ``ground_truth_demo/testing_label_mask/N_label.mat`` (``volLabel``: one mask per frame)."""

    name = "avenue"
    gt = "ground_truth_demo/testing_label_mask"

    def split_folder(self, root, split):
        return root / {"train": "training_videos", "test": "testing_videos"}[split]

    def sources(self, cfg, split):
        return _video_files(self.split_folder(Path(cfg["dataset"]["root"]), split), split)

    def _mat(self, cfg, video: Video) -> Path:
        stem = str(int(video.name)) if video.name.isdigit() else video.name
        return self.gt_path(cfg) / f"{stem}_label.mat"

    def labels(self, cfg, videos):
        out = {}
        for v in videos:
            path = self._mat(cfg, v)
            out[v.name] = G.check_length(np.array([m.any() for m in G.vol_label(path)]), v.n_frames, path, v.name)
        return out

    def has_masks(self, cfg):
        return self.gt_path(cfg).is_dir()

    def mask_files(self, cfg):
        return _matching(self.gt_path(cfg), "_label.mat")

    def masks(self, cfg, video):
        path = self._mat(cfg, video)
        return _fit_masks(np.stack(G.vol_label(path)), video, path)


class ShanghaiTech(Layout):
    """Official ShanghaiTech Campus: ``training/videos/SS_VVV.avi`` (decoded as a stream),
    ``testing/frames/SS_VVVV/NNN.jpg``, ``testing/test_frame_mask/SS_VVVV.npy`` and
    ``testing/test_pixel_mask/SS_VVVV.npy``."""

    name = "shanghaitech"
    gt = "testing/test_frame_mask"

    def split_folder(self, root, split):
        return root / {"train": "training/videos", "test": "testing/frames"}[split]

    def sources(self, cfg, split):
        if split == "test":
            return super().sources(cfg, split)
        return _video_files(self.split_folder(Path(cfg["dataset"]["root"]), split), split)

    def labels(self, cfg, videos):
        out = {}
        for v in videos:
            path = self.gt_path(cfg) / f"{v.name}.npy"
            if not path.is_file():
                raise VadError(f"{path}: ground truth of test video {v.name} not found")
            out[v.name] = G.check_length(np.asarray(G.masks_from_npy(path)).ravel() > 0, v.n_frames, path, v.name)
        return out

    def has_masks(self, cfg):
        return (Path(cfg["dataset"]["root"]) / "testing" / "test_pixel_mask").is_dir()

    def mask_files(self, cfg):
        return _matching(Path(cfg["dataset"]["root"]) / "testing" / "test_pixel_mask", ".npy")

    def masks(self, cfg, video):
        path = Path(cfg["dataset"]["root"]) / "testing" / "test_pixel_mask" / f"{video.name}.npy"
        return _fit_masks(G.masks_from_npy(path) > 0, video, path) if path.is_file() else None


class Videos(Layout):
    """Own footage: ``train/`` and ``test/`` hold video files (anything OpenCV decodes) or frame
    folders; optional ``labels.csv`` (``video,start_frame,end_frame``, 0-based inclusive)."""

    name = "videos"
    gt = "labels.csv"
    gt_optional = True

    def split_folder(self, root, split):
        return root / split

    def sources(self, cfg, split):
        return videos_in(self.split_folder(Path(cfg["dataset"]["root"]), split), f"{split} videos")

    def labels(self, cfg, videos):
        path = self.gt_path(cfg)
        if not path.is_file():
            if cfg["dataset"].get("gt"):  # a file the user named must be there
                raise VadError(f"{path}: ground-truth file not found (datasets.{cfg['name']}.gt); "
                               "remove the setting for footage without labels")
            return None
        return G.labels_from_csv(path, {v.name: v.n_frames for v in videos})


class Batch(Videos):
    """A batch of new footage a trained dataset is applied to (:mod:`vad_pipeline.apply`): the root
    itself holds the video files or frame folders, every one a test video; optional ``labels.csv``
    as :class:`Videos`'. Not a layout a dataset is configured with."""

    name = "batch"

    def split_folder(self, root, split):
        return root


LAYOUTS: dict[str, Layout] = {a.name: a for a in (Frames(), Demo(), UCSD(), Avenue(), ShanghaiTech(), Videos(),
                                                   Batch())}
