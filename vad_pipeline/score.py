"""Per-object anomaly scores from the raw terms that :mod:`vad_pipeline.infer` wrote.

``fuse`` z-scores S_f and S_p with the mean/std of the *training* cubes and forms
S = w_f * z(S_f) + w_p * z(S_p), so a change of weights never needs the model again. No torch
import: rescoring runs without it.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from vad_pipeline.io import read_csv, write_csv, write_json
from vad_pipeline.stc import INDEX

log = logging.getLogger(__name__)


def zstats(values: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation (1 where it is 0 or undefined, so z stays finite)."""
    v = values[np.isfinite(values)]
    if len(v) == 0:
        return 0.0, 1.0
    mu, sd = float(v.mean()), float(v.std())
    return mu, sd if sd > 0 else 1.0


def fuse(train_csv: str, test_csv: str, out: str, cfg: dict, stats_out: str | None = None) -> pd.DataFrame:
    cols = INDEX + ["s_f", "s_p"]
    train, test = read_csv(train_csv, cols), read_csv(test_csv, cols)
    w_f, w_p = cfg["score"]["w_f"], cfg["score"]["w_p"]
    stats = {}
    for term, w in (("f", w_f), ("p", w_p)):
        mu, sd = zstats(train[f"s_{term}"].to_numpy())
        z = (test[f"s_{term}"].to_numpy() - mu) / sd
        test[f"z_{term}"] = np.nan_to_num(z, nan=0.0)  # a model without a motion stream has no S_f
        stats[f"s_{term}"] = {"mean": mu, "std": sd, "weight": w}
    test["score"] = w_f * test["z_f"] + w_p * test["z_p"]
    log.info("z-score statistics from %d training cubes: %s", len(train), stats)
    write_csv(out, test)
    if stats_out:
        write_json(stats_out, stats)
    return test
