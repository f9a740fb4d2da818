"""Per-object anomaly scores.

``infer`` runs the trained model over an STC file and keeps the raw terms per object:
S_f = 1 - cos(f_a, f_m) (feature inconsistency; both seed models, the term ``model.feature_term``)
and S_p = ||x_hat - x||^2 (prediction error).
``fuse`` z-scores each with the mean/std of the *training* cubes and forms
S = w_f * z(S_f) + w_p * z(S_p), so a change of weights never needs the model again.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from vad_pipeline.accel import flush_denormals
from vad_pipeline.io import VadError, read_csv, write_csv, write_json
from vad_pipeline.stc import INDEX, STCDataset, read_index
from vad_pipeline.train import compute_terms, load_model, pick_device

log = logging.getLogger(__name__)


@torch.inference_mode()
def infer(model_path: str, stc_path: str, out: str, cfg: dict) -> pd.DataFrame:
    device = pick_device(cfg["device"])
    flush_denormals(device)
    model, state = load_model(model_path, device)
    ds = STCDataset(stc_path, flow_scale=state["flow_scale"])
    if ds.app_shape[0] - 1 != state["in_frames"] or ds.app_shape[1] != state["channels"]:
        raise VadError(f"{stc_path}: cubes of shape {ds.app_shape} do not fit the model in {model_path}")
    s_f = np.empty(len(ds), np.float64)
    s_p = np.empty(len(ds), np.float64)
    bs = cfg["score"]["batch_size"]
    for idx, app, flow in tqdm(ds.blocks(max(bs, 4096)), total=-(-len(ds) // max(bs, 4096)), desc="infer"):
        for s in range(0, len(app), bs):
            terms = compute_terms(model, app[s : s + bs].to(device), flow[s : s + bs].to(device))
            feature = terms.get(model.feature_term)  # absent without a motion stream: NaN, z = 0 in fuse
            s_f[idx[s : s + bs]] = feature.cpu().numpy() if feature is not None else np.nan
            s_p[idx[s : s + bs]] = terms["int"].cpu().numpy()
    df = read_index(stc_path)
    df["s_f"], df["s_p"] = s_f, s_p
    write_csv(out, df)
    return df


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
