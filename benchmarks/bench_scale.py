"""What ShanghaiTech (or an hour of 1080p own footage) costs: a benchmark, not a test.

1. Calibrate: build a ShanghaiTech-shaped set (official layout: training .avi, test JPEG frames)
   of generated cameras (vad_pipeline.camera_set) at the frame size, run the workflow on it with
   the project's ``shanghaitech`` section (root and epochs changed) on ``--cores``, and read every
   job's time and peak RSS from its Snakemake benchmark file: seconds per frame (detect, flow,
   window statistics), per cube (cubes, inference), per cube seen (training, with torch's thread
   scaling measured at 1 and 2 threads), and the S_c job's cost against a model of its
   nearest-neighbour work (builds and queries, timed at growing reference sizes).
2. Predict: the jobs of a target set (ShanghaiTech; one hour of 1080p; the check set) with their
   threads and dependencies, scheduled greedily on N cores as Snakemake runs them (``--cores 8``),
   and the critical path with every job on a node of its own (a 64-core cluster with the Slurm
   profile's threads). Peak RSS per job from what each job holds.
3. Check (``--check``): build a ShanghaiTech-layout set of ``--check-cameras`` cameras and at least
   20,000 frames, predict its wall time on ``--cores`` from the calibration, run it, and compare.

    python benchmarks/bench_scale.py --out docs/scale.json                # ~10 min on 2 cores
    python benchmarks/bench_scale.py --out docs/scale.json --check        # + the check run (~40 min)
    python benchmarks/bench_scale.py --calibration /tmp/cal --out x.json  # reuse a calibration run

Figures are of this machine; where a figure is extrapolated past what it can measure (threads
beyond its cores, a GPU), the JSON says so under ``assumptions``.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import yaml

from vad_pipeline import config as C
from vad_pipeline.camera_set import build

REPO = Path(__file__).resolve().parents[1]   # the workflow it runs: config.yaml, Snakefile
NAME = "shanghaitech"

# ShanghaiTech Campus: 330 training videos (274,515 frames), 107 test videos (42,883 frames), 13 cameras
SHANGHAITECH = {"train_frames": 274_515, "test_frames": 42_883, "train_videos": 330, "test_videos": 107, "cameras": 13}
# one hour at 25 fps from one camera, half of it normal footage to train on, in 10-minute files
HOUR_1080P = {"train_frames": 45_000, "test_frames": 45_000, "train_videos": 3, "test_videos": 3, "cameras": 1}
# threads the rules ask for (workflow/rules/*.smk), capped by --cores; on a cluster the Slurm profile's
RULE_THREADS = {"train": 8, "infer": 8, "cell_terms": 4, "motion_terms": 2}
CLUSTER_THREADS = {"train": 8, "infer": 8, "cell_terms": 8, "motion_terms": 4}
# benchmark file (under results/benchmarks/<name>/) -> rule, and the wildcard it carries
BENCH_RULES = [(r"detect/(train|test)/(.+)\.tsv", "detect"), (r"flow/(train|test)/(.+)\.tsv", "flow"),
               (r"stc/(train|test)/(.+)\.tsv", "stc_video"), (r"stc/(train|test)\.tsv", "stc"),
               (r"train/train\.tsv", "train"), (r"infer/(train|test)\.tsv", "infer"),
               (r"motion/features_(train|test)\.tsv", "motion_features"), (r"motion/terms/(.+)\.tsv", "motion_terms"),
               (r"cells/layout\.tsv", "cell_layout"), (r"cells/stats/(train|test)/(.+)\.tsv", "cell_stats_video"),
               (r"cells/stats_(train|test)\.tsv", "cell_stats"), (r"cells/terms/(.+)/(.+)\.tsv", "cell_terms"),
               (r"score/score\.tsv", "score")]
SMALL = ("cameras", "labels", "gather_motion_terms", "gather_cell_terms", "frame_scores", "evaluate",
         "localisation", "top_anomalies", "pictures", "benchmark")   # seconds each, whatever the size


# ----------------------------------------------------------------------------- measuring

def run_workflow(work: Path, section: dict, epochs: int, cores: int) -> float:
    """The workflow on ``section`` in ``work`` (config.yaml's ``shanghaitech`` section, its root
    and layout replaced, the cpu preset's epochs ``epochs``): its wall seconds."""
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    section = dict(section)
    if isinstance(section.get("cameras"), str):   # the shorthand would replace the section's cameras settings
        section["cameras"] = {"assign": section["cameras"]}
    cfg["datasets"][NAME] = C.deep_merge(cfg["datasets"][NAME], section)
    cfg["datasets"][NAME].pop("frame_size", None)
    cfg.setdefault("presets", {}).setdefault("cpu", {}).setdefault("train", {})["epochs"] = epochs
    (work / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    t0 = time.perf_counter()
    with open(work / "snakemake.log", "w") as log:
        subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--cores",
                        str(cores), f"results/{NAME}/auc.json", f"results/{NAME}/benchmark.json"], cwd=work,
                       check=True, stdout=log, stderr=subprocess.STDOUT)
    return time.perf_counter() - t0


