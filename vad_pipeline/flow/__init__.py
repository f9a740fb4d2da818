"""Optical flow per video, stored as float16 HDF5: ``flow[t]`` is the flow from frame t-1 to t.

Backends, one module each in this package: ``dis`` (OpenCV DIS) and ``farneback``
(:mod:`.opencv`) on grey frames, weight-free, CPU; ``flownet2`` (:mod:`.flownet2`) and ``raft``
(:mod:`.raft`, torchvision) on RGB frames, from local weight files, on the GPU when one is
present. ``flow[0]`` is zero (no previous frame). Every flow is stored at the dataset's working
resolution (``dataset.work_height``; attrs ``work_height``, ``work_width``), its vectors in pixels
of that resolution whatever the frame size, so thresholds and statistics in pixels mean the same
on small and large footage; the weight-free backends also compute it there (large frames cost
less), the networks at their own input size. With ``downscale`` > 1 the field is stored at a
further reduced resolution, its vectors still in working pixels, so crops read the same values
either way; vectors are rounded to ``quantum`` px. :func:`box_scale` maps frame-pixel boxes onto
the stored field.

Adding a backend: a module here with a factory ``(settings) -> FlowBackend``, one line in
``BACKENDS``, and its name in the schema's ``flow.backend`` enum (tests/test_registries.py checks that
the two agree). This module imports no torch: the STC and scoring stages use :func:`quantize`.
"""

from __future__ import annotations

import importlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import cv2
import h5py
import numpy as np

from vad_pipeline.datasets import Video, iter_frames
from vad_pipeline.datasets.video import frame_size, work_size
from vad_pipeline.io import VadError, atomic_path
from vad_pipeline.progress import Progress

PairsFn = Callable[[list[np.ndarray], list[np.ndarray]], list[np.ndarray]]


@dataclass
class FlowBackend:
    """``fn`` maps frames t-1 and t (lists of equal length) to flows (H, W, 2) float32 in px."""

    fn: PairsFn
    gray: bool
    batch_size: int = 1


# flow.backend -> "module:factory" in this package, imported on use (the deep ones need torch)
BACKENDS: dict[str, str] = {
    "dis": "opencv:make_dis",
    "farneback": "opencv:make_farneback",
    "flownet2": "flownet2:make_flownet2",
    "raft": "raft:make_raft",
}


def factory(backend: str) -> Callable[[dict], FlowBackend]:
    """The factory of a registered backend: settings ``flow.<backend>`` -> FlowBackend."""
    if backend not in BACKENDS:
        raise VadError(f"config: flow.backend {backend!r} is not available (have {sorted(BACKENDS)})")
    module, name = BACKENDS[backend].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def make_backend(cfg: dict) -> FlowBackend:
    backend = cfg["flow"]["backend"]
    return factory(backend)(cfg["flow"].get(backend, {}))


# backends that compute at the working resolution (the networks: at their own input size)
AT_WORK_SIZE = ("dis", "farneback")


def to_stored(flow: np.ndarray, work: tuple[int, int], factor: int) -> np.ndarray:
    """A flow (h, w, 2) in pixels of its own resolution as stored: vectors in pixels of the
    ``work`` (height, width) resolution, the field at 1/``factor`` of it (area averaging)."""
    h, w = flow.shape[:2]
    if (h, w) != tuple(work):
        flow = flow * np.asarray([work[1] / w, work[0] / h], np.float32)
    size = (work[1] // factor, work[0] // factor)
    return flow if size == (w, h) else cv2.resize(flow, size, interpolation=cv2.INTER_AREA)


def box_scale(f: h5py.File) -> tuple[float, float]:
    """Frame pixels per stored flow pixel (x, y) of an open flow file: a box in frame pixels
    divided by these lies on the stored field (:func:`vad_pipeline.stc.clip_box`)."""
    fl = f["flow"]
    return float(f.attrs["width"]) / fl.shape[2], float(f.attrs["height"]) / fl.shape[1]


def quantize(flow: np.ndarray, quantum: float) -> np.ndarray:
    """Round to multiples of ``quantum`` px (0: keep) and cast to float16.

    Sub-pixel noise far below any flow method's accuracy is what makes raw float16 flow
    incompressible; rounding to 1/16 px makes gzip shrink Ped2's flow about tenfold.
    """
    if quantum > 0:
        flow = np.round(flow / quantum) * quantum
    return flow.astype(np.float16)


def frame_pairs(frames: Iterator[np.ndarray], batch: int) -> Iterator[tuple[int, list[tuple]]]:
    """(t of the first pair, [(frame t-1, frame t), ...]) in runs of ``batch`` consecutive pairs."""
    pairs: list[tuple] = []
    prev, first = None, 1
    for t, frame in enumerate(frames):
        if prev is not None:
            pairs.append((prev, frame))
            if len(pairs) == batch:
                yield first, pairs
                pairs, first = [], t + 1
        prev = frame
    if pairs:
        yield first, pairs


def flow_video(video: Video, cfg: dict, out: str) -> None:
    """Compute and store the flow of every frame of ``video``.

    Streaming: memory holds one batch of frames (the OpenCV backends: one pair), whatever the
    video length."""
    from vad_pipeline.accel import Batcher  # torch: only here, not for quantize's users

    backend = make_backend(cfg)
    factor, level, quantum = cfg["flow"]["downscale"], cfg["flow"]["compression"], cfg["flow"]["quantum"]
    batcher = Batcher(backend.batch_size, f"flow {video.source}")
    h, w = frame_size(video)
    work = work_size(h, w, cfg["dataset"]["work_height"])
    if cfg["flow"]["backend"] in AT_WORK_SIZE:
        video = replace(video, work=work)
    frames = iter_frames(video, gray=backend.gray)
    head = next(frames, None)
    if head is None:
        raise VadError(f"{video.source}: no frames")
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        hs, ws = work[0] // factor, work[1] // factor
        dset = f.create_dataset(
            "flow", shape=(video.n_frames, hs, ws, 2), dtype=np.float16,
            chunks=(1, hs, ws, 2), compression="gzip" if level else None,
            compression_opts=level or None, shuffle=bool(level),
        )
        f.attrs.update(height=h, width=w, work_height=work[0], work_width=work[1], downscale=factor,
                       quantum=quantum, backend=cfg["flow"]["backend"])
        dset[0] = 0
        # frame 0 has no flow (zeros): counted done, so that the last pair ends the count
        progress = Progress(f"flow {video.split}/{video.name}", video.n_frames, "frames")
        progress.update(1)
        for first, pairs in frame_pairs(itertools.chain([head], frames), backend.batch_size):
            flows = batcher(lambda ps: backend.fn([a for a, _ in ps], [b for _, b in ps]), pairs)
            for k, fl in enumerate(flows):
                dset[first + k] = quantize(to_stored(np.asarray(fl, np.float32), work, factor), quantum)
            progress.update(len(pairs))
