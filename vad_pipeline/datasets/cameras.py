"""Which camera each video comes from (``cameras.assign``): scores are normalised, and the
weight-free references fitted, camera by camera (the rest of the ``cameras`` section), so that one
camera's normal frames do not outscore another's anomalies.

- ``prefix``: the video name up to its first ``_`` (ShanghaiTech: training ``01_001`` and test
  ``01_0014`` are camera ``01``);
- ``file``: a CSV ``cameras.csv`` in the dataset's root, columns ``video,camera`` (own footage);
- ``one``: a single camera (:data:`ONE`);
- ``auto`` (the default): ``prefix`` for the ``shanghaitech`` layout, ``file`` where the root holds
  a ``cameras.csv``, else ``one``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from vad_pipeline.datasets.holdout import source_name
from vad_pipeline.io import VadError, read_csv

log = logging.getLogger(__name__)

ONE = "all"          # the camera of a single-camera dataset
CAMERAS_CSV = "cameras.csv"
COLUMNS = ["split", "video", "camera", "frames"]


def mode(cfg: dict) -> str:
    """The dataset's ``cameras.assign`` with ``auto`` resolved."""
    m = cfg["cameras"]["assign"]
    if m != "auto":
        return m
    if cfg["dataset"]["layout"] == "shanghaitech":
        return "prefix"
    if (Path(cfg["dataset"]["root"]) / CAMERAS_CSV).is_file():
        return "file"
    return "one"


def read_list(path: Path) -> dict[str, str]:
    """{video: camera} of a ``cameras.csv`` (a video listed with two cameras is an error)."""
    if not path.is_file():
        raise VadError(f"{path}: camera list not found (cameras.assign: file wants a CSV video,camera here)")
    df = read_csv(path, ["video", "camera"]).astype({"video": str, "camera": str}).drop_duplicates(["video", "camera"])
    twice = df["video"][df["video"].duplicated()]
    if len(twice):   # a name in both splits is one video name: one camera
        raise VadError(f"{path}: video {twice.iloc[0]} is listed with two cameras")
    return dict(zip(df["video"], df["camera"]))


def video_cameras(cfg: dict, split: str) -> dict[str, str]:
    """{video: camera} of a split from the videos' names alone (no frame counts, no video opened):
    what the workflow knows when it plans the jobs of the weight-free terms, one per camera."""
    from vad_pipeline.datasets import video_names

    return cameras_of(cfg, video_names(cfg, split), split)


def cameras_of(cfg: dict, names: list[str], split: str) -> dict[str, str]:
    """{video: camera} of these videos of a split (:func:`video_cameras`), from their names."""
    m = mode(cfg)
    listed = read_list(Path(cfg["dataset"]["root"]) / CAMERAS_CSV) if m == "file" else {}
    return {n: _camera(cfg, m, listed, n, split) for n in names}


def _camera(cfg: dict, m: str, listed: dict[str, str], name: str, split: str) -> str:
    """The camera of one video in mode ``m`` (``listed``: cameras.csv's in mode file); a part of a
    training video (a held-out time block, the frames before it) is its video's camera."""
    if split != "test":
        name = source_name(name)
    if m == "prefix":
        return name.split("_", 1)[0]
    if m == "file":
        if name not in listed:
            raise VadError(f"{Path(cfg['dataset']['root']) / CAMERAS_CSV}: no camera for {split} video {name}")
        return listed[name]
    return ONE


def camera_names(cfg: dict, split: str) -> list[str]:
    """The cameras of a split's videos (:func:`video_cameras`), sorted."""
    return sorted(set(video_cameras(cfg, split).values()))


def camera_table(cfg: dict, videos: dict[str, dict[str, int]]) -> pd.DataFrame:
    """``COLUMNS``: every video of ``videos`` ({split: {name: frames}}) with its camera. A test
    video whose camera has no training video is an error naming it (nothing to judge it by)."""
    m = mode(cfg)
    listed = read_list(Path(cfg["dataset"]["root"]) / CAMERAS_CSV) if m == "file" else {}
    rows = []
    for split, names in videos.items():
        for name, frames in names.items():
            rows.append((split, name, _camera(cfg, m, listed, name, split), int(frames)))
    df = pd.DataFrame(rows, columns=COLUMNS)
    trained = set(df.loc[df["split"] == "train", "camera"])
    orphans = df[(df["split"] == "test") & ~df["camera"].isin(trained)]
    if len(orphans):
        o = orphans.iloc[0]
        raise VadError(f"test video {o['video']} is from camera {o['camera']}, which has no training video "
                       f"(cameras with training videos: {', '.join(sorted(trained)) or 'none'}); add normal "
                       "footage of that camera to the training split, or set cameras.assign")
    return df


def summary(table: pd.DataFrame, min_train_frames: int, few_videos: int) -> dict[str, dict]:
    """Per camera (for gt_summary.json): its training and test videos and frames, how its training
    scores leave footage out (:func:`vad_pipeline.reference.scheme`: time blocks up to
    ``few_videos`` training videos), and whether it has fewer
    than ``min_train_frames`` training frames (``too_little_footage``: warned in the log)."""
    from vad_pipeline.reference import scheme

    out = {}
    for cam, g in table.groupby("camera", sort=True):
        row = {f"{s}_{k}": (int(g.loc[g["split"] == s, "frames"].sum()) if k == "frames"
                            else int((g["split"] == s).sum()))
               for s in ("train", "test") for k in ("videos", "frames")}
        row["leave_out"] = scheme(row["train_videos"], few_videos)
        row["too_little_footage"] = row["train_frames"] < min_train_frames
        if row["too_little_footage"]:
            log.warning("camera %s: %d training frames (fewer than cameras.min_train_frames %d): too little "
                        "footage to judge it well; its scores are z-scored with statistics of little data",
                        cam, row["train_frames"], min_train_frames)
        out[str(cam)] = row
    return out


def read_cameras(paths: str | list[str] | None) -> dict[str, str]:
    """{video: camera} of the camera lists the labels rule wrote (cameras/<split>.csv; None: one
    camera)."""
    out: dict[str, str] = {}
    for path in [paths] if isinstance(paths, str) else paths or []:
        df = read_csv(path, COLUMNS).astype({"video": str, "camera": str})
        out.update(zip(df["video"], df["camera"]))
    return out


def of(videos: pd.Series, cameras: dict[str, str]) -> pd.Series:
    """The camera of each entry of ``videos`` (:data:`ONE` for all without a camera list)."""
    if not cameras:
        return pd.Series(ONE, index=videos.index)
    cam = videos.astype(str).map(cameras)
    if cam.isna().any():
        raise VadError(f"video {videos[cam.isna()].iloc[0]} is not in the camera list; rerun the labels rule")
    return cam