def jobs_of_run(work: Path) -> pd.DataFrame:
    """One row per benchmarked job of a finished run: rule, split, key (video or camera), wall s,
    CPU s, peak RSS MB, and its units (frames, cubes)."""
    res, broot = work / "results" / NAME, work / "results" / "benchmarks" / NAME
    rows = []
    for f in sorted(broot.rglob("*.tsv")):
        rel = f.relative_to(broot).as_posix()
        for pattern, rule in BENCH_RULES:
            m = re.fullmatch(pattern, rel)
            if m:
                b = pd.read_csv(f, sep="\t").iloc[-1]
                g = m.groups()
                rows.append({"rule": rule, "split": g[0] if g and g[0] in ("train", "test") else "",
                             "key": g[-1] if g else "", "s": float(b["s"]),
                             "cpu_s": float(pd.to_numeric(b.get("cpu_time"), errors="coerce") or b["s"]),
                             "rss_mb": float(pd.to_numeric(b["max_rss"], errors="coerce"))})
                break
    jobs = pd.DataFrame(rows)
    frames, cubes = {}, {}
    for split in ("train", "test"):
        for fp in (res / "flow" / split).glob("*.h5"):
            with h5py.File(fp, "r") as h:
                frames[(split, fp.stem)] = h["flow"].shape[0]
        for sp in (res / "stc" / split).glob("*.h5"):
            with h5py.File(sp, "r") as h:
                cubes[(split, sp.stem)] = h["app"].shape[0]
    jobs["frames"] = [frames.get((r.split, r.key), 0) for r in jobs.itertuples()]
    jobs["cubes"] = [cubes.get((r.split, r.key), 0) for r in jobs.itertuples()]
    return jobs


def knn_costs(sizes=(20_000, 100_000, 500_000), queries: int = 20_000) -> dict:
    """Seconds per entry of building a 5-dimensional k-d tree and per query (k 5), on 1 and 2
    threads, at growing reference sizes: the S_c job's units (:func:`cell_work`)."""
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(0)
    out = {"n": list(sizes), "build_s_per_entry": [], "query_s": {1: [], 2: []}}
    for n in sizes:
        x, q = rng.normal(size=(n, 5)), rng.normal(size=(queries, 5))
        t0 = time.perf_counter()
        nn = NearestNeighbors(n_neighbors=5).fit(x)
        out["build_s_per_entry"].append((time.perf_counter() - t0) / n)
        for t in (1, 2):
            nn.set_params(n_jobs=t)
            t0 = time.perf_counter()
            nn.kneighbors(q)
            out["query_s"][t].append((time.perf_counter() - t0) / queries)
    return out


def train_scaling(seconds: float = 8.0) -> dict:
    """Training cubes/s of the ``shanghaitech`` section's model (cpu preset) on 1 and 2 torch
    threads, random cubes; the parallel fraction p of Amdahl's law from their ratio
    (r2 / r1 = 1 / (1 - p + p / 2))."""
    import torch

    from vad_pipeline.models import build_model
    from vad_pipeline.train import prepare_model, train_step

    cfg = C.resolve(C.load(REPO / "config.yaml"), NAME)
    t_past, size, batch = int(cfg["stc"]["t_past"]), int(cfg["stc"]["size"]), int(cfg["train"]["batch_size"])
    channels = 1 if cfg["stc"]["color"] == "gray" else 3
    app = torch.rand(batch, t_past + 1, channels, size, size) * 2 - 1
    flow = torch.randn(batch, t_past, 2, size, size)
    rates, before = {}, torch.get_num_threads()
    for t in (1, 2):
        torch.set_num_threads(t)
        torch.manual_seed(0)
        model = build_model(cfg["model"], t_past, channels)
        lambdas = {k: cfg["loss"][f"lambda_{k}"] for k in model.loss_terms}
        fwd = prepare_model(model, cfg["train"], torch.device("cpu"))
        opt = torch.optim.Adam(model.parameters(), lr=cfg["train"]["lr"])
        train_step(fwd, opt, app, flow, lambdas)   # warm-up
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            train_step(fwd, opt, app, flow, lambdas)
            n += 1
        rates[t] = round(n * batch / (time.perf_counter() - t0), 1)
    torch.set_num_threads(before)
    p = min(max(2 * (1 - rates[1] / rates[2]), 0.0), 1.0)
    return {"cubes_per_s": rates, "parallel_fraction": round(p, 3)}


