"""A multi-camera dataset to develop and measure with: the demo's scene (:mod:`vad_pipeline.demo`)
generated once per camera, each camera with its own perspective, object size, speed, amount of
training footage and frame size, optionally with UCSD Ped2 as one more camera, written in the
frames, shanghaitech or videos layout. Video names are ``<camera>_<video>`` (``cameras.assign:
prefix`` reads them back); the videos layout also gets a cameras.csv.

    python -m vad_pipeline make-camera-set --out /tmp/cams --size 480x856 --layout frames \\
        --ped2 /tmp/ped2_856     # Ped2 (upscaled beforehand) as camera 01, generated 02 and 03
    python -m vad_pipeline make-camera-set --out /tmp/sh --layout shanghaitech --cameras 13
    python -m vad_pipeline make-camera-set --out /tmp/own --layout videos --cameras 2 \\
        --size 480x856,360x640 --train-clips 1,3

Nothing of it belongs in the repository: it is written where --out says.
"""

from __future__ import annotations

import copy
import json
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from vad_pipeline import config as C
from vad_pipeline import datasets as D
from vad_pipeline.datasets.export import export, scaled_masks, write_image_folder
from vad_pipeline.datasets.video import Video, frame_size, image_folder, iter_frames, natural_sorted
from vad_pipeline.demo import generate
from vad_pipeline.io import VadError

Size = tuple[int, int]

# The first generated cameras (demo settings: scene size before scaling, crowd, speed, object size,
# perspective, amount of footage): one far away and flat, one close by looking down a walkway, one
# in between with little training footage. The docs' figures are of these: keep them as they are.
CAMERAS = [
    {"height": 240, "width": 428, "n_walkers": 6, "walker_speed": [0.8, 1.6], "fast_speed": [4.0, 6.0],
     "object_scale": 0.8, "perspective": 0.0, "n_train": 6, "n_test": 3, "n_frames": 150},
    {"height": 240, "width": 428, "n_walkers": 3, "walker_speed": [1.0, 2.0], "fast_speed": [6.0, 8.0],
     "object_scale": 1.8, "perspective": 1.0, "n_train": 2, "n_test": 3, "n_frames": 120},
    {"height": 240, "width": 428, "n_walkers": 4, "walker_speed": [1.5, 2.5], "fast_speed": [7.0, 9.0],
     "object_scale": 1.2, "perspective": 0.5, "n_train": 3, "n_test": 3, "n_frames": 150},
]
LAYOUTS = ("frames", "shanghaitech", "videos")
PED2 = "01"   # the camera Ped2 becomes; the generated ones follow it


def camera_spec(i: int, seed: int = 11) -> dict:
    """Demo settings of the ``i``-th generated camera (0-based): :data:`CAMERAS`, then cameras
    drawn from ``seed`` and ``i`` alone (the same ones whatever the number of cameras), varied as
    ShanghaiTech's 13 are: crowd, speed, object size, perspective, one to six training videos."""
    if i < len(CAMERAS):
        return copy.deepcopy(CAMERAS[i])
    rng = np.random.default_rng([seed, i])
    slow = float(rng.uniform(0.7, 1.8))
    walk = [round(slow, 2), round(slow + float(rng.uniform(0.6, 1.2)), 2)]
    fast = round(walk[1] * float(rng.uniform(2.5, 3.5)), 2)   # clearly faster than any walker
    return {"height": 240, "width": 428, "n_walkers": int(rng.integers(2, 8)), "walker_speed": walk,
            "fast_speed": [fast, round(fast + 2.0, 2)], "object_scale": round(float(rng.uniform(0.7, 2.0)), 2),
            "perspective": round(float(rng.uniform(0.0, 1.2)), 2), "n_train": int(rng.integers(1, 7)),
            "n_test": int(rng.integers(2, 5)), "n_frames": int(rng.choice([120, 150, 180]))}


def parse_sizes(text: str) -> list[Size]:
    """``480x856`` or ``480x856,360x640`` (height x width, one per camera) -> [(h, w), ...]."""
    try:
        sizes = [tuple(int(v) for v in s.lower().split("x")) for s in text.split(",")]
    except ValueError:
        sizes = []
    if not sizes or any(len(s) != 2 or min(s) < 1 for s in sizes):
        raise VadError(f"--size {text}: expected HEIGHTxWIDTH, or several separated by commas")
    return sizes


