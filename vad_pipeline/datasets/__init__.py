"""Dataset adapters: list videos, stream their frames, load frame- and pixel-level ground truth.

The adapter is chosen by ``dataset.layout`` (see :mod:`vad_pipeline.datasets.layouts`):
``frames`` (the papers' code), ``demo`` (generated), ``ucsd``, ``avenue``, ``shanghaitech``
(the official archives as they unpack) and ``videos`` (own footage).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from vad_pipeline import hashcache as H
from vad_pipeline.datasets.layouts import LAYOUTS, Frames, Layout
from vad_pipeline.datasets.video import (
    IMAGE_EXTS,
    VIDEO_EXTS,
    Video,
    frame_size,
    iter_frames,
    natural_key,
    part,
    read_frame,
    read_frames,
)
from vad_pipeline.io import VadError

SPLIT_DIRS = Frames.SPLIT_DIRS
SPLITS = ("train", "test")
HOLDOUT = "holdout"   # the training videos the validation holds out (datasets.holdout): no training video
__all__ = [
    "IMAGE_EXTS", "VIDEO_EXTS", "SPLIT_DIRS", "Video", "frame_size", "iter_frames", "read_frame", "read_frames",
    "layout_of", "root_of", "video_names", "video_source", "video_sources", "get_video", "frame_labels", "training_cameras",
    "pixel_masks", "has_pixel_masks", "gt_summary", "fingerprint", "fingerprints", "gt_fingerprint",
    "mask_fingerprint", "camera_fingerprints", "fingerprint_mode", "FINGERPRINTS",
]


def layout_of(cfg: dict) -> Layout:
    name = cfg["dataset"]["layout"]
    if name not in LAYOUTS:
        raise VadError(f"config: datasets.{cfg['name']}.layout {name!r} is unknown (have {sorted(LAYOUTS)})")
    return LAYOUTS[name]


def root_of(cfg: dict) -> Path:
    root = Path(cfg["dataset"]["root"])
    if not root.is_dir():
        raise VadError(
            f"{root}: dataset folder not found (dataset {cfg['name']!r}; "
            f"set datasets.{cfg['name']}.root in config.yaml)"
        )
    return root


def _check_split(split: str) -> None:
    if split not in (*SPLITS, HOLDOUT):
        raise VadError(f"unknown split {split!r} (train, test or holdout)")


def _layout_sources(cfg: dict, split: str) -> dict[str, Path]:
    """The layout's listing of a split; ``train`` without the held-out videos, and with the
    training part of a video a time block is held out of; ``holdout`` the held-out videos and
    time blocks (:mod:`vad_pipeline.datasets.holdout`)."""
    _check_split(split)
    layout = layout_of(cfg)
    if split == "test":
        return layout.sources(cfg, split)
    from vad_pipeline.datasets.cameras import cameras_of
    from vad_pipeline.datasets.holdout import blocks, held_out, part_name

    everything = layout.sources(cfg, "train")
    if not cfg["validation"]["videos"]:   # the dataset's validation section decides (jobs are given it)
        return everything if split == "train" else {}
    cameras = cameras_of(cfg, list(everything), "train")
    whole = set(held_out(cfg, cameras))
    cut = blocks(cfg, cameras, lambda n: _count(cfg, n, everything[n]))
    if split == "train":
        return {(part_name(n, 0, cut[n][0]) if n in cut else n): s for n, s in everything.items() if n not in whole}
    return {**{n: s for n, s in everything.items() if n in whole},
            **{part_name(n, *cut[n]): everything[n] for n in cut}}


def training_cameras(cfg: dict) -> dict[str, str]:
    """{video: camera} of every training video the layout lists, held out or not."""
    from vad_pipeline.datasets.cameras import cameras_of

    return cameras_of(cfg, list(layout_of(cfg).sources(cfg, "train")), "train")


_COUNTS: dict[tuple, int] = {}


def _count(cfg: dict, name: str, source: Path) -> int:
    """A training video's frame count, kept while its file or folder is unchanged (a split is
    listed many times while a workflow is planned)."""
    layout = layout_of(cfg)
    try:
        st = Path(source).stat()
    except OSError:   # the demo before it is generated: the layout knows
        return layout.n_frames(cfg, "train", name, source)
    key = (layout.name, str(source), st.st_mtime_ns, st.st_size, cfg.get("demo", {}).get("n_frames"))
    if key not in _COUNTS:
        _COUNTS[key] = layout.n_frames(cfg, "train", name, source)
    return _COUNTS[key]


def _sources(cfg: dict, split: str) -> dict[str, Path]:
    _check_split(split)
    if layout_of(cfg).name != "demo":
        root_of(cfg)
    return _layout_sources(cfg, split)


def video_names(cfg: dict, split: str) -> list[str]:
    """Names of the videos of one split in natural order (``Test2`` before ``Test10``: the order a
    ground-truth list follows); the demo's are known before it is generated."""
    return sorted(_sources(cfg, split), key=natural_key)