def amdahl(p: float, threads: int) -> float:
    """Speed-up on ``threads`` threads of a job whose fraction ``p`` runs in parallel."""
    return 1.0 / ((1 - p) + p / max(1, threads))


# ----------------------------------------------------------------------------- the cost model

def cell_work(train_frames: float, test_frames: float, videos: int, windows: int, rows: int,
              reference_frames: int | None, blocks: int = 5, few: int = 2) -> dict:
    """The nearest-neighbour work of one camera's S_c (``cells.rows`` 0, ``cols`` -1): every
    ``step``-th training frame in the reference (cells.reference_frames), each row of windows a
    reference of those frames' windows of the row, rebuilt per training video left out (a camera
    with at most ``few`` videos, cameras.few_videos: per time block of each video); queries: every
    window of the scored training frames and test frames."""
    step = 1 if not reference_frames or train_frames <= reference_frames else math.ceil(train_frames / reference_frames)
    ref_frames = train_frames / step
    entries = ref_frames * windows / rows
    return {"step": step, "entries": entries, "builds": rows * (videos if videos > few else videos * blocks),
            "queries": (ref_frames + test_frames) * windows}


def cell_seconds(work: dict, knn: dict, threads: int) -> float:
    """CPU-model seconds of :func:`cell_work` (builds on one thread, queries on ``threads``; the
    measured per-query cost grows with log n, interpolated there)."""
    n = np.log(knn["n"])
    build = float(np.interp(np.log(work["entries"]), n, knn["build_s_per_entry"])) * work["entries"]
    t = 2 if threads >= 2 else 1
    q = float(np.interp(np.log(work["entries"]), n, knn["query_s"][t], right=None))
    slope = (knn["query_s"][t][-1] - knn["query_s"][t][0]) / (n[-1] - n[0])
    if np.log(work["entries"]) > n[-1]:   # past the largest measured reference: along the log trend
        q = knn["query_s"][t][-1] + slope * (np.log(work["entries"]) - n[-1])
    speed = threads / t if threads > 2 else 1.0   # 2 threads measured; more: linear (assumption)
    return work["builds"] * build + work["queries"] * q / speed


def calibrate(jobs: pd.DataFrame, run: dict, knn: dict, scaling: dict, cores: int) -> dict:
    """Per-unit costs from a calibration run's jobs."""
    def per(rule, unit):
        j = jobs[jobs["rule"] == rule]
        return float(j["s"].sum() / max(j[unit].sum(), 1)) if len(j) else 0.0

    rate = {"detect_s_per_frame": per("detect", "frames"), "flow_s_per_frame": per("flow", "frames"),
            "stc_s_per_cube": per("stc_video", "cubes"), "stats_s_per_frame": per("cell_stats_video", "frames")}
    n_frames, n_cubes = run["frames"], run["cubes"]
    one = jobs.groupby("rule")["s"].agg(["sum", "count", "max"])
    total = lambda r: float(one.loc[r, "sum"]) if r in one.index else 0.0   # noqa: E731
    rate["stc_gather_s_per_cube"] = total("stc") / max(n_cubes, 1)
    rate["stats_gather_s_per_video"] = total("cell_stats") / max(run["videos"], 1)
    rate["layout_s_per_train_frame"] = total("cell_layout") / max(run["train_frames"], 1)
    rate["motion_features_s_per_frame"] = total("motion_features") / max(n_frames, 1)
    rate["motion_terms_s_per_cube"] = total("motion_terms") / max(n_cubes, 1)
    rate["infer_s_per_cube"] = total("infer") / max(n_cubes, 1) * min(RULE_THREADS["infer"], cores)   # 1-thread s
    rate["score_s_per_cube"] = total("score") / max(n_cubes, 1)
    threads = min(RULE_THREADS["train"], cores)
    rate["train_s_per_cube_seen"] = total("train") / max(run["cubes_seen"], 1) * amdahl(scaling["parallel_fraction"], threads)
    # S_c: the measured jobs against the model at this run's shape: the model's factor
    modelled = sum(cell_seconds(cell_work(*c, reference_frames=run["reference_frames"]), knn, min(4, cores))
                   for c in run["cell_cameras"])
    rate["cell_terms_factor"] = total("cell_terms") / modelled if modelled else 1.0
    rate["small_job_s"] = float(jobs[jobs["rule"] == "score"]["s"].mean()) if (jobs["rule"] == "score").any() else 3.0
    rate["windows"], rate["rows"] = run["windows"], run["rows"]
    rate["cubes_per_frame"] = n_cubes / max(n_frames, 1)
    rate["rss_mb"] = jobs.groupby("rule")["rss_mb"].max().round(0).to_dict()
    return rate


