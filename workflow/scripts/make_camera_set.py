"""A multi-camera dataset to develop and measure with: generated scenes of several cameras that
differ in perspective, object size, speed and amount of training footage, optionally with UCSD
Ped2 as one more camera, all scaled to one frame size and written in any layout (video names
``<camera>_<video>``: `dataset.cameras: prefix` reads them back; the videos layout also gets a
cameras.csv).

    python workflow/scripts/make_camera_set.py --out /tmp/cams --size 480x856 --layout frames \\
        --ped2 /tmp/ped2_856     # Ped2 (upscaled beforehand) as camera 01, generated 02 and 03
    python workflow/scripts/make_camera_set.py --out /tmp/sh --layout shanghaitech --cameras 3

Nothing of it belongs in the repository: it is written where --out says.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from vad_pipeline import config as C  # noqa: E402
from vad_pipeline import datasets as D  # noqa: E402
from vad_pipeline.datasets.export import export  # noqa: E402
from vad_pipeline.datasets.video import natural_sorted  # noqa: E402

# generated cameras: demo settings (scene size before scaling, crowd, speed, object size,
# perspective, amount of footage); a camera far away and flat, one close by looking down a walkway,
# one in between with little training footage, ...
CAMERAS = [
    {"height": 240, "width": 428, "n_walkers": 6, "walker_speed": [0.8, 1.6], "fast_speed": [4.0, 6.0],
     "object_scale": 0.8, "perspective": 0.0, "n_train": 6, "n_test": 3, "n_frames": 150},
    {"height": 240, "width": 428, "n_walkers": 3, "walker_speed": [1.0, 2.0], "fast_speed": [6.0, 8.0],
     "object_scale": 1.8, "perspective": 1.0, "n_train": 2, "n_test": 3, "n_frames": 120},
    {"height": 240, "width": 428, "n_walkers": 4, "walker_speed": [1.5, 2.5], "fast_speed": [7.0, 9.0],
     "object_scale": 1.2, "perspective": 0.5, "n_train": 3, "n_test": 3, "n_frames": 150},
]


def generated(camera: str, spec: dict, seed: int, tmp: Path):
    """(train, test, labels, masks) of one generated camera, videos named ``<camera>_NN``."""
    from vad_pipeline.demo import generate

    cfg = C.load(REPO / "config.yaml")
    cfg["demo"] = C.deep_merge(cfg["demo"], {**spec, "seed": seed})
    cfg["datasets"]["demo"]["root"] = str(tmp / f"camera{camera}")
    res = C.resolve(cfg, "demo")
    generate(res["demo"], res["dataset"]["root"])
    train = [D.get_video(res, "train", n) for n in D.video_names(res, "train")]
    test = [D.get_video(res, "test", n) for n in D.video_names(res, "test")]
    labels, masks = D.frame_labels(res, test), {v.name: D.pixel_masks(res, v) for v in test}
    name = {v.name: f"{camera}_{v.name}" for v in test}
    return ([replace(v, name=f"{camera}_{v.name}") for v in train], [replace(v, name=name[v.name]) for v in test],
            {name[k]: x for k, x in labels.items()}, {name[k]: x for k, x in masks.items()})


def ped2(root: Path, camera: str):
    """(train, test, labels) of UCSD Ped2 (frames layout, ped2.mat; any frame size) as one camera."""
    cfg = C.load(REPO / "config.yaml")
    cfg["datasets"]["ped2"].update(root=str(root), frame_size=None)
    res = C.resolve(cfg, "ped2")
    train = [D.get_video(res, "train", n) for n in D.video_names(res, "train")]
    test = [D.get_video(res, "test", n) for n in D.video_names(res, "test")]
    labels = D.frame_labels(res, test)
    return ([replace(v, name=f"{camera}_{v.name}") for v in train], [replace(v, name=f"{camera}_{v.name}") for v in test],
            {f"{camera}_{k}": x for k, x in labels.items()})


def build(out: Path, layout: str, size: tuple[int, int], n_cameras: int, ped2_root: Path | None = None,
          seed: int = 11, **override) -> dict:
    """Write the set; returns {"joint": the dataset section that reads every camera (with
    ``cameras``), camera: the section of that camera alone}. frames: each generated camera is
    written on its own under ``out/cameras/<camera>``, and ``out/joint`` links every camera's
    video folders (Ped2's where they are: give it already at the frame size wanted) with a gt.json,
    so one camera alone and the joint set read the same files. Other layouts: one set.
    ``override``: demo settings every generated camera takes instead (e.g. ``n_frames``)."""
    out = Path(out)
    first = 2 if ped2_root is not None else 1
    sections: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="vad-cameras-") as tmp:
        parts = {f"{first + i:02d}": generated(f"{first + i:02d}", {**copy.deepcopy(CAMERAS[i % len(CAMERAS)]), **override},
                                              seed + i, Path(tmp)) for i in range(n_cameras)}
        if layout != "frames":
            train = [v for p in parts.values() for v in p[0]]
            test = [v for p in parts.values() for v in p[1]]
            labels = {k: x for p in parts.values() for k, x in p[2].items()}
            masks = {k: x for p in parts.values() for k, x in p[3].items()}
            cams = {v.name: v.name.split("_", 1)[0] for v in [*train, *test]}
            section = export(train, test, labels, masks, layout, out, size=size, cameras=cams)
            return {"joint": {**section, "cameras": "file" if layout == "videos" else "prefix"}}
        folders, labels = {}, {}
        for cam, (train, test, lab, masks) in parts.items():
            sections[cam] = export(train, test, lab, masks, "frames", out / "cameras" / cam, size=size)
            for split, videos in (("training", train), ("testing", test)):
                folders.update({(split, v.name): out / "cameras" / cam / split / "frames" / v.name for v in videos})
            labels.update(lab)
    if ped2_root is not None:
        train, test, lab = ped2(Path(ped2_root), "01")
        folders.update({("training", v.name): v.source for v in train})
        folders.update({("testing", v.name): v.source for v in test})
        labels.update(lab)
        sections["01"] = {"layout": "frames", "root": str(ped2_root), "gt": "ped2.mat"}
    joint = out / "joint"
    for (split, name), folder in folders.items():
        link = joint / split / "frames" / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(Path(folder).resolve(), target_is_directory=True)
    test_names = natural_sorted([n for s, n in folders if s == "testing"], key=str)
    (joint / "gt.json").write_text(json.dumps([labels[n].astype(int).tolist() for n in test_names]))
    sections["joint"] = {"layout": "frames", "root": str(joint), "gt": "gt.json", "cameras": "prefix"}
    return sections


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", default="480x856", help="frame size HxW")
    ap.add_argument("--layout", default="frames", choices=["frames", "shanghaitech", "videos"])
    ap.add_argument("--cameras", type=int, default=2, help="generated cameras")
    ap.add_argument("--ped2", default=None, help="UCSD Ped2 (frames layout) to add as camera 01")
    a = ap.parse_args()
    h, w = (int(v) for v in a.size.lower().split("x"))
    sections = build(Path(a.out), a.layout, (h, w), a.cameras, Path(a.ped2) if a.ped2 else None)
    print(json.dumps(sections, indent=1))


if __name__ == "__main__":
    main()
