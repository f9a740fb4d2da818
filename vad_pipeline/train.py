"""Train a seed model on the training STCs: seeded, checkpointed every epoch, resumable.

The model used downstream is the one at the end of the fixed schedule (no selection on test
labels). ``ckpt/last.pt`` holds model, optimiser, scheduler, epoch and RNG states; a killed run
resumes from it. A NaN/Inf loss stops with an error and leaves the last good checkpoint alone.
"""

from __future__ import annotations

import logging
import math
import random
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from vad_pipeline.config import config_hash, model_sections
from vad_pipeline.io import VadError, atomic_path, write_csv
from vad_pipeline.models import build_model
from vad_pipeline.models import losses as L
from vad_pipeline.stc import STCDataset

log = logging.getLogger(__name__)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise VadError("config: device is 'cuda' but no CUDA device is available")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def split_cube(app: torch.Tensor, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, T+1, C, S, S), (B, T, 2, S, S) -> past frames (B, T*C, S, S), flows (B, 2T, S, S), target (B, C, S, S)."""
    past, target = app[:, :-1], app[:, -1]
    return past.flatten(1, 2), flow.flatten(1, 2), target


def compute_terms(model: torch.nn.Module, app: torch.Tensor, flow: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-sample terms, term k weighted by loss.lambda_k in training: int (L_int; S_p), gd (L_gd),
    1 - cos(f_a, f_m) named ``model.feature_term`` (amsrc: sim, mgsm: align; S_f; absent without a
    motion stream) and the model's own terms (``out["terms"]``, e.g. mgsm's compact and div)."""
    frames, flows, target = split_cube(app, flow)
    out = model(frames, flows)
    pred = out["pred"].float()
    terms = {"int": L.intensity(pred, target), "gd": L.gradient(pred, target)}
    if out["f_m"] is not None:
        terms[model.feature_term] = L.cosine_distance(out["f_a"].float(), out["f_m"].float())
    terms.update({k: v.float() for k, v in out.get("terms", {}).items()})
    return terms