def target_jobs(t: dict, rate: dict, cfg: dict, threads: dict, cores: int, gpu_cubes_per_s: float | None = None,
                p_train: float = 0.9) -> list[dict]:
    """The jobs of a target set (even cameras and videos), each {name, threads, s, deps}: its
    seconds on its threads; dependencies by name. ``gpu_cubes_per_s``: train and infer on a GPU
    at that rate (the reader's bound)."""
    cams, tv, sv = t["cameras"], t["train_videos"], t["test_videos"]
    f_tr, f_te = t["train_frames"] / tv, t["test_frames"] / sv
    cpf = rate["cubes_per_frame"]
    jobs: list[dict] = []

    def add(name, s, deps=(), th=1):
        jobs.append({"name": name, "s": max(float(s), 0.5), "deps": list(deps), "threads": max(1, min(th, cores))})

    videos = [("train", i, f_tr) for i in range(tv)] + [("test", i, f_te) for i in range(sv)]
    add("cameras", rate["small_job_s"])
    for split, i, f in videos:
        v = f"{split}{i}"
        add(f"detect:{v}", rate["detect_s_per_frame"] * f, ["cameras"])
        add(f"flow:{v}", rate["flow_s_per_frame"] * f, ["cameras"])
        add(f"stc_video:{v}", rate["stc_s_per_cube"] * f * cpf, [f"detect:{v}", f"flow:{v}"])
    train_v = [f"train{i}" for i in range(tv)]
    test_v = [f"test{i}" for i in range(sv)]
    add("cell_layout", rate["layout_s_per_train_frame"] * t["train_frames"],
        [f"detect:{v}" for v in train_v] + [f"flow:{v}" for v in train_v])
    for split, i, f in videos:
        add(f"cell_stats_video:{split}{i}", rate["stats_s_per_frame"] * f, ["cell_layout", f"flow:{split}{i}"])
    for split, names in (("train", train_v), ("test", test_v)):
        frames = t[f"{split}_frames"]
        add(f"stc:{split}", rate["stc_gather_s_per_cube"] * frames * cpf, [f"stc_video:{v}" for v in names])
        add(f"cell_stats:{split}", rate["stats_gather_s_per_video"] * len(names), [f"cell_stats_video:{v}" for v in names])
        add(f"motion_features:{split}", rate["motion_features_s_per_frame"] * frames,
            [f"detect:{v}" for v in names] + [f"flow:{v}" for v in names])
    cubes_train = t["train_frames"] * cpf
    seen = min(cubes_train, cfg["train"].get("max_cubes") or cubes_train) * cfg["train"]["epochs"]
    th = threads["train"]
    if gpu_cubes_per_s:
        add("train", seen / gpu_cubes_per_s, ["stc:train"], th)
    else:   # one loader worker from 4 cores up (vad_pipeline.train.job_threads)
        torch_threads = max(1, min(th, cores) - (1 if min(th, cores) >= 4 else 0))
        add("train", rate["train_s_per_cube_seen"] * seen / amdahl(p_train, torch_threads), ["stc:train"], th)
    for split in ("train", "test"):
        n = t[f"{split}_frames"] * cpf
        if split == "train" and cfg["score"].get("train_cubes"):   # every s-th training cube (score.train_cubes)
            n = min(n, cfg["score"]["train_cubes"])
        infer_th = min(threads["infer"], cores)
        s = n / gpu_cubes_per_s if gpu_cubes_per_s else rate["infer_s_per_cube"] * n / amdahl(p_train, infer_th)
        add(f"infer:{split}", s, ["train", f"stc:{split}"], threads["infer"])
    blocks = int(cfg["cameras"]["blocks"])
    for c in range(cams):
        add(f"motion_terms:{c}", rate["motion_terms_s_per_cube"] * (t["train_frames"] + t["test_frames"]) * cpf / cams,
            ["motion_features:train", "motion_features:test"], threads["motion_terms"])
        work = cell_work(t["train_frames"] / cams, t["test_frames"] / cams, max(1, round(tv / cams)), rate["windows"],
                         rate["rows"], cfg["cells"].get("reference_frames"), blocks)
        n_bands = max(1, math.ceil((tv + sv) / cams / 50))   # cells.jobs auto: a band per 50 videos
        th = threads["cell_terms"]
        s = cell_seconds(work, KNN, min(th, cores)) * rate["cell_terms_factor"] / n_bands
        for b in range(n_bands):
            add(f"cell_terms:{c}:{b}", s, ["cell_stats:train", "cell_stats:test"], th)
    add("score", rate["score_s_per_cube"] * t["test_frames"] * cpf, ["infer:train", "infer:test"]
        + [f"motion_terms:{c}" for c in range(cams)])
    add("frame_scores", rate["small_job_s"], ["score"] + [j["name"] for j in jobs if j["name"].startswith("cell_terms")])
    add("evaluate", rate["small_job_s"], ["frame_scores"])
    return jobs


