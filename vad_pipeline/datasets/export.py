"""Write a dataset into any supported layout, exactly as its official archive arranges it.

Used to build the test fixtures of every layout and the decode benchmark; also handy to turn
own footage into the frames layout. Lossless where the layout allows it (TIFF, FFV1 AVI).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from vad_pipeline.datasets.video import Video, iter_frames
from vad_pipeline.intervals import runs

FOURCC = {".avi": "FFV1", ".mp4": "mp4v"}


def write_video_file(path: Path, frames: Iterable[np.ndarray], fps: float) -> int:
    """Encode BGR frames into ``path`` (codec by extension); returns the frame count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer, n = None, 0
    for img in frames:
        if writer is None:
            h, w = img.shape[:2]
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*FOURCC[path.suffix]), fps, (w, h))
            if not writer.isOpened():
                raise RuntimeError(f"{path}: OpenCV cannot write this container")
        writer.write(img)
        n += 1
    if writer is not None:
        writer.release()
    return n


def write_image_folder(folder: Path, frames: Iterable[np.ndarray], pattern: str, start: int = 0) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    for n, img in enumerate(frames, start=1):
        path = folder / pattern.format(n - 1 + start)
        ok = cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 100] if path.suffix == ".jpg" else [])
        if not ok:
            raise RuntimeError(f"{folder}: cannot write {pattern}")
    return n


def _ranges(lab: np.ndarray) -> list[tuple[int, int]]:
    """Bool per frame -> 1-based inclusive (first, last) runs."""
    return [(a + 1, b + 1) for a, b in runs(lab)]


def scaled_masks(masks: dict[str, np.ndarray | None], size: tuple[int, int]) -> dict[str, np.ndarray | None]:
    """Pixel masks (T, H, W) scaled to ``size`` (height, width), nearest pixel."""
    h, w = size
    return {k: None if m is None else np.stack([cv2.resize(x.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
                                                for x in m]).astype(bool) for k, m in masks.items()}


def export(train: list[Video], test: list[Video], labels: dict[str, np.ndarray],
           masks: dict[str, np.ndarray | None], layout: str, root: Path, fps: float = 10.0,
           size: tuple[int, int] | None = None, cameras: dict[str, str] | None = None) -> dict:
    """Write the videos and ground truth under ``root`` in ``layout``; return the dataset
    section (layout, root, gt) that reads it back. Videos are renamed as the archive names them;
    the order is kept. ``size`` (height, width): frames and masks scaled to it (footage of
    another frame size, e.g. a small generated scene as 1920x1080). ``cameras`` ({video name:
    camera}): shanghaitech names the videos ``<camera>_NNN`` (numbered per camera), videos writes
    them to ``cameras.csv``; frames keeps the names as given."""
    root = Path(root)
    gray = layout == "ucsd"  # the UCSD archive is greyscale TIFF
    if size is not None:
        masks = scaled_masks(masks, size)

    def frames(v):
        if size is None:
            return iter_frames(v, gray=gray)
        return (cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_LINEAR) for img in iter_frames(v, gray=gray))

    section: dict = {"layout": layout, "root": str(root)}
    if layout == "frames":
        for split, videos in (("training", train), ("testing", test)):
            for v in videos:
                write_image_folder(root / split / "frames" / v.name, frames(v), "{:03d}.jpg")
        import scipy.io

        gt = np.empty((1, len(test)), dtype=object)
        for i, v in enumerate(test):
            gt[0, i] = np.asarray(_ranges(labels[v.name]), np.float64).reshape(-1, 2).T
        scipy.io.savemat(root / "gt.mat", {"gt": gt})
        section["gt"] = "gt.mat"
    elif layout == "ucsd":
        for i, v in enumerate(train, 1):
            write_image_folder(root / "Train" / f"Train{i:03d}", frames(v), "{:03d}.tif", start=1)
        lines = ["TestVideoFile = {};"]
        for i, v in enumerate(test, 1):
            write_image_folder(root / "Test" / f"Test{i:03d}", frames(v), "{:03d}.tif", start=1)
            spans = ", ".join(f"{a}:{b}" for a, b in _ranges(labels[v.name]))
            lines.append(f"TestVideoFile{{end+1}}.gt_frame = [{spans}];")
            if masks.get(v.name) is not None:
                write_image_folder(root / "Test" / f"Test{i:03d}_gt",
                                   (m.astype(np.uint8) * 255 for m in masks[v.name]), "{:03d}.bmp", start=1)
        (root / "Test" / "UCSDped_fixture.m").write_text("\n".join(lines) + "\n")
        section["gt"] = "Test/UCSDped_fixture.m"
    elif layout == "avenue":
        import scipy.io

        for i, v in enumerate(train, 1):
            write_video_file(root / "training_videos" / f"{i:02d}.avi", frames(v), fps)
        gtdir = root / "ground_truth_demo" / "testing_label_mask"
        gtdir.mkdir(parents=True, exist_ok=True)
        for i, v in enumerate(test, 1):
            write_video_file(root / "testing_videos" / f"{i:02d}.avi", frames(v), fps)
            vol = np.empty((1, v.n_frames), dtype=object)
            for t, m in enumerate(masks[v.name]):  # Avenue's frame labels are "any mask pixel set"
                vol[0, t] = (m & labels[v.name][t]).astype(np.uint8)
            scipy.io.savemat(gtdir / f"{i}_label.mat", {"volLabel": vol})
    elif layout == "shanghaitech":
        cam = {v.name: (cameras or {}).get(v.name, "01") for v in [*train, *test]}
        count: dict[tuple[str, str], int] = {}

        def number(v, split):
            count[split, cam[v.name]] = count.get((split, cam[v.name]), 0) + 1
            return count[split, cam[v.name]]

        for v in train:
            write_video_file(root / "training" / "videos" / f"{cam[v.name]}_{number(v, 'train'):03d}.avi", frames(v), fps)
        for v in test:
            name = f"{cam[v.name]}_{number(v, 'test'):04d}"
            write_image_folder(root / "testing" / "frames" / name, frames(v), "{:03d}.jpg")
            for sub, arr in (("test_frame_mask", labels[v.name].astype(np.int64)),
                             ("test_pixel_mask", masks[v.name].astype(np.uint8))):
                (root / "testing" / sub).mkdir(parents=True, exist_ok=True)
                np.save(root / "testing" / sub / f"{name}.npy", arr)
    elif layout == "videos":
        # own footage mixes containers and frame folders
        for split, videos in (("train", train), ("test", test)):
            for i, v in enumerate(videos):
                if i % 3 == 2:
                    write_image_folder(root / split / v.name, frames(v), "{:05d}.png")
                else:
                    write_video_file(root / split / f"{v.name}{'.mp4' if i % 3 else '.avi'}", frames(v), fps)
        rows = ["video,start_frame,end_frame"]
        for v in test:
            rows += [f"{v.name},{a - 1},{b - 1}" for a, b in _ranges(labels[v.name])]
        (root / "labels.csv").write_text("\n".join(rows) + "\n")
        if cameras:
            (root / "cameras.csv").write_text("video,camera\n" + "".join(
                f"{v.name},{cameras[v.name]}\n" for v in [*train, *test]))
        section["fps"] = fps
    else:
        raise ValueError(f"cannot export to layout {layout!r}")
    return section