def hflip(app: torch.Tensor, flow: torch.Tensor, which: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirror the cubes selected by the bool mask ``which`` left-right; their flow's x component
    changes sign. Only for scenes where walking direction is not a cue of normality."""
    app, flow = app.clone(), flow.clone()
    app[which] = app[which].flip(-1)
    mirrored = flow[which].flip(-1)
    mirrored[:, :, 0] = -mirrored[:, :, 0]
    flow[which] = mirrored
    return app, flow


def model_from_data(cfg: dict, ds: STCDataset) -> torch.nn.Module:
    t1, channels = ds.app_shape[0], ds.app_shape[1]
    return build_model(cfg["model"], in_frames=t1 - 1, channels=channels)


def _ckpt_state(model, opt, sched, epoch, chash, history) -> dict:
    return {
        "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
        "epoch": epoch, "config_hash": chash, "history": history,
        "rng": {"torch": torch.get_rng_state()},  # data order is derived from (seed, epoch) instead
    }


def save(obj: dict, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise VadError(f"{path}: not a readable checkpoint ({exc})") from exc


def train(cfg: dict, stc_path: str, out_model: str, out_log: str, ckpt_dir: str | None = None) -> Path:
    """Train per ``cfg`` (sections model, train, loss, seed, device); write the final model file."""
    tc, lc = cfg["train"], cfg["loss"]
    seed_everything(cfg["seed"])
    if tc["threads"]:
        torch.set_num_threads(tc["threads"])
    device = pick_device(cfg["device"])
    ds = STCDataset(stc_path, flow_scale=tc["flow_scale"])
    model = model_from_data(cfg, ds).to(device)
    names = model.loss_terms
    missing = [f"lambda_{k}" for k in names if f"lambda_{k}" not in lc]
    if missing:
        raise VadError(f"config: loss.{missing[0]} is needed by model {cfg['model']['name']!r}")
    opt = torch.optim.Adam(model.parameters(), lr=tc["lr"], weight_decay=tc["weight_decay"] * lc["lambda_model"])
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=tc["lr_step"], gamma=tc["lr_decay"])
    # epochs and threads change neither the trajectory nor the result of finished epochs
    trained_by = {k: v for k, v in tc.items() if k not in ("epochs", "threads")}
    chash = config_hash({**model_sections(cfg), "train": trained_by, "seed": cfg["seed"]})
    ckpt = Path(ckpt_dir or Path(out_model).parent / "ckpt") / "last.pt"
    start, history = 0, []
    if ckpt.is_file():
        state = load(ckpt)
        if state.get("config_hash") != chash:
            log.warning("%s was written with another configuration; training from scratch", ckpt)
        else:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng"]["torch"])
            start, history = state["epoch"], state["history"]
            log.info("resuming from %s after epoch %d", ckpt, start)
    amp = device.type == "cuda"
    log.info("training %s on %d cubes, device %s, %d parameters", cfg["model"]["name"], len(ds), device,
             sum(p.numel() for p in model.parameters()))
    for epoch in range(start, tc["epochs"]):
        model.train()
        rng = np.random.default_rng([cfg["seed"], epoch])  # data order depends on (seed, epoch) only
        sums, n, t0 = dict.fromkeys(("loss", *names), 0.0), 0, time.perf_counter()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        for _, app, flow in ds.blocks(tc["block"], rng):
            for s in range(0, len(app), tc["batch_size"]):
                a, f = app[s : s + tc["batch_size"]].to(device), flow[s : s + tc["batch_size"]].to(device)
                if len(a) < 2:  # batch norm needs two samples
                    continue
                if tc["hflip"]:
                    a, f = hflip(a, f, torch.from_numpy(rng.random(len(a)) < 0.5).to(device))
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    terms = {k: v.mean() for k, v in compute_terms(model, a, f).items()}
                loss = sum(lc[f"lambda_{k}"] * v for k, v in terms.items())
                if not torch.isfinite(loss):
                    raise VadError(
                        f"{stc_path}: loss became {loss.item()} in epoch {epoch + 1}; stopped, the last good "
                        f"checkpoint ({ckpt}) is kept. Lower train.lr or set train.grad_clip."
                    )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if tc["grad_clip"] > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), tc["grad_clip"])
                opt.step()
                sums["loss"] += loss.item() * len(a)
                for k in names:  # a term the model lacks (no motion stream: no S_f) stays NaN
                    sums[k] += float(terms[k].detach()) * len(a) if k in terms else math.nan
                n += len(a)
        sched.step()
        dt = time.perf_counter() - t0
        row = {"epoch": epoch + 1, **{k: v / max(n, 1) for k, v in sums.items()},
               "lr": opt.param_groups[0]["lr"], "seconds": round(dt, 2), "samples_per_s": round(n / dt, 1),
               "peak_mem_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if device.type == "cuda" else None}
        history.append(row)
        log.info("epoch %d/%d loss %.5f %s  %.0f samples/s", epoch + 1, tc["epochs"], row["loss"],
                 " ".join(f"{k} {row[k]:.5f}" for k in names), row["samples_per_s"])
        save(_ckpt_state(model, opt, sched, epoch + 1, chash, history), ckpt)
    write_csv(out_log, pd.DataFrame(history))
    final = {
        "model": model.state_dict(), "model_cfg": dict(cfg["model"]), "config_hash": chash,
        "in_frames": ds.app_shape[0] - 1, "channels": ds.app_shape[1], "flow_scale": tc["flow_scale"],
    }
    save(final, Path(out_model))
    return Path(out_model)


def load_model(path: str, device: torch.device) -> tuple[torch.nn.Module, dict]:
    """Rebuild a trained model from its file alone (it carries its own config)."""
    state = load(Path(path))
    if "model_cfg" not in state:
        raise VadError(f"{path}: not a model file written by 'vad-pipeline train'")
    model = build_model(state["model_cfg"], state["in_frames"], state["channels"])
    model.load_state_dict(state["model"])
    return model.to(device).eval(), state