KNN: dict = {}   # knn_costs() of this machine, set in main


def schedule(jobs: list[dict], cores: int) -> float:
    """Wall seconds of ``jobs`` on ``cores`` cores, started greedily as they become ready (longest
    remaining path first, as a scheduler that knew the durations would; Snakemake's own order is
    close to it here: the long jobs are also the ones with many dependants)."""
    by = {j["name"]: j for j in jobs}
    tail: dict[str, float] = {}
    children: dict[str, list[str]] = {n: [] for n in by}
    for j in jobs:
        for d in j["deps"]:
            children[d].append(j["name"])
    for j in reversed(jobs):   # jobs are listed after their dependencies
        tail[j["name"]] = j["s"] + max((tail[c] for c in children[j["name"]]), default=0.0)
    waiting = {n: len(by[n]["deps"]) for n in by}
    ready = [(-tail[n], n) for n in by if waiting[n] == 0]
    running: list[tuple[float, str]] = []
    now, free = 0.0, cores
    while ready or running:
        left = []
        for item in sorted(ready):   # longest remaining path first, each that fits in the free cores
            n = item[1]
            if by[n]["threads"] <= free:
                free -= by[n]["threads"]
                heapq.heappush(running, (now + by[n]["s"], n))
            else:
                left.append(item)
        ready = left
        now, n = heapq.heappop(running)
        free += by[n]["threads"]
        for c in children[n]:
            waiting[c] -= 1
            if waiting[c] == 0:
                ready.append((-tail[c], c))
    return now


def critical_path(jobs: list[dict], overhead_s: float = 60.0) -> float:
    """Seconds of the longest dependency chain, each job on its own node, ``overhead_s`` of queue
    and start-up per job on the path (a cluster with nodes to spare)."""
    end: dict[str, float] = {}
    for j in jobs:
        end[j["name"]] = j["s"] + overhead_s + max((end[d] for d in j["deps"]), default=0.0)
    return max(end.values())


