"""Object detection per video, written as a CSV table: frame, x1, y1, x2, y2, score, class
(x2/y2 exclusive).

Backends, one module each in this package: ``motion`` (:mod:`.motion`, weight-free, CPU) and
``mmdet`` (:mod:`.mmdet`, an MMDetection 3 detector). Adding a backend: a module here with a
function ``(video, settings) -> DataFrame of COLUMNS``, one line in ``BACKENDS``, and its name in
the schema's ``detect.backend`` enum (tests/test_registries.py checks that the two agree).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import pandas as pd

from vad_pipeline.datasets import Video
from vad_pipeline.io import VadError, write_csv

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


def detect_video(video: Video, cfg: dict, out: str) -> pd.DataFrame:
    """Run the configured backend on one video and write its box table atomically."""
    backend = cfg["detect"]["backend"]
    df = backend_fn(backend)(video, cfg["detect"][backend])
    if df.empty and not cfg["detect"]["allow_empty"]:
        raise VadError(
            f"{video.source}: no object detected in any of the {video.n_frames} frames; "
            "lower detect.motion thresholds or set detect.allow_empty: true"
        )
    write_csv(out, df)
    return df
