"""Running a flow network on batches of frames: shared by the deep backends (flownet2, raft)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from vad_pipeline.io import VadError


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
