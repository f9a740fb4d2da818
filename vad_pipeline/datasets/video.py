"""Videos as the pipeline sees them: a folder of image files or a video container, streamed.

A :class:`Video` is cheap to build (it lists files and reads a container's header only);
frames are decoded one at a time by :func:`iter_frames`, which checks what the header promised.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from vad_pipeline.io import VadError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
VIDEO_EXTS = (".avi", ".mp4", ".mov", ".mkv", ".mpg", ".mpeg", ".m4v", ".wmv", ".webm", ".ts")


@dataclass(frozen=True)
class Video:
    """One video of a split: ``frames`` (image files, in order) or ``file`` (a container)."""

    name: str
    split: str
    frames: tuple[Path, ...] = ()
    file: Path | None = None
    count: int = 0                  # frames of ``file`` according to its header
    fps: float | None = None        # from the container, or the dataset's ``fps`` setting
    size: tuple[int, int] | None = None  # (height, width) of ``file``
    work: tuple[int, int] | None = None  # (height, width) iter_frames scales frames to (None: as stored)
    offset: int = 0                 # frames of ``file`` before this video's first (a part: :func:`part`)
    to_end: bool = True             # whether it runs to the file's end (its header's count then checked)

    @property
    def n_frames(self) -> int:
        return self.count if self.file is not None else len(self.frames)

    @property
    def source(self) -> Path:
        """The folder or file the video is read from (what error messages name)."""
        return self.file if self.file is not None else self.frames[0].parent


_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
    """Sort key that orders numbers by value: ``2.jpg`` before ``10.jpg`` (ffmpeg's ``%d.jpg``),
    ``Test2`` before ``Test10``; zero-padded names keep their usual order."""
    return tuple((0, int(part), part) if part.isdigit() else (1, 0, part)
                 for part in _DIGITS.split(name) if part)


def natural_sorted(items, key=lambda p: p.name) -> list:
    return sorted(items, key=lambda p: natural_key(key(p)))


def listed(folder: Path) -> list[Path]:
    """A folder's entries in natural order, without hidden files: ``.DS_Store`` and the ``._*``
    AppleDouble files every archive made on a Mac carries are not frames or videos."""
    return natural_sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def check_numbering(folder: Path, frames: list[Path]) -> None:
    """Frame files numbered with a gap or twice (``041.jpg`` then ``043.jpg``; ``7.jpg`` and
    ``007.jpg``) would silently shift every later frame: refuse them, naming the files."""
    nums = [int(m.group(1)) if (m := re.search(r"(\d+)\D*$", p.stem)) else None for p in frames]
    if len(frames) < 2 or None in nums:
        return  # names without numbers: file-name order is all there is
    for a, b, pa, pb in zip(nums, nums[1:], frames, frames[1:]):
        if a == b:
            raise VadError(f"{folder}: {pa.name} and {pb.name} carry the same frame number {a}")
    steps = Counter(b - a for a, b in zip(nums, nums[1:]))
    step = steps.most_common(1)[0][0]  # 1, or e.g. 5 for every fifth frame extracted
    for a, b, pa, pb in zip(nums, nums[1:], frames, frames[1:]):
        if b - a != step:
            raise VadError(f"{folder}: frame numbering jumps from {pa.name} to {pb.name} (frames are "
                           f"numbered in steps of {step}): a frame is missing; restore it or renumber the frames")


def image_folder(name: str, split: str, folder: Path, fps: float | None = None) -> Video:
    """A video stored as one image file per frame, in natural file-name order, numbered without gaps."""
    if not folder.is_dir():
        raise VadError(f"{folder}: video folder not found")
    frames = [p for p in listed(folder) if p.suffix.lower() in IMAGE_EXTS]
    if not frames:
        raise VadError(f"{folder}: empty video (no {'/'.join(IMAGE_EXTS)} frames)")
    check_numbering(folder, frames)
    return Video(name=name, split=split, frames=tuple(frames), fps=fps)


def part(video: Video, first: int, stop: int) -> Video:
    """Frames ``first .. stop - 1`` of ``video`` as a video of their own (a held-out time block,
    or the training frames before it: :mod:`vad_pipeline.datasets.holdout`)."""
    if not 0 <= first < stop <= video.n_frames:
        raise VadError(f"{video.source}: frames {first}..{stop - 1} asked for, the video has {video.n_frames}")
    if video.file is None:
        return replace(video, frames=video.frames[first:stop])
    return replace(video, offset=video.offset + first, count=stop - first,
                   to_end=video.to_end and stop == video.n_frames)


def _open(path: Path) -> cv2.VideoCapture:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise VadError(f"{path}: cannot be decoded (truncated, corrupt or an unsupported container)")
    return cap


def video_file(name: str, split: str, path: Path, fps: float | None = None) -> Video:
    """A video container; frame count, size and fps come from its header, checked when decoded."""
    if not path.is_file():
        raise VadError(f"{path}: video file not found")
    cap = _open(path)
    try:
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        h, w = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        rate = float(cap.get(cv2.CAP_PROP_FPS))
    finally:
        cap.release()
    if count <= 0 or h <= 0 or w <= 0:
        raise VadError(f"{path}: header gives {count} frames of {w}x{h}; the file is empty or corrupt")
    return Video(name=name, split=split, file=path, count=count, size=(h, w),
                 fps=rate if 0 < rate < 1000 else fps)


def truncated(data: np.ndarray, suffix: str) -> bool:
    """Whether an image file's bytes miss their format's end: OpenCV decodes a JPEG cut short into
    a grey-filled image with only a libjpeg warning, so a damaged frame would pass unseen. JPEG
    must hold its end-of-image marker near the end (cameras may pad after it), PNG its IEND chunk."""
    tail = data[-1024:].tobytes()
    if suffix in (".jpg", ".jpeg"):
        return b"\xff\xd9" not in tail
    if suffix == ".png":
        return b"IEND" not in tail[-16:]
    return False


def read_frame(path: Path, gray: bool = False) -> np.ndarray:
    """One image file as uint8, HxWx3 (BGR) or HxW when ``gray``; a damaged file is an error."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise VadError(f"{path}: unreadable image ({exc.strerror})") from exc
    if data.size == 0:
        raise VadError(f"{path}: unreadable image (empty file)")
    if truncated(data, path.suffix.lower()):
        raise VadError(f"{path}: damaged image (the file ends before the image does: cut short by a "
                       "failed copy or download?)")
    img = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    if img is None:
        raise VadError(f"{path}: unreadable image")
    return img


def _decode(video: Video, gray: bool) -> Iterator[np.ndarray]:
    cap = _open(video.file)
    n = 0
    try:
        for _ in range(video.offset):   # a part: the frames before it decoded, not converted
            if not cap.grab():
                raise VadError(f"{video.file}: truncated or corrupt: decoding stopped before frame {video.offset}")
        while video.to_end or n < video.count:
            ok, img = cap.read()
            if not ok:
                break
            n += 1
            if n > video.count:
                raise VadError(f"{video.file}: holds more frames than the {video.offset + video.count} its header "
                               "gives; re-encode it (e.g. ffmpeg -i in -c:v mjpeg out.avi)")
            yield cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if gray else img
    finally:
        cap.release()
    if n < video.count:
        raise VadError(f"{video.file}: truncated or corrupt: decoded {n} of the {video.count} "
                       "frames its header gives")


def work_size(height: int, width: int, work_height: int) -> tuple[int, int]:
    """(height, width) of the working resolution of a height x width frame: scaled down to
    ``work_height`` rows, aspect ratio kept; a frame no taller, or ``work_height`` 0: its own size."""
    if work_height <= 0 or height <= work_height:
        return height, width
    return work_height, max(1, round(width * work_height / height))


def working(video: Video, work_height: int) -> Video:
    """``video`` read at its working resolution (:func:`work_size`) by :func:`iter_frames`."""
    return replace(video, work=work_size(*frame_size(video), work_height))


def at_work_size(video: Video, img: np.ndarray) -> np.ndarray:
    """``img`` scaled to ``video.work`` (area averaging: no aliasing of fine texture)."""
    if video.work is None or img.shape[:2] == tuple(video.work):
        return img
    return cv2.resize(img, (video.work[1], video.work[0]), interpolation=cv2.INTER_AREA)


def iter_frames(video: Video, gray: bool = False) -> Iterator[np.ndarray]:
    """Decode the frames in order, one in memory at a time; all must have the same size. With
    ``video.work`` set, each is then scaled to that working size."""
    frames = _decode(video, gray) if video.file is not None else (read_frame(p, gray) for p in video.frames)
    shape = None
    for t, img in enumerate(frames):
        if shape is None:
            shape = img.shape
        elif img.shape != shape:
            where = video.frames[t] if video.file is None else f"{video.file} frame {t}"
            raise VadError(f"{where}: frame size {img.shape[:2]} differs from the video's {shape[:2]}")
        yield at_work_size(video, img)


def read_frames(video: Video, indices, gray: bool = False) -> dict[int, np.ndarray]:
    """Only the frames ``indices`` (0-based) of a video: image files are read one by one, a
    container is decoded as a stream up to the last one asked for (one frame in memory at a time,
    seeking is not frame-exact in every codec), only the frames asked for converted and scaled."""
    if video.file is not None:
        with Reader(video, gray, keep=0) as read:
            return read(indices)
    want = sorted({int(i) for i in indices})
    _check_indices(video, want)
    return {i: read_frame(video.frames[i], gray) for i in want}


def _check_indices(video: Video, want: list[int]) -> None:
    if want and (want[0] < 0 or want[-1] >= video.n_frames):
        raise VadError(f"{video.source}: frames {want[0]}..{want[-1]} asked for, the video has {video.n_frames}")


class Reader:
    """:func:`read_frames` for a caller that asks for a video's frames chunk by chunk, mostly in
    increasing order (the pseudo-anomalies): a container stays open between calls and its last
    ``keep`` frames are kept, so a long video, or a time block far into one, is decoded once, not
    from its first frame at every call. An earlier frame than those is decoded again from the
    start. Image folders are read as read_frames reads them. Use as a context manager."""

    def __init__(self, video: Video, gray: bool = False, keep: int = 64):
        self.video, self.gray, self.keep = video, gray, keep
        self._cap: cv2.VideoCapture | None = None
        self._next = 0   # the file frame the open capture decodes next
        self._recent: dict[int, np.ndarray] = {}   # frame -> image, oldest first
        self._shape: tuple[int, ...] | None = None

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __call__(self, indices) -> dict[int, np.ndarray]:
        video = self.video
        if video.file is None:
            return read_frames(video, indices, self.gray)
        want = sorted({int(i) for i in indices})
        _check_indices(video, want)
        out = {i: self._recent[i] for i in want if i in self._recent}   # only the frames asked for converted
        rest = [i for i in want if i not in out]
        if rest and video.offset + rest[0] < self._next:
            self.close()   # behind the capture: decode again from the start
        if rest and self._cap is None:
            self._cap, self._next = _open(video.file), 0
        for i in rest:
            t = video.offset + i
            while self._next < t:
                if not self._cap.grab():
                    break
                self._next += 1
            ok, img = self._cap.read() if self._next == t else (False, None)
            if not ok:
                raise VadError(f"{video.file}: truncated or corrupt: frame {t} asked for, decoding stopped before "
                               f"it (the header gives {video.offset + video.count} frames)")
            self._next += 1
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if self.gray else img
            self._shape = self._shape or img.shape
            if img.shape != self._shape:
                raise VadError(f"{video.file} frame {t}: frame size {img.shape[:2]} differs from the video's "
                               f"{self._shape[:2]}")
            img = at_work_size(video, img)
            out[i] = self._recent[i] = img
            while len(self._recent) > self.keep:
                del self._recent[next(iter(self._recent))]
        return out


def frame_size(video: Video) -> tuple[int, int]:
    """(height, width) without decoding the whole video."""
    if video.size is not None:
        return video.size
    return read_frame(video.frames[0], gray=True).shape[:2]
