"""A small, deterministic synthetic surveillance scene with known anomalies.

Training videos show people walking left to right at normal speed over a textured pavement.
Each test video adds one anomalous object: a much faster walker, a walker moving against the
flow, or an object of an unusual shape (a cart). Frame labels mark the frames where the
anomalous object is mostly in view; pixel masks mark its pixels. The multi-camera sets of
:mod:`vad_pipeline.camera_set` are this scene, generated once per camera with its own settings.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import scipy.io

from vad_pipeline.intervals import runs
from vad_pipeline.io import VadError, umask

ANOMALIES = ("fast", "against", "shape")


@dataclass
class Actor:
    x: float
    y: float
    vx: float
    h: int
    w: int
    color: tuple[int, int, int]
    kind: str = "walker"  # walker or cart
    abnormal: bool = False
    phase: float = 0.0

    def draw(self, img: np.ndarray, mask: np.ndarray | None, t: int) -> None:
        cx, cy = int(round(self.x)), int(round(self.y))
        if self.kind == "cart":
            p1, p2 = (cx - self.w // 2, cy - self.h // 2), (cx + self.w // 2, cy + self.h // 2)
            for target, value in ((img, self.color), (mask, 1)):
                if target is None:
                    continue
                cv2.rectangle(target, p1, p2, value if target is img else 1, -1)
                for wx in (p1[0] + 3, p2[0] - 3):
                    cv2.circle(target, (wx, p2[1] + 2), 3, (20, 20, 20) if target is img else 1, -1)
            cv2.line(img, (p1[0], p1[1] + 4), (p2[0], p1[1] + 4), (240, 240, 240), 1)
            return
        # a walker: body, head, and legs that swing with the gait
        swing = int(round(2 * np.sin(self.phase + 0.5 * t * abs(self.vx))))
        body = ((cx, cy), (self.w // 2, self.h // 3), 0, 0, 360)
        head = ((cx, cy - self.h // 3 - self.w // 3), max(2, self.w // 3))
        legs = [((cx - 2, cy + self.h // 4), (cx - 2 + swing, cy + self.h // 2)),
                ((cx + 2, cy + self.h // 4), (cx + 2 - swing, cy + self.h // 2))]
        for target in (img, mask):
            if target is None:
                continue
            value = self.color if target is img else 1
            cv2.ellipse(target, *body, value, -1)
            cv2.circle(target, *head, value, -1)
            for a, b in legs:
                cv2.line(target, a, b, value, 2)


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    noise = rng.normal(0, 1, (h, w)).astype(np.float32)
    tex = cv2.GaussianBlur(noise, (0, 0), 3) * 60 + cv2.GaussianBlur(noise, (0, 0), 1) * 8
    base = 120 + tex + np.linspace(-20, 20, h, dtype=np.float32)[:, None]
    base[:: max(8, h // 10), :] -= 25  # paving lines
    tint = np.array([1.0, 0.95, 0.9], dtype=np.float32)
    return np.clip(base[..., None] * tint, 0, 255).astype(np.float32)


def depth(cfg: dict, y: float, h: int) -> float:
    """Size and speed factor of an object at row ``y``: ``object_scale``, times 1 +- ``perspective``
    / 2 from the middle row to the bottom (near) and top (far) rows."""
    return cfg["object_scale"] * (1.0 + cfg["perspective"] * (y / h - 0.5))


def _walker(rng, cfg, h, w, x=None, vx=None, abnormal=False) -> Actor:
    height = int(rng.integers(18, 25))
    dark = rng.random() < 0.5
    color = tuple(int(c) for c in (rng.integers(15, 70, 3) if dark else rng.integers(185, 245, 3)))
    a = Actor(
        x=float(-8 if x is None else x),
        y=float(rng.uniform(18, h - 18)),
        vx=float(rng.uniform(*cfg["walker_speed"]) if vx is None else vx),
        h=height, w=int(rng.integers(8, 12)), color=color, abnormal=abnormal,
        phase=float(rng.uniform(0, 6.28)),
    )
    f = depth(cfg, a.y, h)
    if f != 1.0:   # after every draw: the defaults give the same scene as before these settings
        a.h, a.w, a.vx = max(4, round(a.h * f)), max(3, round(a.w * f)), a.vx * f
    return a


def render_video(cfg: dict, rng: np.random.Generator, bg: np.ndarray, anomaly: str | None):
    """Frames (T,H,W,3) uint8 and anomaly masks (T,H,W) bool of one video."""
    h, w, n = cfg["height"], cfg["width"], cfg["n_frames"]
    mean_speed = float(np.mean(cfg["walker_speed"]))
    spawn_rate = cfg["n_walkers"] * mean_speed / (w + 16)  # keeps ~n_walkers on screen
    actors = [_walker(rng, cfg, h, w, x=rng.uniform(0, w)) for _ in range(int(cfg["n_walkers"]))]
    start = int(rng.integers(n // 6, n // 3)) if anomaly else -1
    frames = np.empty((n, h, w, 3), np.uint8)
    masks = np.zeros((n, h, w), bool)
    for t in range(n):
        if rng.random() < spawn_rate:
            actors.append(_walker(rng, cfg, h, w))
        if t == start:
            if anomaly == "fast":
                actors.append(_walker(rng, cfg, h, w, vx=rng.uniform(*cfg["fast_speed"]), abnormal=True))
            elif anomaly == "against":
                actors.append(_walker(rng, cfg, h, w, x=w + 8, vx=-rng.uniform(*cfg["walker_speed"]), abnormal=True))
            elif anomaly == "shape":
                cart = Actor(x=-14, y=float(rng.uniform(22, h - 22)), vx=float(rng.uniform(*cfg["walker_speed"])),
                             h=18, w=28, color=(40, 160, 200), kind="cart", abnormal=True)
                f = depth(cfg, cart.y, h)
                cart.h, cart.w, cart.vx = max(4, round(18 * f)), max(6, round(28 * f)), cart.vx * f
                actors.append(cart)
        img = bg.copy()
        mask = np.zeros((h, w), np.uint8)
        for a in actors:
            a.draw(img, mask if a.abnormal else None, t)
        img += rng.normal(0, 2.0, img.shape).astype(np.float32)  # sensor noise
        frames[t] = np.clip(img, 0, 255).astype(np.uint8)
        masks[t] = mask.astype(bool)
        for a in actors:
            a.x += a.vx
        actors = [a for a in actors if -20 <= a.x <= w + 20]
    return frames, masks


def frame_labels_from_masks(masks: np.ndarray, full_area: int) -> np.ndarray:
    """A frame is abnormal when at least 30% of the anomalous object is in view."""
    return masks.reshape(len(masks), -1).sum(1) >= 0.3 * full_area


def label_ranges(labels: np.ndarray) -> np.ndarray:
    """Bool per frame -> 2xK array of 1-based [first; last] abnormal ranges."""
    return np.asarray(runs(labels), np.float64).reshape(-1, 2).T + 1


MARKER = ".vad-pipeline-demo"   # written into every generated demo: what may be replaced
DEMO_ENTRIES = {"training", "testing", "demo.mat"}


def _replaceable(root: Path) -> bool:
    """An earlier demo (the marker, or exactly a demo's entries) or an empty folder."""
    if not root.is_dir():
        return False
    names = {p.name for p in root.iterdir()}
    return MARKER in names or not names or names == DEMO_ENTRIES


def generate(cfg: dict, root: str | os.PathLike) -> None:
    """Write the demo dataset under ``root`` (frames layout + demo.mat + pixel masks), atomically.

    An existing ``root`` is replaced only if it is an earlier demo or empty: a folder of the
    user's is never deleted."""
    root = Path(root)
    if root.exists() and not _replaceable(root):
        raise VadError(f"{root}: exists and is not a demo dataset written by make-demo (no {MARKER} "
                       "in it); not replacing it. Remove it yourself or give another output folder")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    os.chmod(tmp, 0o777 & ~umask())  # mkdtemp makes it private; the dataset is for everyone
    try:
        (tmp / MARKER).write_text("generated by vad-pipeline make-demo; the folder is replaced on regeneration\n")
        rng = np.random.default_rng(cfg["seed"])
        bg = _background(rng, cfg["height"], cfg["width"])
        gts = []
        for split, n_videos in (("training", cfg["n_train"]), ("testing", cfg["n_test"])):
            for i in range(n_videos):
                anomaly = ANOMALIES[i % len(ANOMALIES)] if split == "testing" else None
                frames, masks = render_video(cfg, rng, bg, anomaly)
                vdir = tmp / split / "frames" / f"{i + 1:02d}"
                vdir.mkdir(parents=True)
                for t, frame in enumerate(frames):
                    cv2.imwrite(str(vdir / f"{t:03d}.png"), frame)
                if split == "testing":
                    full = int(masks.reshape(len(masks), -1).sum(1).max())
                    gts.append(label_ranges(frame_labels_from_masks(masks, full)))
                    mdir = tmp / split / "pixel_masks"
                    mdir.mkdir(exist_ok=True)
                    np.savez_compressed(mdir / f"{i + 1:02d}.npz", bits=np.packbits(masks, axis=-1),
                                        width=masks.shape[-1])
        gt = np.empty((1, len(gts)), dtype=object)
        for i, g in enumerate(gts):
            gt[0, i] = g
        scipy.io.savemat(tmp / "demo.mat", {"gt": gt})
        if root.exists():
            shutil.rmtree(root)
        os.replace(tmp, root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
