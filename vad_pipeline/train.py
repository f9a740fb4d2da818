"""Train a seed model on the training STCs: seeded, checkpointed every epoch, resumable.

The model used downstream is the one at the end of the fixed schedule (no selection on test
labels). ``ckpt/<run>/last.pt`` (``<run>``: the hash of the run's identity) is written
atomically at every epoch end and holds model, optimiser, scheduler, epoch, loss history, the RNG states (python, numpy, torch, CUDA) and the run's identity:
the settings that shape the trajectory plus a fingerprint of the training cubes, and their hash.

Reproducible resumption: the data order, the hflip draws and, with ``train.max_cubes``, the
epoch's subset of cubes are functions of (seed, epoch, block) only, whatever the number of
DataLoader workers, so a run killed anywhere resumes from the last epoch end and, on the CPU with
the same thread count, ends with bit-identical weights and loss log.
A checkpoint of another run is refused with an error, never reused or overwritten silently.
A NaN/Inf loss stops with an error and leaves the last good checkpoint alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch
from torch import nn

from vad_pipeline.accel import flush_denormals, pick_device
from vad_pipeline.config import config_hash, model_sections
from vad_pipeline.cubes import STCDataset, read_block, to_model
from vad_pipeline.io import VadError, atomic_path, write_csv
from vad_pipeline.models import build_model
from vad_pipeline.models import losses as L
from vad_pipeline.progress import Progress
from vad_pipeline.stc import content_hash, video_list

log = logging.getLogger(__name__)

# train.* keys a checkpoint may differ in and still be resumed: more epochs continue the same
# schedule; the others change how fast an epoch runs, not what it computes (compile and
# channels_last are only applied on CUDA, where they may change the rounding).
RESUMABLE_KEYS = ("epochs", "threads", "workers", "pin_memory", "compile", "channels_last")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """The global RNG states (python, numpy, torch, CUDA), as types ``weights_only`` loading accepts."""
    _, key, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` saved (the parts present)."""
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    if "numpy" in state:
        s = state["numpy"]
        np.random.set_state(("MT19937", s["key"].numpy().astype(np.uint32), s["pos"], s["has_gauss"], s["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def split_cube(app: torch.Tensor, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, T+1, C, S, S), (B, T, 2, S, S) -> past frames (B, T*C, S, S), flows (B, 2T, S, S), target (B, C, S, S)."""
    past, target = app[:, :-1], app[:, -1]
    return past.flatten(1, 2), flow.flatten(1, 2), target


def compute_terms(model: nn.Module, app: torch.Tensor, flow: torch.Tensor,
                  channels_last: bool = False) -> dict[str, torch.Tensor]:
    """Per-sample terms, term k weighted by loss.lambda_k in training: int (L_int; S_p), gd (L_gd),
    1 - cos(f_a, f_m) named ``model.feature_term`` (amsrc: sim, mgsm: align; S_f; absent without a
    motion stream) and the model's own terms (``out["terms"]``, e.g. mgsm's compact and div)."""
    frames, flows, target = split_cube(app, flow)
    if channels_last:
        frames, flows = (x.contiguous(memory_format=torch.channels_last) for x in (frames, flows))
    out = model(frames, flows)
    pred = out["pred"].float()
    terms = {"int": L.intensity(pred, target), "gd": L.gradient(pred, target)}
    if out["f_m"] is not None and out["f_a"] is not None:
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


def model_from_data(cfg: dict, ds: STCDataset) -> nn.Module:
    t1, channels = ds.app_shape[0], ds.app_shape[1]
    return build_model(cfg["model"], in_frames=t1 - 1, channels=channels)


# --------------------------------------------------------------------------- threads


def job_threads(tc: dict, threads: int = 0, device: torch.device | None = None) -> tuple[int, int]:
    """(torch intra-op threads, DataLoader workers) of a job given ``threads`` cores: the rule's
    ``{threads}``; 0 (by hand): ``train.threads``, else ``torch.get_num_threads()``
    ($OMP_NUM_THREADS or torch's default).

    ``train.threads`` and ``train.workers`` pin their number when set. Otherwise the workers are
    what reading needs: on the CPU one from 4 cores up (one reader delivers ~4x what 2 threads
    train, docs/scale.md: below that, reading in the training process costs less than a core kept
    from the model), on CUDA up to 4 (there the reader is the bound); the model gets the other
    cores, so that the job never runs more busy threads than it was given."""
    cores = threads or tc.get("threads") or torch.get_num_threads()
    workers = tc.get("workers")
    if workers is None:
        cuda = device is not None and device.type == "cuda"
        workers = max(min(4, cores - 1), 0) if cuda else (1 if cores >= 4 else 0)
    return tc.get("threads") or max(1, cores - workers), workers


# --------------------------------------------------------------------------- data

# the random stream that picks an epoch's subset (train.max_cubes): never a block's [seed, epoch,
# start] (numpy pads seeds with zeros: [s, e] and [s, e, 0] are one stream)
SUBSET_KEY = 2**32 - 1


def batch_count(length: int, batch_size: int) -> int:
    """Samples of a block of ``length`` that ``TrainData.batches`` yields (a lone rest is skipped)."""
    return sum(min(batch_size, length - s) for s in range(0, length, batch_size) if length - s >= 2)


class _BlockOrder(torch.utils.data.Sampler):
    """Yields the blocks of ``epoch`` in an order drawn from (seed, epoch): (epoch, start) of every
    block of the file, or with ``max_cubes`` below its size (epoch, ((start, end), ...)): runs of
    ``piece`` samples (the file's HDF5 chunk: reading a run decompresses no other chunk) drawn
    without replacement, the last one cut so that exactly ``max_cubes`` samples are read.
    Runs in the main process, so setting ``epoch`` reaches persistent workers too."""

    def __init__(self, n: int, block: int, seed: int, max_cubes: int | None = None, piece: int = 256):
        self.n, self.block, self.seed, self.epoch = n, block, seed, 0
        self.max_cubes = max_cubes if max_cubes is not None and max_cubes < n else None
        self.piece = max(1, min(piece, block))

    def plan(self, epoch: int) -> list[tuple]:
        """The items of ``epoch``, in order."""
        if self.max_cubes is None:
            starts = np.random.default_rng([self.seed, epoch]).permutation(np.arange(0, self.n, self.block))
            return [(epoch, int(s)) for s in starts]
        rng = np.random.default_rng([self.seed, epoch, SUBSET_KEY])
        runs, left = [], self.max_cubes
        for s in rng.permutation(np.arange(0, self.n, self.piece)):
            if left <= 0:
                break
            e = min(int(s) + self.piece, self.n, int(s) + left)
            runs.append((int(s), e))
            left -= e - int(s)
        per = max(1, self.block // self.piece)  # runs per block: at most ``block`` samples held
        return [(epoch, tuple(sorted(runs[i : i + per]))) for i in range(0, len(runs), per)]

    def lengths(self, epoch: int) -> list[int]:
        """Samples in each block of ``epoch``."""
        return [min(key + self.block, self.n) - key if isinstance(key, int) else sum(e - s for s, e in key)
                for _, key in self.plan(epoch)]

    def __iter__(self) -> Iterator[tuple]:
        return iter(self.plan(self.epoch))

    def __len__(self) -> int:
        return len(self.plan(self.epoch)) if self.max_cubes is not None else -(-self.n // self.block)


class _Blocks(torch.utils.data.Dataset):
    """Block (epoch, start) of an STC file as stored (uint8 frames, float16 flows: 4x less memory
    and transfer than float32), shuffled inside by (seed, epoch, start), with each sample's hflip
    draw: the same in whichever process reads it. One HDF5 handle per process, opened lazily."""

    def __init__(self, path: str, n: int, block: int, seed: int):
        self.path, self.n, self.block, self.seed = path, n, block, seed
        self._f: h5py.File | None = None
        self._pid = -1

    def __getstate__(self) -> dict:  # spawn/forkserver workers: no open handle travels
        return {**self.__dict__, "_f": None, "_pid": -1}

    def close(self) -> None:
        if self._f is not None and self._pid == os.getpid():
            self._f.close()
        self._f, self._pid = None, -1

    def __getitem__(self, key: tuple) -> tuple[torch.Tensor, ...]:
        epoch, where = key
        if self._pid != os.getpid():  # never reuse a handle inherited through fork
            self._f, self._pid = h5py.File(self.path, "r"), os.getpid()
        if isinstance(where, int):  # a block of the file
            s, e = where, min(where + self.block, self.n)
            rng = np.random.default_rng([self.seed, epoch, s])
            order = rng.permutation(e - s)
            app, flow = (x[order] for x in read_block(self._f, s, e))  # contiguous read, then shuffle
            flip = rng.random(e - s) < 0.5
            return tuple(torch.from_numpy(x) for x in (s + order, app, flow, flip))
        # runs of an epoch's subset (train.max_cubes): each read contiguously, shuffled together;
        # the first start is the block's key (runs are disjoint, so unique within the epoch)
        parts = [read_block(self._f, s, e) for s, e in where]
        index = np.concatenate([np.arange(s, e) for s, e in where])
        rng = np.random.default_rng([self.seed, epoch, where[0][0]])
        order = rng.permutation(len(index))
        app, flow = (np.concatenate([p[i] for p in parts])[order] for i in (0, 1))
        flip = rng.random(len(index)) < 0.5
        return tuple(torch.from_numpy(x) for x in (index[order], app, flow, flip))

    def __len__(self) -> int:
        return -(-self.n // self.block)


def _seed_worker(worker_id: int) -> None:
    """Seed python and numpy in a DataLoader worker from its torch seed (itself from the run's seed)."""
    s = torch.initial_seed() % 2**32
    random.seed(s)
    np.random.seed(s)


def chunk_rows(path: str, default: int = 256) -> int:
    """Samples per HDF5 chunk of an STC file's cubes: those of its first part in a gathered file
    (stc.gather_split), ``default`` for unchunked storage."""
    with h5py.File(path, "r") as f:
        d = f["app"]
        if d.is_virtual and d.virtual_sources():
            with h5py.File(Path(path).resolve().parent / d.virtual_sources()[0].file_name, "r") as g:
                return chunk_rows(g.filename, default)
        chunks = d.chunks
    return int(chunks[0]) if chunks else default


class TrainData:
    """The training cubes as batches, epoch after epoch: blocks of ``train.block`` samples read by
    ``train.workers`` processes (0: the main one), shuffled per (seed, epoch), converted to float
    on the device batch by batch; with ``train.max_cubes``, that many of them per epoch, a subset
    drawn per (seed, epoch). Memory stays flat: at most workers + 1 stored blocks are held."""

    def __init__(self, path: str, n: int, tc: dict, seed: int, device: torch.device):
        self.tc, self.device = tc, device
        cap = tc.get("max_cubes")  # .get: params of a workflow started before the key existed
        self.order = _BlockOrder(n, tc["block"], seed, cap, chunk_rows(str(path)) if cap else 256)
        self.blocks = _Blocks(str(path), n, tc["block"], seed)
        workers = tc.get("workers") or 0
        self.loader: torch.utils.data.DataLoader | None = torch.utils.data.DataLoader(
            self.blocks, batch_size=None, sampler=self.order, num_workers=workers,
            pin_memory=tc["pin_memory"] and device.type == "cuda",
            persistent_workers=workers > 0, prefetch_factor=1 if workers else None,
            worker_init_fn=_seed_worker, generator=torch.Generator().manual_seed(seed))

    def epoch_size(self, epoch: int) -> int:
        """Samples :meth:`batches` yields in ``epoch``."""
        return sum(batch_count(m, self.tc["batch_size"]) for m in self.order.lengths(epoch))

    def batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(sample indices, frames in [-1, 1], flows / flow_scale) of epoch ``epoch`` (0-based) on
        the device, mirrored where drawn if ``train.hflip``; as ``STCDataset`` converts them."""
        if self.loader is None:
            raise RuntimeError("TrainData is closed")
        self.order.epoch = epoch
        bs, dev, nb = self.tc["batch_size"], self.device, self.device.type == "cuda"
        for idx, app, flow, flip in self.loader:
            for s in range(0, len(app), bs):
                if len(app) - s < 2:  # batch norm needs two samples
                    continue
                a, f = to_model(app[s : s + bs].to(dev, non_blocking=nb),
                                flow[s : s + bs].to(dev, non_blocking=nb), self.tc["flow_scale"])
                if self.tc["hflip"]:
                    a, f = hflip(a, f, flip[s : s + bs].to(dev))
                yield idx[s : s + bs], a, f

    def close(self) -> None:
        """Close the main process's file handle and stop the workers."""
        self.blocks.close()
        self.loader = None


# --------------------------------------------------------------------------- steps


def prepare_model(model: nn.Module, tc: dict, device: torch.device) -> nn.Module:
    """Apply train.channels_last and train.compile (CUDA only; a warning elsewhere); return the
    module to call (compiled or not). Parameters and state dicts stay those of ``model``."""
    cuda = device.type == "cuda"
    for key in ("channels_last", "compile"):
        if tc.get(key) and not cuda:
            log.warning("train.%s is applied on CUDA only; ignored on %s", key, device)
    if tc.get("channels_last") and cuda:
        model.to(memory_format=torch.channels_last)
    return torch.compile(model) if tc.get("compile") and cuda else model


def train_step(fwd: nn.Module, opt: torch.optim.Optimizer, app: torch.Tensor, flow: torch.Tensor,
               lambdas: dict[str, float], grad_clip: float = 0.0, amp: bool = False,
               channels_last: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One optimiser step on a batch: the weighted loss and the batch-mean terms (not synchronised
    beyond the finiteness check). Raises FloatingPointError, before touching the weights, on a
    NaN/Inf loss."""
    with torch.autocast(app.device.type, dtype=torch.bfloat16, enabled=amp):
        terms = {k: v.mean() for k, v in compute_terms(fwd, app, flow, channels_last).items()}
    loss = sum(lambdas[k] * v for k, v in terms.items())
    if not torch.isfinite(loss):
        raise FloatingPointError(f"loss became {loss.item()}")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        nn.utils.clip_grad_norm_(fwd.parameters(), grad_clip)
    opt.step()
    return loss.detach(), {k: v.detach() for k, v in terms.items()}


def peak_mem_mb(device: torch.device) -> float:
    """CUDA: max allocated since the last reset; otherwise this process's peak RSS (workers not counted)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        import resource
    except ImportError:  # not on Windows: current RSS instead
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB elsewhere


# --------------------------------------------------------------------------- checkpoints


def _ckpt_state(model, opt, sched, epoch, identity, history) -> dict:
    return {
        "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
        "epoch": epoch, "config_hash": config_hash(identity), "identity": identity, "history": history,
        "rng": rng_state(),
    }


def save(obj: dict, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise VadError(f"{path}: not a readable checkpoint ({exc})") from exc


def data_fingerprint(path: str) -> dict:
    """What identifies a file of training cubes: sample count, shapes, a hash of its index and one
    of its content, so that cubes shaped by another detector, flow backend or crop setting (the
    same index, other pixels) never resume a checkpoint."""
    h = hashlib.sha256()
    with h5py.File(path, "r") as f:
        for k in ("video", "frame", "box"):
            if k in f:
                h.update(np.ascontiguousarray(f[k][:]).tobytes())
        h.update(json.dumps(video_list(f)).encode())
        return {"samples": int(f["app"].shape[0]), "app": list(f["app"].shape[1:]),
                "flow": list(f["flow"].shape[1:]), "index": h.hexdigest()[:16], "content": content_hash(f)[:16]}


def run_identity(cfg: dict, stc_path: str) -> dict:
    """What a checkpoint must share with this run to be resumed: the model and loss sections the
    model uses, train.* but RESUMABLE_KEYS, the seed, and the training cubes' fingerprint.
    ``train.max_cubes`` null, or a cap the training cubes do not reach (every cube, every epoch),
    is left out: the identity, and so the checkpoint folder, of a run written before the key
    existed (or before a preset set it) stays that of the same run now."""
    cap = cfg["train"].get("max_cubes")
    if cap is not None:
        with h5py.File(stc_path, "r") as f:
            no_cap = cap >= f["app"].shape[0]
    trained_by = {k: v for k, v in cfg["train"].items()
                  if k not in RESUMABLE_KEYS and not (k == "max_cubes" and (v is None or no_cap))}
    return {**model_sections(cfg), "train": trained_by, "seed": cfg["seed"], "data": data_fingerprint(stc_path)}


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _differences(old: dict | None, new: dict, most: int = 5) -> str:
    if not isinstance(old, dict):
        return "its settings are not recorded: an older version wrote it"
    a, b = _flat(old), _flat(new)
    diffs = [f"{k} {a.get(k, '(unset)')} -> now {b.get(k, '(unset)')}"
             for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]
    return "; ".join(diffs[:most]) + (f"; and {len(diffs) - most} more" if len(diffs) > most else "")


def check_checkpoint(state: dict, identity: dict, ckpt: Path, epochs: int) -> None:
    """Refuse (VadError) a checkpoint of another configuration or training set, or one already
    past train.epochs, saying what differs and what to do."""
    fresh = (f"delete it to train from scratch (rm {ckpt}; Snakemake's --forcerun/-R does not remove it, "
             f"it is not a declared output of rule train), or give another checkpoint folder (--ckpt-dir)")
    if state.get("config_hash") != config_hash(identity):
        raise VadError(
            f"{ckpt}: this checkpoint was written with another configuration or other training cubes "
            f"({_differences(state.get('identity'), identity)}); not resuming from it. To use the current "
            f"settings, {fresh}; to continue it, restore the settings it was written with."
        )
    if state["epoch"] > epochs:
        raise VadError(
            f"{ckpt}: this checkpoint holds {state['epoch']} trained epochs but train.epochs is {epochs}, and "
            f"the model after {epochs} epochs was not kept. Set train.epochs >= {state['epoch']} to use it, "
            f"or {fresh}."
        )


# --------------------------------------------------------------------------- training


def train(cfg: dict, stc_path: str, out_model: str, out_log: str, ckpt_dir: str | None = None,
          threads: int = 0) -> Path:
    """Train per ``cfg`` (sections model, train, loss, seed, device) with ``threads`` cores (the
    rule's; 0: torch's setting, see :func:`job_threads`); write the final model file."""
    tc, lc = dict(cfg["train"]), cfg["loss"]
    seed_everything(cfg["seed"])
    device = pick_device(cfg["device"])
    tc["threads"], tc["workers"] = job_threads(tc, threads, device)
    torch.set_num_threads(tc["threads"])
    flush_denormals(device)
    ds = STCDataset(stc_path, flow_scale=tc["flow_scale"])
    model = model_from_data(cfg, ds).to(device)
    names = model.loss_terms
    missing = [f"lambda_{k}" for k in names if f"lambda_{k}" not in lc]
    if missing:
        raise VadError(f"config: loss.{missing[0]} is needed by model {cfg['model']['name']!r}")
    lambdas = {k: lc[f"lambda_{k}"] for k in names}
    fwd = prepare_model(model, tc, device)  # before the optimiser: channels_last changes the parameters
    opt = torch.optim.Adam(model.parameters(), lr=tc["lr"], weight_decay=tc["weight_decay"] * lc["lambda_model"])
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=tc["lr_step"], gamma=tc["lr_decay"])
    identity = run_identity(cfg, stc_path)
    # by default one folder per identity: a run with other settings (what Snakemake starts after a
    # config change) trains afresh beside the old checkpoint instead of tripping over it
    ckpt = (Path(ckpt_dir) if ckpt_dir else Path(out_model).parent / "ckpt" / config_hash(identity)) / "last.pt"
    start, history = 0, []
    if ckpt.is_file():
        state = load(ckpt)
        check_checkpoint(state, identity, ckpt, tc["epochs"])
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        start, history = state["epoch"], state["history"]
        log.info("resuming from %s after epoch %d", ckpt, start)
    cuda = device.type == "cuda"
    amp, channels_last = cuda, bool(tc["channels_last"]) and cuda
    cap = tc.get("max_cubes")
    log.info("training %s on %d cubes%s, device %s, %d parameters, %d threads, %d workers", cfg["model"]["name"],
             len(ds), f" ({cap} per epoch, train.max_cubes)" if cap and cap < len(ds) else "", device,
             sum(p.numel() for p in model.parameters()), torch.get_num_threads(), tc["workers"])
    data = TrainData(stc_path, len(ds), tc, cfg["seed"], device)
    epochs = Progress(f"training {cfg['model']['name']}" + (f" from epoch {start + 1}" if start else ""),
                      tc["epochs"] - start, "epochs")
    try:
        for epoch in range(start, tc["epochs"]):
            model.train()
            sums = torch.zeros(len(names) + 1, dtype=torch.float64, device=device)
            nan = torch.tensor(math.nan, device=device)  # a term the model lacks (no motion stream: no S_f)
            n, t0 = 0, time.perf_counter()
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            cubes = Progress(f"epoch {epoch + 1}/{tc['epochs']}", data.epoch_size(epoch), "cubes")
            for _, a, f in data.batches(epoch):
                try:
                    loss, terms = train_step(fwd, opt, a, f, lambdas, tc["grad_clip"], amp, channels_last)
                except FloatingPointError as exc:
                    raise VadError(
                        f"{stc_path}: {exc} in epoch {epoch + 1}; stopped, the last good checkpoint "
                        f"({ckpt}) is kept. Lower train.lr or set train.grad_clip."
                    ) from exc
                sums += torch.stack([loss, *(terms.get(k, nan) for k in names)]).double() * len(a)
                n += len(a)
                cubes.update(len(a))
            if n == 0:  # an untrained model must not be written as if trained
                raise VadError(
                    f"{stc_path}: no training step in epoch {epoch + 1}: {len(ds)} training cubes in blocks of "
                    f"train.block={tc['block']} give no batch of at least 2 (batch norm needs two samples); "
                    "raise train.block, or give more training video")
            bad = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.isfinite(v).all()]
            if bad:
                raise VadError(
                    f"{stc_path}: weights became NaN/Inf in epoch {epoch + 1} (e.g. {bad[0]}) although the loss "
                    f"stayed finite; stopped, the last good checkpoint ({ckpt}) is kept. Lower train.lr or "
                    "set train.grad_clip.")
            sched.step()
            dt = time.perf_counter() - t0
            means = (sums / max(n, 1)).tolist()
            row = {"epoch": epoch + 1, "loss": means[0], **dict(zip(names, means[1:])),
                   "lr": opt.param_groups[0]["lr"], "seconds": round(dt, 2), "samples_per_s": round(n / dt, 1),
                   "peak_mem_mb": round(peak_mem_mb(device), 1)}
            history.append(row)
            log.info("epoch %d/%d loss %.5f %s  %.0f samples/s, peak %s %.0f MB", epoch + 1, tc["epochs"],
                     row["loss"], " ".join(f"{k} {row[k]:.5f}" for k in names if not math.isnan(row[k])), row["samples_per_s"],
                     "CUDA allocated" if cuda else "RSS", row["peak_mem_mb"])
            save(_ckpt_state(model, opt, sched, epoch + 1, identity, history), ckpt)
            epochs.update(1)
    finally:
        data.close()
    write_csv(out_log, pd.DataFrame(history))
    final = {
        "model": model.state_dict(), "model_cfg": dict(cfg["model"]), "config_hash": config_hash(identity),
        "in_frames": ds.app_shape[0] - 1, "channels": ds.app_shape[1], "flow_scale": tc["flow_scale"],
    }
    save(final, Path(out_model))
    return Path(out_model)


def load_model(path: str, device: torch.device) -> tuple[nn.Module, dict]:
    """Rebuild a trained model from its file alone (it carries its own config)."""
    state = load(Path(path))
    if "model_cfg" not in state:
        raise VadError(f"{path}: not a model file written by 'vad-pipeline train'")
    model = build_model(state["model_cfg"], state["in_frames"], state["channels"])
    model.load_state_dict(state["model"])
    return model.to(device).eval(), state