def peak_rss_gb(t: dict, rate: dict, cfg: dict) -> dict:
    """Peak RSS per job (GB) at the target's size: measured where a job's memory does not grow with
    the set (per-video jobs, train's blocks), else what grows, added to the measured base."""
    base = {k: v / 1024 for k, v in rate["rss_mb"].items()}
    cams, cpf, w = t["cameras"], rate["cubes_per_frame"], rate["windows"]
    ref = cfg["cells"].get("reference_frames") or t["train_frames"]
    per_cam_ref = min(t["train_frames"] / cams, ref)
    out = {r: base.get(r, 0.3) for r in ("detect", "flow", "stc_video", "cell_stats_video", "train")}
    # S_c: the reference frames' statistics (float32), the camera's test statistics, one row's tree
    out["cell_terms"] = base.get("cell_terms", 0.3) + (per_cam_ref + t["test_frames"] / cams) * w * 5 * 4 / 2**30 \
        + per_cam_ref * w / rate["rows"] * 5 * 8 * 3 / 2**30
    cubes = (t["train_frames"] + t["test_frames"]) * cpf
    out["infer"] = base.get("infer", 1.0) + t["train_frames"] * cpf * 200 / 2**30   # its table of terms
    out["stc"] = base.get("stc", 0.3) + cubes * 30 / 2**30                           # the index of the split
    out["motion_terms"] = base.get("motion_terms", 0.3) + cubes / cams * 7 * 8 * 4 / 2**30
    out["score"] = base.get("score", 0.3) + cubes * 300 / 2**30
    return {k: round(v, 2) for k, v in out.items()}


def predict(t: dict, rate: dict, base: dict, name: str, p_train: float) -> dict:
    """Wall hours on 8 cores (cpu preset), on 8 cores and a GPU (gpu preset: training and inference
    at the reader's rate, train.workers auto: 4 processes), on a 64-core cluster; CPU hours per
    rule and peak RSS per job."""
    cfg, gcfg = C.resolve(base, name), C.resolve({**base, "preset": "gpu"}, name)
    cpu = target_jobs(t, rate, cfg, RULE_THREADS, 8, p_train=p_train)
    gpu = target_jobs(t, rate, gcfg, RULE_THREADS, 8, gpu_cubes_per_s=rate["loader_cubes_per_s"] * 4, p_train=p_train)
    cluster = target_jobs(t, rate, cfg, CLUSTER_THREADS, 64, p_train=p_train)
    stages: dict[str, float] = {}
    for j in cpu:
        stages[j["name"].split(":")[0]] = stages.get(j["name"].split(":")[0], 0.0) + j["s"] * j["threads"]
    rss = peak_rss_gb(t, rate, cfg)
    return {"frames": t["train_frames"] + t["test_frames"], "jobs": len(cpu),
            "wall_h": {"cores8": round(schedule(cpu, 8) / 3600, 2), "cores8_gpu": round(schedule(gpu, 8) / 3600, 2),
                       "cluster64": round(critical_path(cluster) / 3600, 2)},
            "core_h_by_rule": {k: round(v / 3600, 2) for k, v in sorted(stages.items(), key=lambda kv: -kv[1])},
            "peak_rss_gb": max(rss.values()), "peak_rss_gb_by_rule": rss}


# ----------------------------------------------------------------------------- driving

def set_shape(work: Path) -> tuple[dict, pd.DataFrame]:
    """What the model needs of a run: frames, videos, cubes, cubes seen in training, the cell
    layout's windows and rows, and each camera's (train frames, test frames, videos)."""
    from vad_pipeline.windows import read_layout

    res = work / "results" / NAME
    jobs = jobs_of_run(work)
    fr = {s: int(jobs[(jobs["rule"] == "flow") & (jobs["split"] == s)]["frames"].sum()) for s in ("train", "test")}
    cubes = int(jobs[jobs["rule"] == "stc_video"]["cubes"].sum())
    loss = pd.read_csv(res / "train" / "loss.csv")
    with h5py.File(res / "stc" / "train.h5", "r") as h:
        per_epoch = h["app"].shape[0]
    cfg = C.resolve(yaml.safe_load((work / "config.yaml").read_text()), NAME)
    if cfg["train"].get("max_cubes"):
        per_epoch = min(per_epoch, int(cfg["train"]["max_cubes"]))
    layouts = read_layout(str(res / "cells" / "layout.json"))["cameras"]
    big = max(layouts.values(), key=lambda lay: len(lay["rows"]))
    cams = pd.read_csv(res / "cameras" / "train.csv").astype(str), pd.read_csv(res / "cameras" / "test.csv").astype(str)
    flows = jobs[jobs["rule"] == "flow"]
    cell_cameras = []
    for cam in sorted(set(cams[0]["camera"])):
        mine = [set(c.loc[c["camera"] == cam, "video"]) for c in cams]
        tr = flows[(flows["split"] == "train") & flows["key"].isin(mine[0])]["frames"].sum()
        te = flows[(flows["split"] == "test") & flows["key"].isin(mine[1])]["frames"].sum()
        lay = layouts.get(cam, big)
        cell_cameras.append((float(tr), float(te), len(mine[0]), len(lay["rows"]), len(set(lay["rows"]))))
    return {"frames": fr["train"] + fr["test"], "train_frames": fr["train"], "videos": int((jobs["rule"] == "flow").sum()),
            "cubes": cubes, "cubes_seen": per_epoch * len(loss), "windows": len(big["rows"]),
            "rows": len(set(big["rows"])), "cell_cameras": cell_cameras,
            "reference_frames": cfg["cells"].get("reference_frames")}, jobs