def parse_counts(text: str, flag: str = "--train-clips") -> list[int]:
    """``3`` or ``1,3`` (one per camera) -> [1, 3]."""
    try:
        counts = [int(c) for c in text.split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise VadError(f"{flag} {text}: expected a positive number, or several separated by commas")
    return counts


def _each(values: Sequence, n: int, what: str) -> list:
    """One value per camera: a single value serves every camera."""
    if len(values) == 1:
        return list(values) * n
    if len(values) != n:
        raise VadError(f"{what}: {len(values)} values for {n} cameras (give one, or one per camera)")
    return list(values)


def _read(cfg: dict, camera: str):
    """(train, test, labels, masks) of a dataset, videos renamed ``<camera>_<video>`` (``cfg``'s
    dataset section: its keys, the schema's defaults for the rest)."""
    section = C.validate({"datasets": {cfg["name"]: cfg["dataset"]}}, where=f"camera {camera}")["datasets"]
    cfg = {**cfg, "dataset": section[cfg["name"]], "validation": {"videos": 0}}   # a copy: every training video
    train = [D.get_video(cfg, "train", n) for n in D.video_names(cfg, "train")]
    test = [D.get_video(cfg, "test", n) for n in D.video_names(cfg, "test")]
    labels, masks = D.frame_labels(cfg, test), {v.name: D.pixel_masks(cfg, v) for v in test}
    return ([replace(v, name=f"{camera}_{v.name}") for v in train], [replace(v, name=f"{camera}_{v.name}") for v in test],
            {f"{camera}_{k}": x for k, x in labels.items()}, {f"{camera}_{k}": x for k, x in masks.items()})


def generated(camera: str, spec: dict, seed: int, tmp: Path):
    """(train, test, labels, masks) of one generated camera: the demo with ``spec`` (written
    under ``tmp``), videos named ``<camera>_NN``."""
    demo = C.validate({"datasets": {}, "demo": {**spec, "seed": seed}}, where=f"camera {camera}")["demo"]
    cfg = {"name": f"camera{camera}", "demo": demo,
           "dataset": {"layout": "demo", "root": str(tmp / f"camera{camera}"), "gt": "demo.mat"}}
    generate(demo, cfg["dataset"]["root"])
    return _read(cfg, camera)


def ped2(root: Path, camera: str = PED2):
    """(train, test, labels, masks) of UCSD Ped2 (frames layout, ped2.mat; any frame size) as one
    camera; masks None unless the folder has testing/pixel_masks."""
    return _read({"name": "ped2", "dataset": {"layout": "frames", "root": str(root), "gt": "ped2.mat", "fps": 10}},
                 camera)


def _at_size(videos: list[Video], masks: dict, size: Size, tmp: Path) -> tuple[list[Video], dict]:
    """``videos`` written again at ``size`` as PNG (lossless) under ``tmp``, scaled as export scales
    (frames bilinear, masks nearest): cameras of several frame sizes in one export."""
    out = []
    for v in videos:
        if tuple(frame_size(v)) == tuple(size):
            out.append(v)
            continue
        folder = tmp / v.split / v.name
        write_image_folder(folder, (cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
                                    for img in iter_frames(v)), "{:05d}.png")
        out.append(image_folder(v.name, v.split, folder, v.fps))
    return out, scaled_masks(masks, size)


def build(out: Path, layout: str, size: Size | Sequence[Size], n_cameras: int, ped2_root: Path | None = None,
          seed: int = 11, train_clips: int | Sequence[int] | None = None, **override) -> dict:
    """Write the set; returns {"joint": the dataset section that reads every camera (with
    ``cameras``), camera: the section of that camera alone (frames layout)}.

    ``size``: (height, width) of every camera, or one per camera in camera order (Ped2 first).
    ``train_clips``: training videos of every generated camera, or one number per camera.
    ``override``: demo settings every generated camera takes instead of its own (e.g. ``n_frames``).
    Camera ``i`` is :func:`camera_spec` ``(i, seed)`` generated with seed ``seed + i``.

    frames: each generated camera is written on its own under ``out/cameras/<camera>``, and
    ``out/joint`` links every camera's video folders (Ped2's where they are: give it already at
    the frame size wanted) with a gt.json, so one camera alone and the joint set read the same
    files. shanghaitech and videos: one set (Ped2 needs pixel masks for shanghaitech)."""
    if layout not in LAYOUTS:
        raise VadError(f"layout {layout!r}: the camera set is written as {', '.join(LAYOUTS)}")
    out = Path(out)
    first = 2 if ped2_root is not None else 1
    names = [f"{first + i:02d}" for i in range(n_cameras)]
    cameras = ([PED2] if ped2_root is not None else []) + names
    sizes = dict(zip(cameras, _each([tuple(size)] if isinstance(size[0], int) else [tuple(s) for s in size],
                                    len(cameras), "size")))
    clips = [None] * n_cameras if train_clips is None else _each(
        [train_clips] if isinstance(train_clips, int) else train_clips, n_cameras, "train_clips")
    specs = [{**camera_spec(i, seed), **override, **({"n_train": int(c)} if c is not None else {})}
             for i, c in enumerate(clips)]
    sections: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="vad-cameras-") as tmp:
        parts = {cam: generated(cam, spec, seed + i, Path(tmp)) for i, (cam, spec) in enumerate(zip(names, specs))}
        if layout != "frames":
            if ped2_root is not None:
                parts = {PED2: ped2(Path(ped2_root)), **parts}
            return {"joint": joint(parts, layout, out, sizes, Path(tmp))}
        folders, labels = {}, {}
        for cam, (train, test, lab, masks) in parts.items():
            sections[cam] = export(train, test, lab, masks, "frames", out / "cameras" / cam, size=sizes[cam])
            for split, videos in (("training", train), ("testing", test)):
                folders.update({(split, v.name): out / "cameras" / cam / split / "frames" / v.name for v in videos})
            labels.update(lab)
    if ped2_root is not None:
        train, test, lab, _ = ped2(Path(ped2_root))
        folders.update({("training", v.name): v.source for v in train})
        folders.update({("testing", v.name): v.source for v in test})
        labels.update(lab)
        sections[PED2] = {"layout": "frames", "root": str(ped2_root), "gt": "ped2.mat"}
    joint_root = out / "joint"
    for (split, name), folder in folders.items():
        link = joint_root / split / "frames" / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(Path(folder).resolve(), target_is_directory=True)
    test_names = natural_sorted([n for s, n in folders if s == "testing"], key=str)
    (joint_root / "gt.json").write_text(json.dumps([labels[n].astype(int).tolist() for n in test_names]))
    sections["joint"] = {"layout": "frames", "root": str(joint_root), "gt": "gt.json", "cameras": "prefix"}
    return sections