def video_sources(cfg: dict, split: str) -> dict[str, Path]:
    """{video name: the folder or file it is read from} of one split, in natural name order."""
    sources = _sources(cfg, split)
    return {n: sources[n] for n in sorted(sources, key=natural_key)}


def video_source(cfg: dict, split: str, name: str) -> Path:
    """The folder or file one video is read from (what a Snakemake rule takes as input)."""
    sources = _sources(cfg, split)
    if name not in sources:
        raise VadError(f"{layout_of(cfg).split_folder(Path(cfg['dataset']['root']), split) / name}: "
                       f"video not found")
    return sources[name]


def _files(folder: Path) -> list[os.DirEntry]:
    """A folder's files, hidden ones left out (as :func:`~vad_pipeline.datasets.video.listed`)."""
    with os.scandir(folder) as it:
        return [e for e in it if not e.name.startswith(".") and e.is_file()]


FINGERPRINTS = ("size", "sample", "content")  # dataset.fingerprint
Cache = str | os.PathLike | H.HashCache | None  # a hash cache: its file (H.cache_at), or None: every file read


def fingerprint_mode(cfg: dict) -> str:
    """``dataset.fingerprint``: how a video's files are tracked."""
    how = cfg["dataset"]["fingerprint"]
    if how not in FINGERPRINTS:
        raise VadError(f"config: datasets.{cfg['name']}.fingerprint {how!r} is unknown "
                       f"(have {', '.join(FINGERPRINTS)})")
    return how


def fingerprint(source: Path, how: str, cache: Cache = None) -> str:
    """What a video's results depend on (``how``: dataset.fingerprint). ``size``, cheaply (one
    ``stat`` per frame file, nothing opened): a frame folder's number of image files, their total
    size and a hash of their names; a container's file name and size. ``content`` adds a hash of
    each file's bytes, ``sample`` of its head, middle and tail blocks (:func:`~vad_pipeline.hashcache.hash_file`),
    taken from ``cache`` while a file's ``stat`` is unchanged (:mod:`vad_pipeline.hashcache`).
    Paths and times are left out, so a moved, copied or remounted video keeps it; a frame added,
    removed or renamed, or a re-encoded file changes it, and with ``content`` any edit of a
    file, at the same size too (with ``sample`` one that touches the sampled blocks)."""
    source = Path(source)
    hashes = H.cache_at(cache)
    try:
        if source.is_dir():
            frames = sorted((e for e in _files(source) if Path(e.name).suffix.lower() in IMAGE_EXTS),
                            key=lambda e: e.name)
            names = hashlib.sha256("\n".join(e.name for e in frames).encode()).hexdigest()[:16]
            stats = [e.stat() for e in frames]
            out = f"{len(frames)} frames, {sum(st.st_size for st in stats)} bytes, names {names}"
            if how != "size":
                ids = "\n".join(hashes.digest(e.path, how, st) for e, st in zip(frames, stats))
                out += f", {how} {hashlib.sha256(ids.encode()).hexdigest()[:16]}"
            return out
        st = source.stat()
        out = f"{source.name}, {st.st_size} bytes"
        return out if how == "size" else f"{out}, {how} {hashes.digest(source, how, st)}"
    except OSError as exc:
        raise VadError(f"{source}: video not readable ({exc.strerror})") from exc