def loader_rate(stc: Path, block: int = 8192) -> float:
    """Cubes/s the training reader delivers as model tensors in one process (no model)."""
    from vad_pipeline.cubes import STCDataset

    ds = STCDataset(str(stc), flow_scale=5.0)
    n, t0 = 0, time.perf_counter()
    for _ in range(2):
        for idx, _app, _flow in ds.blocks(block, np.random.default_rng(0)):
            n += len(idx)
    return n / (time.perf_counter() - t0)


def make_set(root: Path, size: tuple[int, int], cameras: int, n_frames: int) -> dict:
    """The set's dataset section; built once (``root/section.json`` says it is complete)."""
    done = root / "section.json"
    if done.is_file():
        return json.loads(done.read_text())
    section = build(root, "shanghaitech", size, cameras, n_frames=n_frames)["joint"]
    done.write_text(json.dumps(section))
    return section


def main() -> None:
    global KNN
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="480x856", help="frame size HxW (default ShanghaiTech's)")
    ap.add_argument("--cameras", type=int, default=3, help="cameras of the calibration set")
    ap.add_argument("--frames", type=int, default=300, help="frames per video of the calibration set")
    ap.add_argument("--epochs", type=int, default=2, help="epochs of the calibration and check runs")
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 2, help="--cores of the runs")
    ap.add_argument("--calibration", default=None, help="run folder: reuse it if it holds a finished run, else run there")
    ap.add_argument("--check", action="store_true", help="also run the check set and compare with its prediction")
    ap.add_argument("--check-cameras", type=int, default=13)
    ap.add_argument("--check-frames", type=int, default=250, help="frames per video of the check set (13 cameras: 20,750)")
    ap.add_argument("--check-dir", default=None, help="where the check run goes (default: a temporary folder); "
                    "a set already built there is reused")
    ap.add_argument("--build-check-only", action="store_true", help="only build the check set in --check-dir "
                    "(its generation is not part of the prediction)")
    ap.add_argument("--out", default=None, help="write the summary as JSON (docs/scale.json)")
    a = ap.parse_args()
    h, w = (int(v) for v in a.size.lower().split("x"))
    tmp = tempfile.mkdtemp(prefix="vad-bench-scale-")
    if a.build_check_only:
        make_set(Path(a.check_dir or tmp) / "data", (h, w), a.check_cameras, a.check_frames)
        return
    cal = Path(a.calibration or Path(tmp) / "calibration")
    cal.mkdir(parents=True, exist_ok=True)
    if not (cal / "results" / NAME / "benchmark.json").is_file():
        print(f"calibration run in {cal} ...", flush=True)
        section = make_set(cal / "data", (h, w), a.cameras, a.frames)
        cal_wall = run_workflow(cal, section, a.epochs, a.cores)
        (cal / "wall_s.txt").write_text(f"{cal_wall:.1f}\n")
    cal_wall = float((cal / "wall_s.txt").read_text()) if (cal / "wall_s.txt").is_file() else None
    shape, jobs = set_shape(cal)
    micro = cal / "micro.json"   # timed once with the calibration run, on the same quiet machine
    if micro.is_file():
        KNN, scaling, loader = (json.loads(micro.read_text())[k] for k in ("knn", "train_threads", "loader_cubes_per_s"))
        KNN["query_s"] = {int(t): v for t, v in KNN["query_s"].items()}
    else:
        print("timing nearest-neighbour references, torch threads and the training reader ...", flush=True)
        KNN, scaling = knn_costs(), train_scaling()
        loader = loader_rate(cal / "results" / NAME / "stc" / "train.h5")
        micro.write_text(json.dumps({"knn": KNN, "train_threads": scaling, "loader_cubes_per_s": loader}))
    rate = calibrate(jobs, shape, KNN, scaling, a.cores)
    rate["loader_cubes_per_s"] = loader
    p = scaling["parallel_fraction"]
    # the calibration set itself, predicted on its own cores: how well the model fits where it was measured
    own = {"train_frames": shape["train_frames"], "test_frames": shape["frames"] - shape["train_frames"],
           "train_videos": sum(c[2] for c in shape["cell_cameras"]),
           "test_videos": shape["videos"] - sum(c[2] for c in shape["cell_cameras"]), "cameras": len(shape["cell_cameras"])}
    own_cfg = C.resolve(yaml.safe_load((cal / "config.yaml").read_text()), NAME)
    fit = schedule(target_jobs(own, rate, own_cfg, RULE_THREADS, a.cores, p_train=p), a.cores)
    out = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
           "calibration": {"frames": shape["frames"], "cameras": own["cameras"], "size": [h, w], "cores": a.cores,
                           "measured_wall_s": cal_wall, "model_wall_s": round(fit, 1)},
           "rates": {k: v for k, v in rate.items() if k != "rss_mb"}, "knn": KNN, "train_threads": scaling,
           "shanghaitech": predict(SHANGHAITECH, rate, C.load(REPO / "config.yaml"), NAME, p),
           "hour_1080p": predict(HOUR_1080P, rate, C.load(REPO / "config.yaml"), "mycam", p),
           "assumptions": [
               "8 or more threads: torch's speed-up from Amdahl's law fitted to 1 and 2 threads; the nearest-"
               "neighbour queries' linear in threads beyond the 2 measured",
               "cores8_gpu: training bound by the reader, 4 loader processes at the one measured (not measured on a GPU)",
               "cluster64: the critical path of the DAG, every job on a node of its own with the Slurm profile's "
               "threads, 60 s of queue and start-up per job on the path",
               "ShanghaiTech's cameras even in footage (the real ones are not: its biggest camera's S_c job is the "
               "longest; cells.jobs auto gives it more bands)",
               "hour_1080p: the per-frame rates of 856x480 (detect and flow run at the working resolution; decoding 1080p "
               "is slower, measured on Ped2 upscaled: docs/scale.md)"]}
    if a.check:
        chk = Path(a.check_dir or Path(tmp) / "check")
        chk.mkdir(parents=True, exist_ok=True)
        section = make_set(chk / "data", (h, w), a.check_cameras, a.check_frames)
        from vad_pipeline import datasets as D

        scfg = C.resolve(C.load(REPO / "config.yaml"), NAME)
        scfg["dataset"] = {**scfg["dataset"], **section}
        n = {s: [D.get_video(scfg, s, v).n_frames for v in D.video_names(scfg, s)] for s in ("train", "test")}
        shape_t = {"train_frames": sum(n["train"]), "test_frames": sum(n["test"]), "train_videos": len(n["train"]),
                   "test_videos": len(n["test"]), "cameras": a.check_cameras}
        check_cfg = C.resolve(C.load(REPO / "config.yaml"), NAME)
        check_cfg["train"]["epochs"] = a.epochs
        predicted = schedule(target_jobs(shape_t, rate, check_cfg, RULE_THREADS, a.cores, p_train=p), a.cores)
        print(f"check set: {sum(n['train']) + sum(n['test'])} frames, {a.check_cameras} cameras; predicted "
              f"{predicted:.0f} s on {a.cores} cores; running ...", flush=True)
        measured = run_workflow(chk, section, a.epochs, a.cores)
        auc = json.loads((chk / "results" / NAME / "auc.json").read_text())
        out["check"] = {"frames": shape_t["train_frames"] + shape_t["test_frames"], "cameras": a.check_cameras,
                        "size": [h, w], "cores": a.cores, "epochs": a.epochs, "predicted_wall_s": round(predicted, 1),
                        "measured_wall_s": round(measured, 1), "ratio": round(measured / predicted, 3),
                        "auc_micro": auc.get("auc_micro"),
                        "peak_rss_mb_by_rule": jobs_of_run(chk).groupby("rule")["rss_mb"].max().round(0).to_dict()}
    text = json.dumps(out, indent=1, default=float)
    print(text)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
