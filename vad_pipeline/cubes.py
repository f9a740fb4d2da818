"""STC files as model input, for training and inference: the block reader and the one conversion
from stored samples (uint8 frames, float16 flows) to the models' float tensors."""

from __future__ import annotations

from collections.abc import Iterator

import h5py
import numpy as np
import torch

from vad_pipeline.io import VadError
from vad_pipeline.stc import missing_parts


def read_block(f: h5py.File, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
    """Samples ``start:end`` of an open STC file as stored: one contiguous read per dataset."""
    return f["app"][start:end], f["flow"][start:end]


def to_model(app: torch.Tensor, flow: torch.Tensor, flow_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Stored samples -> frames in [-1, 1] and flows / ``flow_scale``, float32. The stored dtypes
    (uint8, float16) make ``.float()`` a copy, so the in-place steps never touch the input."""
    return app.float().div_(127.5).sub_(1.0), flow.float().div_(flow_scale)


class STCDataset(torch.utils.data.Dataset):
    """Samples of an STC file as float tensors, read on demand (the file is never loaded whole).

    ``__getitem__`` gives one sample; :meth:`blocks` yields contiguous blocks, shuffled inside
    and in order when ``rng`` is given, which reads compressed chunks once per epoch.
    Frames are scaled to [-1, 1]; flows are divided by ``flow_scale``.
    """

    def __init__(self, path: str, flow_scale: float = 1.0):
        self.path, self.flow_scale = str(path), flow_scale
        with h5py.File(self.path, "r") as f:
            if "app" not in f or "flow" not in f:
                raise VadError(f"{path}: not an STC file (no 'app'/'flow' datasets)")
            missing = missing_parts(f)
            if missing:
                raise VadError(f"{path}: the cubes it gathers are in {len(missing)} file(s) that are not there "
                               f"(e.g. {missing[0]}); rerun the stc rules (snakemake --forcerun stc_video)")
            self.n = f["app"].shape[0]
            self.app_shape, self.flow_shape = f["app"].shape[1:], f["flow"].shape[1:]
        self._f: h5py.File | None = None

    def __len__(self) -> int:
        return self.n

    def _file(self) -> h5py.File:
        if self._f is None:  # opened lazily so that DataLoader workers each get their own handle
            self._f = h5py.File(self.path, "r")
        return self._f

    def _convert(self, app: np.ndarray, flow: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return to_model(torch.from_numpy(app), torch.from_numpy(flow), self.flow_scale)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        f = self._file()
        return self._convert(f["app"][i], f["flow"][i])

    def blocks(self, block: int, rng: np.random.Generator | None = None) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
        """Yield (sample indices, app, flow) for blocks of about ``block`` samples."""
        f = self._file()
        starts = np.arange(0, self.n, block)
        if rng is not None:
            starts = rng.permutation(starts)
        for s in starts:
            e = min(s + block, self.n)
            app, flow = self._convert(*read_block(f, s, e))
            order = rng.permutation(e - s) if rng is not None else np.arange(e - s)
            yield np.arange(s, e)[order], app[order], flow[order]
