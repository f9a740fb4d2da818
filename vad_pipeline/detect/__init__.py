"""Object detection per video, written as a CSV table: frame, x1, y1, x2, y2, score, class
(x2/y2 exclusive).

Backends, one module each in this package: ``motion`` (:mod:`.motion`, weight-free, CPU) and
``mmdet`` (:mod:`.mmdet`, an MMDetection 3 detector). Adding a backend: a module here with a
function ``(video, settings) -> DataFrame of COLUMNS``, one line in ``BACKENDS``, and its name in
the schema's ``detect.backend`` enum (tests/test_registries.py checks that the two agree).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable

import numpy as np
import pandas as pd

from vad_pipeline.datasets import Video
from vad_pipeline.datasets.video import frame_size, working
from vad_pipeline.io import VadError, write_csv

log = logging.getLogger(__name__)

COLUMNS = ["frame", "x1", "y1", "x2", "y2", "score", "class"]

# detect.backend -> "module:function" in this package, imported on use (mmdet needs torch, mmcv)
BACKENDS: dict[str, str] = {
    "motion": "motion:detect_motion",
    "mmdet": "mmdet:detect_mmdet",
}


def backend_fn(backend: str) -> Callable[[Video, dict], pd.DataFrame]:
    """The function of a registered backend: (video, settings ``detect.<backend>``) -> boxes."""
    if backend not in BACKENDS:
        raise VadError(f"config: detect.backend {backend!r} is not available (have {sorted(BACKENDS)})")
    module, name = BACKENDS[backend].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


# backends that run at the dataset's working resolution (dataset.work_height); networks resize to
# their own input size and see full frames
AT_WORK_SIZE = ("motion",)


def to_frame_pixels(df: pd.DataFrame, work: tuple[int, int], size: tuple[int, int]) -> pd.DataFrame:
    """Boxes found on frames of the working size ``work`` (height, width) in the pixels of the
    ``size`` frames, widened to whole pixels (the box covers at least what was found)."""
    if tuple(work) == tuple(size) or df.empty:
        return df
    (wh, ww), (h, w) = work, size
    rx, ry = w / ww, h / wh
    df = df.copy()
    df["x1"], df["y1"] = np.floor(df["x1"] * rx).astype(int), np.floor(df["y1"] * ry).astype(int)
    df["x2"] = np.minimum(np.ceil(df["x2"] * rx), w).astype(int)
    df["y2"] = np.minimum(np.ceil(df["y2"] * ry), h).astype(int)
    return df


def detect_video(video: Video, cfg: dict, out: str) -> pd.DataFrame:
    """Run the configured backend on one video and write its box table (frame pixels) atomically."""
    backend = cfg["detect"]["backend"]
    if backend in AT_WORK_SIZE:
        size = frame_size(video)
        video = working(video, cfg["dataset"]["work_height"])
        df = to_frame_pixels(backend_fn(backend)(video, cfg["detect"][backend]), video.work, size)
    else:
        df = backend_fn(backend)(video, cfg["detect"][backend])
    if df.empty and video.split == "train" and not cfg["detect"]["allow_empty"]:
        raise VadError(
            f"{video.source}: no object detected in any of the {video.n_frames} frames of this training "
            "video; lower detect.motion thresholds or set detect.allow_empty: true"
        )
    if df.empty:   # a quiet test video (frozen camera, empty corridor) is normal footage: scored, not refused
        log.warning("%s: no object detected in any of its %d frames", video.source, video.n_frames)
    write_csv(out, df)
    return df
