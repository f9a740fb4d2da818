"""Per-object anomaly scores from the raw terms that :mod:`vad_pipeline.infer` wrote.

``fuse`` z-scores S_f and S_p with the mean/std of the *training* cubes (of the object's own
camera, ``cameras.normalize``) and forms
S = w_f * z(S_f) + w_p * z(S_p), so a change of weights never needs the model again. Given the
motion stage's S_m (:mod:`vad_pipeline.object_motion`, one row per detected object, joined on ``INDEX``),
it is z-scored with the training objects' S_m the same way and ``w_m * z(S_m)`` added; with
``w_m: 0`` the score is exactly the two-term one. No torch import: rescoring runs without it.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from vad_pipeline.io import VadError, read_csv, write_csv, write_json
from vad_pipeline.standardise import zscore, zstats
from vad_pipeline.stc import INDEX

log = logging.getLogger(__name__)


def _join_motion(df: pd.DataFrame, motion_csv: str, objects_csv: str) -> pd.DataFrame:
    """``df`` (the objects of ``objects_csv``) with the motion stage's ``s_m`` of each object. Both
    come from the same detections, so an object without an S_m row is an error naming the files
    (its z(S_m) would otherwise be 0, silently)."""
    m = read_csv(motion_csv, INDEX + ["s_m"])[INDEX + ["s_m"]].drop_duplicates(INDEX)
    out = df.drop(columns=["s_m"], errors="ignore").merge(m, on=INDEX, how="left", indicator=True)
    missing = out["_merge"] != "both"
    if missing.any():
        first = out[missing].iloc[0]
        raise VadError(f"{motion_csv}: no S_m for {int(missing.sum())} of the {len(out)} objects of {objects_csv} "
                       f"(the first: video {first['video']} frame {first['frame']} box {first['x1']}, {first['y1']}, "
                       f"{first['x2']}, {first['y2']}); the two come from other detections: rerun the motion rules")
    return out.drop(columns=["_merge"])


def camera_z(train: pd.DataFrame, test: pd.DataFrame, col: str, by_camera: bool) -> tuple[np.ndarray, dict]:
    """z-scores of ``test[col]`` with the mean and spread of ``train[col]``: of the same camera
    (``camera`` columns) when ``by_camera``, else of all training rows; and those statistics
    (pooled ones first, then per camera where there are several). A camera with test rows but no
    training value of ``col`` is an error naming it: another camera's statistics would judge it."""
    mu, sd = zstats(train[col].to_numpy(float))
    stats: dict = {"mean": mu, "std": sd}
    z = zscore(test[col].to_numpy(float), (mu, sd))
    cams = sorted(set(train["camera"]) | set(test["camera"]))
    if by_camera and len(cams) > 1:
        stats["cameras"] = {}
        for cam in cams:
            values = train.loc[train["camera"] == cam, col].to_numpy(float)
            mine = (test["camera"] == cam).to_numpy()
            if not np.isfinite(values).any():
                if mine.any() and np.isfinite(test.loc[mine, col].to_numpy(float)).any():
                    raise VadError(f"camera {cam}: no training value of {col} (its training videos have no "
                                   f"{'frame' if col == 's_c' else 'detected object'}), so its test scores cannot be "
                                   "z-scored by its own footage; add normal footage of it, or set cameras.normalize: pooled")
                continue
            m_mu, m_sd = zstats(values)
            stats["cameras"][str(cam)] = {"mean": m_mu, "std": m_sd}
            z[mine] = zscore(test.loc[mine, col].to_numpy(float), (m_mu, m_sd))
    return z, stats


def fuse(train_csv: str, test_csv: str, out: str, cfg: dict, stats_out: str | None = None,
         motion: tuple[str, str] | None = None, cameras: dict[str, str] | None = None,
         weights: str | None = None) -> pd.DataFrame:
    """``motion``: the motion stage's (train, test) CSVs, for S_m; ``cameras``: {video: camera}
    (``cameras.normalize: camera`` z-scores each object with its own camera's training objects);
    ``weights``: the validation's weights.json (``score.weights: auto``: each camera's weights)."""
    from vad_pipeline.datasets.cameras import of
    from vad_pipeline.validation import per_row, weights_for

    cols = INDEX + ["s_f", "s_p"]
    train, test = read_csv(train_csv, cols), read_csv(test_csv, cols)
    if motion:
        train, test = _join_motion(train, motion[0], train_csv), _join_motion(test, motion[1], test_csv)
    train["camera"], test["camera"] = of(train["video"], cameras or {}), of(test["video"], cameras or {})
    by_camera = bool(cameras) and cfg["cameras"]["normalize"] == "camera"
    default, chosen = weights_for(cfg, weights)
    w = {k: per_row(test["camera"], default, chosen, k) for k in ("w_f", "w_p", "w_m") if k in default}
    stats = {}
    for term in ("f", "p"):
        z, st = camera_z(train, test, f"s_{term}", by_camera)
        test[f"z_{term}"] = np.nan_to_num(z, nan=0.0)  # a model without a motion stream has no S_f
        stats[f"s_{term}"] = {**st, "weight": default[f"w_{term}"]}
    test["score"] = w["w_f"] * test["z_f"] + w["w_p"] * test["z_p"]
    if motion:
        z, st = camera_z(train, test, "s_m", by_camera)
        test["z_m"] = z   # every object has its S_m (_join_motion)
        stats["s_m"] = {**st, "weight": default["w_m"]}
        if (w["w_m"] != 0).any():   # w_m = 0 leaves the two-term score untouched, bit for bit
            test["score"] = test["score"] + w["w_m"] * test["z_m"]
    if chosen:
        stats["camera_weights"] = chosen
    log.info("z-score statistics from %d training cubes: %s", len(train), stats)
    write_csv(out, test)
    if stats_out:
        write_json(stats_out, stats)
    return test