def fingerprints(cfg: dict, split: str, names: list[str] | None = None, cache: Cache = None) -> dict[str, str | None]:
    """{video name: :func:`fingerprint`} of a split (or of its videos ``names``; the folder is
    listed once), as ``dataset.fingerprint`` says: what the workflow tracks, so that adding,
    removing, renaming or replacing a video reruns what depends on it (a part of a file, a time
    block, has its frames in its name). The generated demo's are None (it is an output of the
    workflow, tracked as such)."""
    if layout_of(cfg).name == "demo":
        return dict.fromkeys(names if names is not None else video_names(cfg, split))
    how = fingerprint_mode(cfg)
    sources = video_sources(cfg, split)
    for n in names or []:
        if n not in sources:
            video_source(cfg, split, n)   # raises, naming the folder
    hashes = H.cache_at(cache)
    return {n: fingerprint(sources[n], how, hashes) for n in (names if names is not None else sources)}


def _tree_id(files: list[Path], base: Path, hashes: H.HashCache) -> str:
    """A hash of ``files``' names (relative to ``base``) and content."""
    ids = "\n".join(f"{p.relative_to(base).as_posix()} {hashes.digest(p)}" for p in files)
    return hashlib.sha256(ids.encode()).hexdigest()[:16]


def gt_fingerprint(cfg: dict, cache: Cache = None) -> str | None:
    """What the frame ground truth is, by content at any size (whatever ``dataset.fingerprint``):
    a hash of the ground-truth file (a folder: of each of its files' names and content), taken
    from ``cache`` while its ``stat`` is unchanged, independent of where the dataset lives. None
    where the dataset has none (``labelled: false``, no ``gt``) or it is the generated demo's."""
    if not cfg["dataset"]["labelled"] or layout_of(cfg).name == "demo":
        return None
    path = layout_of(cfg).gt_path(cfg)
    if path is None or not path.exists():
        return None  # the labels stage names what is missing
    hashes = H.cache_at(cache)
    try:
        if path.is_file():
            return f"{path.name} {hashes.digest(path)}"
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        return f"{path.name}/: {len(files)} files, {_tree_id(files, path, hashes)}"
    except OSError as exc:
        raise VadError(f"{path}: ground truth not readable ({exc.strerror})") from exc


def mask_fingerprint(cfg: dict, cache: Cache = None) -> str | None:
    """What the pixel masks are, by content at any size (their files' paths in the root and
    content, as :func:`gt_fingerprint`): a mask fixed reruns what reads them. None where the
    dataset has none, is not labelled, or is the generated demo (make_demo's output)."""
    layout = layout_of(cfg)
    if not cfg["dataset"]["labelled"] or layout.name == "demo":
        return None
    files = layout.mask_files(cfg)
    if not files:
        return None
    try:
        return f"{len(files)} mask files, {_tree_id(files, Path(cfg['dataset']['root']), H.cache_at(cache))}"
    except OSError as exc:
        raise VadError(f"{exc.filename}: pixel mask not readable ({exc.strerror})") from exc


def camera_fingerprints(cfg: dict, split: str) -> dict[str, list[str]] | None:
    """{video: the cameras ``cameras.csv`` lists it with} of a split's videos where the camera
    mode resolves to ``file``, else None: what the cameras rule of that split reads of the file,
    so that a test video moved to another camera reruns the test side only. (A missing file, or a
    video listed twice or not at all, is for the cameras stage to report.)"""
    from vad_pipeline.datasets import cameras
    from vad_pipeline.datasets.holdout import source_name
    from vad_pipeline.io import read_csv

    if cameras.mode(cfg) != "file":
        return None
    path = Path(cfg["dataset"]["root"]) / cameras.CAMERAS_CSV
    if not path.is_file():
        return dict.fromkeys(video_names(cfg, split), [])
    table = read_csv(path, ["video", "camera"]).astype({"video": str, "camera": str})
    named: dict[str, set[str]] = {}
    for video, camera in zip(table["video"], table["camera"]):
        named.setdefault(video, set()).add(camera)
    # a training part (a time block's video) is listed under its video's name
    base = source_name if split != "test" else (lambda n: n)
    return {n: sorted(named.get(base(n), ())) for n in video_names(cfg, split)}


