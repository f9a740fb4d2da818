"""Optical flow per video, stored as float16 HDF5: ``flow[t]`` is the flow from frame t-1 to t.

Backends, one module each in this package: ``dis`` (OpenCV DIS) and ``farneback``
(:mod:`.opencv`) on grey frames, weight-free, CPU; ``flownet2`` (:mod:`.flownet2`) and ``raft``
(:mod:`.raft`, torchvision) on RGB frames, from local weight files, on the GPU when one is
present. ``flow[0]`` is zero (no previous frame). With ``downscale`` > 1 the field is stored at
reduced resolution, its vectors still in full-resolution pixels, so crops read the same values
either way; vectors are rounded to ``quantum`` px.

Adding a backend: a module here with a factory ``(settings) -> FlowBackend``, one line in
``BACKENDS``, and its name in the schema's ``flow.backend`` enum (tests/test_registries.py checks that
the two agree). This module imports no torch: the STC and scoring stages use :func:`quantize`.
"""

from __future__ import annotations

import importlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import h5py
import numpy as np
from tqdm import tqdm

from vad_pipeline.datasets import Video, iter_frames
from vad_pipeline.io import VadError, atomic_path

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


def downscale_flow(flow: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return flow
    h, w = flow.shape[:2]
    return cv2.resize(flow, (w // factor, h // factor), interpolation=cv2.INTER_AREA)


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
    frames = iter_frames(video, gray=backend.gray)
    head = next(frames, None)
    if head is None:
        raise VadError(f"{video.source}: no frames")
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        h, w = head.shape[:2]
        hs, ws = h // factor, w // factor
        dset = f.create_dataset(
            "flow", shape=(video.n_frames, hs, ws, 2), dtype=np.float16,
            chunks=(1, hs, ws, 2), compression="gzip" if level else None,
            compression_opts=level or None, shuffle=bool(level),
        )
        f.attrs.update(height=h, width=w, downscale=factor, quantum=quantum, backend=cfg["flow"]["backend"])
        dset[0] = 0
        bar = tqdm(total=video.n_frames, desc=f"flow {video.split}/{video.name}", leave=False)
        for first, pairs in frame_pairs(itertools.chain([head], frames), backend.batch_size):
            flows = batcher(lambda ps: backend.fn([a for a, _ in ps], [b for _, b in ps]), pairs)
            for k, fl in enumerate(flows):
                dset[first + k] = quantize(downscale_flow(np.asarray(fl, np.float32), factor), quantum)
            bar.update(len(pairs))
        bar.close()
