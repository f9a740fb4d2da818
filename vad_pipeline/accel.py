"""Device choice and batched inference shared by the GPU-capable stages (train, score, deep backends)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from vad_pipeline.io import VadError

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


def pick_device(name: str) -> torch.device:
    """``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise VadError(f"config: device is {name!r} but no CUDA device is available")
    return torch.device(name)


def flush_denormals(device: torch.device) -> None:
    """On the CPU, treat subnormal floats as zero (process-wide).

    Why: a layer that only weight decay moves (an encoder whose output no loss uses, e.g. E_phi
    beyond the kept skips of the Table 4 variants) decays into subnormal weights, and x86
    arithmetic on those is slow: such a training slowed from 280 to 135 samples/s by epoch 13.
    Values below 1.2e-38 carry nothing the models need.
    """
    if device.type == "cpu":
        torch.set_flush_denormal(True)


def is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()


class Batcher:
    """Runs ``fn`` over items in batches; out of GPU memory, it retries at half the batch size.

    The lowered size is kept for later calls (the next batches of the same video); a batch of
    one that still does not fit is an error. ``fn`` returns one result per item.
    """

    def __init__(self, batch_size: int, what: str = "inference"):
        self.batch_size = max(1, int(batch_size))
        self.what = what

    def __call__(self, fn: Callable[[Sequence[T]], list[R]], items: Sequence[T]) -> list[R]:
        out: list[R] = []
        i = 0
        while i < len(items):
            chunk = items[i:i + self.batch_size]
            try:
                res = fn(chunk)
            except (torch.OutOfMemoryError, RuntimeError) as e:
                if not is_oom(e):
                    raise
                if self.batch_size == 1:
                    raise VadError(f"{self.what}: out of GPU memory even with a batch of one") from e
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                self.batch_size //= 2
                log.warning("%s: out of GPU memory; batch size lowered to %d", self.what, self.batch_size)
                continue
            out.extend(res)
            i += len(chunk)
        return out


WEIGHTS_HELP = "README, section 'Reproduce the papers'"
# where each network's official weights come from (nothing is downloaded at run time)
WEIGHTS_SOURCE = {
    "FlowNet2": "FlowNet2_checkpoint.pth.tar, linked from the README of NVIDIA's flownet2-pytorch "
                "repository, saved as e.g. weights/FlowNet2_checkpoint.pth.tar",
    "RAFT-large": "torchvision's Raft_Large_Weights file (raft_large_C_T_SKHT_V2-*.pth), saved as e.g. weights/raft_large.pth",
    "RAFT-small": "torchvision's Raft_Small_Weights file (raft_small_C_T_V2-*.pth), saved as e.g. weights/raft_small.pth",
    "MMDetection detector": "the COCO Cascade R-CNN R101-FPN 1x weights of the MMDetection model zoo "
                            "(configs/cascade_rcnn), saved as e.g. weights/cascade_rcnn_r101_fpn_1x_coco.pth",
}


def load_state(model: nn.Module, path: str | Path, what: str, key: str = "",
               meta: dict | None = None) -> nn.Module:
    """Load a local checkpoint strictly (``weights_only=True``), accepting a bare or wrapped state dict.

    Wrapped means a dict with a ``state_dict`` (NVIDIA's .pth.tar, mmengine) or ``model`` key.
    ``key`` names the config entry of the path, for the error message; ``meta``, when given,
    receives the checkpoint's ``meta`` entry (mmengine keeps class names there).
    """
    where = f"config {key}" if key else f"{what} weights"
    get = f"get {WEIGHTS_SOURCE[what]}; " if what in WEIGHTS_SOURCE else ""
    if not str(path):
        raise VadError(f"{where} is not set: {what} needs a local weight file ({get}{WEIGHTS_HELP})")
    path = Path(path)
    if not path.is_file():
        raise VadError(f"{where}: no file at {str(path)!r} ({get}{WEIGHTS_HELP})")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means the same to the user
        raise VadError(f"{path}: cannot be read as a {what} checkpoint with weights_only=True: {e}") from e
    state = ckpt
    if isinstance(ckpt, dict):
        wrapper = next((k for k in ("state_dict", "model") if isinstance(ckpt.get(k), dict)), None)
        state = ckpt[wrapper] if wrapper else ckpt
        if meta is not None and isinstance(ckpt.get("meta"), dict):
            meta.update(ckpt["meta"])
    if not isinstance(state, dict):
        raise VadError(f"{path}: not a state dict (found {type(state).__name__})")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    missing, unexpected = set(model.state_dict()) - set(state), set(state) - set(model.state_dict())
    if missing or unexpected:
        raise VadError(
            f"{path}: not a {what} checkpoint: {len(missing)} missing keys (e.g. {sorted(missing)[:3]}), "
            f"{len(unexpected)} unexpected keys (e.g. {sorted(unexpected)[:3]})"
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise VadError(f"{path}: shapes do not match {what}: {e}") from e
    return model