def get_video(cfg: dict, split: str, name: str) -> Video:
    _check_split(split)
    layout = layout_of(cfg)
    folder = "test" if split == "test" else "train"   # a held-out video is in the training folder
    from vad_pipeline.datasets.holdout import split_part

    listing = layout.sources(cfg, folder) if layout.name != "demo" else {}
    # a part of a training video (a held-out time block, the frames before it): its name says which
    base, frames = (name, None) if name in listing or split == "test" else split_part(name)
    source = listing.get(base)
    if source is None:  # the demo, or a name the listing does not have: report the folder
        source = layout.split_folder(Path(cfg["dataset"]["root"]), folder) / base
        if not source.exists():
            raise VadError(f"{source}: video folder not found")
    video = layout.open(cfg, folder, base, source)
    if frames:
        video = replace(part(video, *frames), name=name)
    expected = cfg["dataset"].get("frame_size")
    if expected and tuple(frame_size(video)) != tuple(expected):
        raise VadError(f"{video.source}: frames are {frame_size(video)[0]}x{frame_size(video)[1]} (height x width) "
                       f"but datasets.{cfg['name']}.frame_size is {expected[0]}x{expected[1]}")
    return video


def frame_labels(cfg: dict, videos: list[Video]) -> dict[str, np.ndarray]:
    """Per test video a bool array, True on abnormal frames, checked against the frame counts;
    empty when the dataset has no ground truth (``labelled: false``, or own footage without
    ``labels.csv``)."""
    ds = cfg["dataset"]
    if not ds["labelled"]:
        return {}
    layout = layout_of(cfg)
    if layout.gt_optional:
        return layout.labels(cfg, videos) or {}
    return layout.labels(cfg, videos)


def pixel_masks(cfg: dict, video: Video | str) -> np.ndarray | None:
    """Boolean (T, H, W) masks at frame size of a test video where the dataset has them, else None."""
    if isinstance(video, str):
        video = get_video(cfg, "test", video)
    if not cfg["dataset"]["labelled"]:
        return None
    return layout_of(cfg).masks(cfg, video)


def has_pixel_masks(cfg: dict) -> bool:
    """Whether the dataset ships pixel masks, from its layout and file tree alone (nothing is read;
    what the workflow asks to decide if localisation metrics can be computed)."""
    if not cfg["dataset"]["labelled"]:
        return False
    return layout_of(cfg).has_masks(cfg)


def gt_summary(cfg: dict, videos: list[Video], labels: dict[str, np.ndarray]) -> dict:
    """What was read, to check a dataset against its documentation at a glance."""
    per_video = {}
    by_position = bool(labels) and layout_of(cfg).gt_by_position
    for i, v in enumerate(videos):
        masks = pixel_masks(cfg, v) if labels else None
        lab = labels.get(v.name)
        h, w = frame_size(v)
        per_video[v.name] = {
            "frames": v.n_frames,
            "abnormal_frames": int(lab.sum()) if lab is not None else None,
            "frames_with_pixel_masks": int(len(masks)) if masks is not None else 0,
            "frames_with_abnormal_pixels": int(masks.reshape(len(masks), -1).any(1).sum()) if masks is not None else 0,
            "height": int(h), "width": int(w), "fps": v.fps,
            "source": str(v.source),
        }
        if by_position:  # which entry of the list went to this video, to check at a glance
            per_video[v.name]["gt_entry"] = i + 1
    total = {k: sum((p[k] or 0) for p in per_video.values())
             for k in ("frames", "abnormal_frames", "frames_with_pixel_masks", "frames_with_abnormal_pixels")}
    return {
        "dataset": cfg["name"], "layout": cfg["dataset"]["layout"], "root": str(cfg["dataset"]["root"]),
        "labelled": bool(labels), "videos": len(videos), **total,
        "gt_file": str(layout_of(cfg).gt_path(cfg)) if labels else None,
        "gt_matching": ("entry i of the ground-truth list -> i-th test video in natural name order "
                        "(per_video.*.gt_entry)") if by_position else ("by video name" if labels else None),
        "abnormal_frames": total["abnormal_frames"] if labels else None,
        "per_video": per_video,
    }
