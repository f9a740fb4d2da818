"""Optical flow per video, stored as float16 HDF5: ``flow[t]`` is the flow from frame t-1 to t.

Backends ``dis`` (OpenCV DIS) and ``farneback``. ``flow[0]`` is zero (no previous frame). With
``downscale`` > 1 the field is stored at reduced resolution, its vectors still in full-resolution
pixels, so crops read the same values either way; vectors are rounded to ``quantum`` px.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import h5py
import numpy as np
from tqdm import tqdm

from vad_pipeline.datasets import Video, iter_frames
from vad_pipeline.io import VadError, atomic_path

FlowFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


def make_dis(p: dict) -> FlowFn:
    dis = cv2.DISOpticalFlow_create(DIS_PRESETS[p["preset"]])
    return lambda prev, cur: dis.calc(prev, cur, None)


def make_farneback(p: dict) -> FlowFn:
    args = (p["pyr_scale"], p["levels"], p["winsize"], p["iterations"], p["poly_n"], p["poly_sigma"], 0)
    return lambda prev, cur: cv2.calcOpticalFlowFarneback(prev, cur, None, *args)


BACKENDS: dict[str, Callable[[dict], FlowFn]] = {"dis": make_dis, "farneback": make_farneback}


def make_flow_fn(cfg: dict) -> FlowFn:
    backend = cfg["flow"]["backend"]
    if backend not in BACKENDS:
        raise VadError(f"config: flow.backend {backend!r} is not available (have {sorted(BACKENDS)})")
    return BACKENDS[backend](cfg["flow"].get(backend, {}))


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


def flow_video(video: Video, cfg: dict, out: str) -> None:
    """Compute and store the flow of every frame of ``video`` (streaming, one frame in memory)."""
    fn = make_flow_fn(cfg)
    factor = cfg["flow"]["downscale"]
    level = cfg["flow"]["compression"]
    quantum = cfg["flow"]["quantum"]
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        dset, prev = None, None
        for t, gray in enumerate(tqdm(iter_frames(video, gray=True), total=video.n_frames,
                                      desc=f"flow {video.split}/{video.name}", leave=False)):
            if dset is None:
                h, w = gray.shape
                hs, ws = h // factor, w // factor
                dset = f.create_dataset(
                    "flow", shape=(video.n_frames, hs, ws, 2), dtype=np.float16,
                    chunks=(1, hs, ws, 2), compression="gzip" if level else None,
                    compression_opts=level or None, shuffle=bool(level),
                )
                f.attrs.update(height=h, width=w, downscale=factor, quantum=quantum, backend=cfg["flow"]["backend"])
                dset[0] = 0
            else:
                dset[t] = quantize(downscale_flow(fn(prev, gray), factor), quantum)
            prev = gray


def read_flow(path: str, t: int | slice) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f["flow"][t].astype(np.float32)
