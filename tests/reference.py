"""Reference implementations that only the tests use: slow, literal forms of what the package
computes another way, and small readers of its outputs."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd


def boxes_by_frame(df: pd.DataFrame) -> dict[int, np.ndarray]:
    """A box table (vad_pipeline.detect.COLUMNS) -> {frame: (N, 4) int x1, y1, x2, y2}."""
    return {int(t): g[["x1", "y1", "x2", "y2"]].to_numpy(int) for t, g in df.groupby("frame")}


def read_flow(path: str, t: int | slice) -> np.ndarray:
    """Flow frame(s) ``t`` of a flow file as float32."""
    with h5py.File(path, "r") as f:
        return f["flow"][t].astype(np.float32)
