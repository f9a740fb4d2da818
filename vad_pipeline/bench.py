"""Per-stage figures of a finished run, from Snakemake's benchmark files and the outputs:
wall time, throughput (frames/s for detect and flow, samples/s for stc, train and infer),
peak RSS and bytes on disk per frame; for the demo also decode throughput per dataset layout."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import h5py
import pandas as pd

from vad_pipeline.io import VadError, write_json


def _bench(root: Path, stage: str) -> pd.DataFrame:
    files = sorted((root / stage).rglob("*.tsv"))
    if not files:
        return pd.DataFrame(columns=["s", "max_rss"])
    return pd.concat([pd.read_csv(f, sep="\t").assign(file=str(f)) for f in files], ignore_index=True)


def _size(paths) -> int:
    return sum(p.stat().st_size for p in paths if p.is_file())


def benchmark(dataset: str, results: str = "results", out: str | None = None, max_cubes: int | None = None) -> dict:
    res = Path(results) / dataset
    broot = Path(results) / "benchmarks" / dataset
    if not res.is_dir():
        raise VadError(f"{res}: no results for dataset {dataset!r}; run the workflow first")
    n_frames = 0
    for flow in (res / "flow").rglob("*.h5"):
        with h5py.File(flow, "r") as f:
            n_frames += f["flow"].shape[0]
    n_cubes = {}
    for split in ("train", "test"):
        p = res / "stc" / f"{split}.h5"
        if p.is_file():
            with h5py.File(p, "r") as f:
                n_cubes[split] = f["app"].shape[0]
    total_cubes = sum(n_cubes.values())
    stages: dict[str, dict] = {}

    def add(stage, units, count, files):
        files = list(files)
        b = _bench(broot, stage)
        secs = float(b["s"].sum()) if len(b) else None
        stages[stage] = {
            "wall_s": round(secs, 2) if secs is not None else None,
            "jobs": int(len(b)),
            f"{units}_per_s": round(count / secs, 1) if secs else None,
            "peak_rss_mb": round(float(pd.to_numeric(b["max_rss"], errors="coerce").max()), 1) if len(b) else None,
            "bytes": _size(files),
            "bytes_per_frame": round(_size(files) / n_frames, 1) if n_frames else None,
        }

    add("detect", "frames", n_frames, (res / "detect").rglob("*.csv"))
    add("flow", "frames", n_frames, (res / "flow").rglob("*.h5"))
    add("stc", "samples", total_cubes, (res / "stc").rglob("*.h5"))   # per-video parts and each split's gather
    epochs = 0
    log = res / "train" / "loss.csv"
    if log.is_file():
        epochs = len(pd.read_csv(log))
    per_epoch = min(max_cubes or n_cubes.get("train", 0), n_cubes.get("train", 0))   # train.max_cubes a epoch
    add("train", "samples", per_epoch * epochs, [res / "train" / "model.pt"])
    add("infer", "samples", total_cubes, (res / "infer").glob("*.csv"))
    add("score", "samples", n_cubes.get("test", 0), [res / "object_scores.csv"])
    add("motion", "frames", n_frames, (res / "motion").rglob("*.csv"))   # S_m: features + terms (+ parts)
    add("cells", "frames", n_frames, (res / "cells").rglob("*.*"))       # S_c: layout, statistics, terms (+ parts)
    result = {"dataset": dataset, "n_frames": n_frames, "n_cubes": n_cubes, "train_epochs": epochs,
              "stages": stages}
    if out:
        write_json(out, result)
    return result


def decode_throughput(cfg: dict, repeats: int = 3) -> dict[str, dict]:
    """Frames/s of reading every video of ``cfg``'s dataset after converting it into each layout
    (best of ``repeats`` passes, grey as detect and flow read them)."""
    import copy

    from vad_pipeline import datasets as D
    from vad_pipeline.datasets.export import export

    videos = {s: [D.get_video(cfg, s, n) for n in D.video_names(cfg, s)] for s in ("train", "test")}
    labels = D.frame_labels(cfg, videos["test"])
    masks = {v.name: D.pixel_masks(cfg, v) for v in videos["test"]}
    out = {}
    with tempfile.TemporaryDirectory(prefix="vad-decode-") as tmp:
        for layout in ("frames", "ucsd", "avenue", "shanghaitech", "videos"):
            section = export(videos["train"], videos["test"], labels, masks, layout, Path(tmp) / layout)
            lcfg = copy.deepcopy(cfg)
            lcfg["dataset"] = {**section, "labelled": True, "fps": section.get("fps")}
            vids = [D.get_video(lcfg, s, n) for s in ("train", "test") for n in D.video_names(lcfg, s)]
            n_frames, best = sum(v.n_frames for v in vids), float("inf")
            for _ in range(repeats):
                t0 = time.perf_counter()
                for v in vids:
                    for _ in D.iter_frames(v, gray=True):
                        pass
                best = min(best, time.perf_counter() - t0)
            size = sum(p.stat().st_size for p in (Path(tmp) / layout).rglob("*") if p.is_file())
            out[layout] = {"frames": n_frames, "frames_per_s": round(n_frames / best, 1),
                           "bytes_per_frame": round(size / n_frames, 1)}
    return out
