"""Optical flow per video, stored as float16 HDF5: ``flow[t]`` is the flow from frame t-1 to t.

Backends: ``dis`` (OpenCV DIS) and ``farneback`` on grey frames, weight-free, CPU; ``flownet2``
(:mod:`vad_pipeline.flownet2`) and ``raft`` (torchvision) on RGB frames, from local weight files,
on the GPU when one is present. ``flow[0]`` is zero (no previous frame). With ``downscale`` > 1
the field is stored at reduced resolution, its vectors still in full-resolution pixels, so crops
read the same values either way; vectors are rounded to ``quantum`` px.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import h5py
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from vad_pipeline.accel import Batcher, load_state, pick_device
from vad_pipeline.datasets import Video, iter_frames
from vad_pipeline.io import VadError, atomic_path

PairsFn = Callable[[list[np.ndarray], list[np.ndarray]], list[np.ndarray]]
DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


@dataclass
class FlowBackend:
    """``fn`` maps frames t-1 and t (lists of equal length) to flows (H, W, 2) float32 in px."""

    fn: PairsFn
    gray: bool
    batch_size: int = 1


def _per_pair(f: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> PairsFn:
    return lambda prevs, curs: [f(p, c) for p, c in zip(prevs, curs)]


def make_dis(p: dict) -> FlowBackend:
    dis = cv2.DISOpticalFlow_create(DIS_PRESETS[p["preset"]])
    return FlowBackend(_per_pair(lambda prev, cur: dis.calc(prev, cur, None)), gray=True)


def make_farneback(p: dict) -> FlowBackend:
    args = (p["pyr_scale"], p["levels"], p["winsize"], p["iterations"], p["poly_n"], p["poly_sigma"], 0)
    return FlowBackend(_per_pair(lambda prev, cur: cv2.calcOpticalFlowFarneback(prev, cur, None, *args)), gray=True)


def net_size(h: int, w: int, size: list[int], multiple: int, minimum: int = 0) -> tuple[int, int]:
    """The network's input size: ``size`` as given, or (h, w) rounded to the nearest ``multiple``
    (and at least ``minimum``, which must be a multiple too)."""
    minimum = max(minimum, multiple)
    if size:
        nh, nw = size
        if nh % multiple or nw % multiple or min(nh, nw) < minimum:
            raise VadError(f"config: flow size {size} must be multiples of {multiple}, at least {minimum}")
        return nh, nw
    return (max(minimum, round(h / multiple) * multiple), max(minimum, round(w / multiple) * multiple))


class TorchFlow:
    """Runs a flow network on batches of BGR uint8 frames: resize to the network size, predict,
    resize the field back and rescale its vectors to frame pixels."""

    def __init__(self, predict: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 device: torch.device, size: list[int], multiple: int, minimum: int = 0):
        self.predict, self.device, self.size = predict, device, size
        self.multiple, self.minimum = multiple, minimum

    def _tensor(self, frames: list[np.ndarray], nh: int, nw: int) -> torch.Tensor:
        rgb = np.stack([f[..., ::-1] for f in frames])  # BGR -> RGB, as the networks were trained
        x = torch.from_numpy(rgb).to(self.device).permute(0, 3, 1, 2).float()
        return x if x.shape[-2:] == (nh, nw) else F.interpolate(x, (nh, nw), mode="bilinear", align_corners=False)

    @torch.inference_mode()
    def __call__(self, prevs: list[np.ndarray], curs: list[np.ndarray]) -> list[np.ndarray]:
        h, w = prevs[0].shape[:2]
        nh, nw = net_size(h, w, self.size, self.multiple, self.minimum)
        flow = self.predict(self._tensor(prevs, nh, nw), self._tensor(curs, nh, nw)).float()
        if (nh, nw) != (h, w):
            flow = F.interpolate(flow, (h, w), mode="bilinear", align_corners=False)
            flow = flow * torch.tensor([w / nw, h / nh], device=flow.device).view(1, 2, 1, 1)
        return list(flow.permute(0, 2, 3, 1).cpu().numpy())


def make_flownet2(p: dict) -> FlowBackend:
    from vad_pipeline.flownet2 import FlowNet2

    device = pick_device(p["device"])
    model = load_state(FlowNet2(), p["checkpoint"], "FlowNet2", "flow.flownet2.checkpoint").eval().to(device)
    return FlowBackend(TorchFlow(model, device, p["size"], 64), gray=False, batch_size=p["batch_size"])


def build_raft(variant: str) -> torch.nn.Module:
    """torchvision's RAFT (``large`` or ``small``), untrained: weights come from a local file."""
    try:
        from torchvision.models import optical_flow
    except ImportError as e:
        raise VadError(
            "flow.backend raft needs torchvision (the optional extra: pip install -e '.[raft]')"
        ) from e
    return {"large": optical_flow.raft_large, "small": optical_flow.raft_small}[variant](weights=None, progress=False)


def make_raft(p: dict) -> FlowBackend:
    device = pick_device(p["device"])
    model = load_state(build_raft(p["variant"]), p["checkpoint"], f"RAFT-{p['variant']}", "flow.raft.checkpoint").eval().to(device)
    steps = p["iterations"]

    def predict(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return model(a / 127.5 - 1.0, b / 127.5 - 1.0, num_flow_updates=steps)[-1]

    # RAFT's correlation pyramid needs feature maps of 16 px at 1/8 scale
    return FlowBackend(TorchFlow(predict, device, p["size"], 8, minimum=128), gray=False, batch_size=p["batch_size"])


BACKENDS: dict[str, Callable[[dict], FlowBackend]] = {
    "dis": make_dis, "farneback": make_farneback, "flownet2": make_flownet2, "raft": make_raft,
}


def make_backend(cfg: dict) -> FlowBackend:
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


def read_flow(path: str, t: int | slice) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f["flow"][t].astype(np.float32)
