"""Raw per-object terms of a trained model over an STC file (torch; :mod:`vad_pipeline.fusion`
fuses them without it): S_f = 1 - cos(f_a, f_m) (feature inconsistency; both seed models, the
term ``model.feature_term``) and S_p = ||x_hat - x||^2 (prediction error).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch

from vad_pipeline.accel import flush_denormals, pick_device
from vad_pipeline.cubes import STCDataset
from vad_pipeline.io import VadError, write_csv
from vad_pipeline.progress import Progress
from vad_pipeline.stc import read_index
from vad_pipeline.train import compute_terms, load_model

log = logging.getLogger(__name__)


@torch.inference_mode()
def infer(model_path: str, stc_path: str, out: str, cfg: dict, threads: int = 0, max_cubes: int = 0) -> pd.DataFrame:
    """``INDEX`` + ``s_f``, ``s_p`` of every cube of ``stc_path`` with ``threads`` torch threads
    (the rule's; 0: torch's setting); a file without cubes (a test split in which nothing was
    detected) gives the header alone, the model left unloaded. ``max_cubes`` > 0: of every s-th
    cube only, s the smallest that keeps at most that many (``score.train_cubes``: the training
    split's terms serve only their z-statistics, which a regular sample gives)."""
    if threads > 0:
        torch.set_num_threads(threads)
    ds = STCDataset(stc_path)   # refuses a file that is not an STC file; reads no sample
    if len(ds) == 0:
        log.warning("%s: no object was detected in the test split: no cube to score, %s has no rows", stc_path, out)
        df = read_index(stc_path).assign(s_f=np.zeros(0), s_p=np.zeros(0))
        write_csv(out, df)
        return df
    device = pick_device(cfg["device"])
    flush_denormals(device)
    model, state = load_model(model_path, device)
    ds.flow_scale = state["flow_scale"]
    if ds.app_shape[0] - 1 != state["in_frames"] or ds.app_shape[1] != state["channels"]:
        raise VadError(f"{stc_path}: cubes of shape {ds.app_shape} do not fit the model in {model_path}")
    s_f = np.empty(len(ds), np.float64)
    s_p = np.empty(len(ds), np.float64)
    bs = cfg["score"]["batch_size"]
    step = -(-len(ds) // max_cubes) if 0 < max_cubes < len(ds) else 1
    log.info("%s: %d cubes%s, device %s, %d threads", stc_path, len(ds),
             f", every {step}-th scored" if step > 1 else "", device, torch.get_num_threads())
    progress = Progress(f"infer {stc_path}", -(-len(ds) // step), "cubes")
    for idx, app, flow in ds.blocks(max(bs, 4096)):
        if step > 1:
            keep = np.flatnonzero(idx % step == 0)
            rows = torch.from_numpy(keep)
            idx, app, flow = idx[keep], app[rows], flow[rows]
        for s in range(0, len(app), bs):
            terms = compute_terms(model, app[s : s + bs].to(device), flow[s : s + bs].to(device))
            feature = terms.get(model.feature_term)  # absent without a motion stream: NaN, z = 0 in fuse
            s_f[idx[s : s + bs]] = feature.cpu().numpy() if feature is not None else np.nan
            s_p[idx[s : s + bs]] = terms["int"].cpu().numpy()
            progress.update(len(idx[s : s + bs]))
    df = read_index(stc_path)
    df["s_f"], df["s_p"] = s_f, s_p
    df = df.iloc[::step].reset_index(drop=True)
    write_csv(out, df)
    return df