def joint(parts: dict, layout: str, out: Path, sizes: dict[str, Size], tmp: Path) -> dict:
    """Every camera in one set of ``layout`` (shanghaitech, videos); its dataset section.

    ``parts``: {camera: (train, test, labels, masks)} as :func:`generated` and :func:`ped2` give
    them (video names ``<camera>_<video>``); ``sizes``: {camera: (height, width)}; ``tmp``: where
    cameras are rescaled to their size first."""
    parts = dict(parts)
    if layout == "shanghaitech":
        for cam, part in parts.items():
            bare = sorted(name for name, m in part[3].items() if m is None)
            if bare:
                source = next((v.source for v in part[1] if v.name == bare[0]), bare[0])
                raise VadError(f"camera {cam}: test video {bare[0]} ({source}) has no pixel masks, which the "
                               "shanghaitech layout holds (Ped2 needs testing/pixel_masks): write the set as "
                               "frames or videos")
    one = len(set(sizes.values())) == 1
    if not one:   # export scales every video to one size: bring each camera to its own first
        for cam, (train, test, lab, masks) in parts.items():
            videos, masks = _at_size(train + test, masks, sizes[cam], tmp / "sized" / cam)
            parts[cam] = (videos[:len(train)], videos[len(train):], lab, masks)
    train = [v for p in parts.values() for v in p[0]]
    test = [v for p in parts.values() for v in p[1]]
    labels = {k: x for p in parts.values() for k, x in p[2].items()}
    masks = {k: x for p in parts.values() for k, x in p[3].items()}
    cams = {v.name: v.name.split("_", 1)[0] for v in [*train, *test]}
    section = export(train, test, labels, masks, layout, out, size=next(iter(sizes.values())) if one else None,
                     cameras=cams)
    return {**section, "cameras": "file" if layout == "videos" else "prefix"}
