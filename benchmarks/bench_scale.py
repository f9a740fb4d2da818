"""What ShanghaiTech (or an hour of 1080p own footage) costs: a benchmark, not a test.

Builds a ShanghaiTech-shaped set (the official layout: training .avi, test JPEG frames) from
generated scenes of several cameras (vad_pipeline.camera_set: each its own perspective, object size,
speed and amount of footage) scaled to the frame size, runs the workflow on it with the project's `shanghaitech` section (only root and the
number of epochs changed), and prints per-stage figures from its benchmark files: frames/s,
bytes per frame on disk, peak RSS per job; the cubes/s the training loader delivers (what a GPU
can be fed at most); the nearest-neighbour reference of S_m and S_c as the training set grows
(build and query time); and from them the whole of ShanghaiTech and one hour of 1080p.

    python benchmarks/bench_scale.py --out results/bench_scale.json          # ~6 min on 2 cores
    python benchmarks/bench_scale.py --size 1080x1920 --name mycam --layout videos

Figures are of this machine; the extrapolation is linear in frames (and says where it is not).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from vad_pipeline import config as C
from vad_pipeline.camera_set import build

REPO = Path(__file__).resolve().parents[1]   # the workflow it runs: config.yaml, Snakefile

# ShanghaiTech Campus: 330 training videos (274,515 frames), 107 test videos (42,883 frames), 13 cameras
SHANGHAITECH = {"train_frames": 274_515, "test_frames": 42_883, "train_videos": 330, "test_videos": 107, "cameras": 13}
# one hour at 25 fps from one camera, half of it normal footage to train on, in 10-minute files
HOUR_1080P = {"train_frames": 45_000, "test_frames": 45_000, "train_videos": 3, "test_videos": 3, "cameras": 1}


def build_set(root: Path, layout: str, size: tuple[int, int], cameras: int) -> dict:
    """Generated scenes of ``cameras`` cameras (vad_pipeline.camera_set), scaled to ``size``."""
    # videos long enough that a job's start-up (~2 s of imports) is small beside its frames
    return build(root / layout, layout, size, cameras, n_frames=300)["joint"]


def run_workflow(work: Path, name: str, section: dict, epochs: int) -> dict:
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["datasets"][name].update({k: v for k, v in section.items() if k != "layout"})
    cfg["datasets"][name]["layout"] = section["layout"]
    cfg["datasets"][name].pop("frame_size", None)
    cfg.setdefault("presets", {}).setdefault("cpu", {})["train"] = {"epochs": epochs}
    cfg["datasets"][name].pop("presets", None)
    (work / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--cores", "2",
                    f"results/{name}/benchmark.json"], cwd=work, check=True,
                   stdout=subprocess.DEVNULL, stderr=open(work / "snakemake.log", "w"))
    bench = json.loads((work / "results" / name / "benchmark.json").read_text())
    bench["workflow_wall_s"] = round(time.perf_counter() - t0, 1)
    # the last epoch's rate: the job's wall time also holds start-up and the first, slower epoch
    loss = pd.read_csv(work / "results" / name / "train" / "loss.csv")
    bench["train_cubes_per_s"] = float(loss["samples_per_s"].iloc[-1])
    return {**bench, **cell_layout_size(work / "results" / name / "cells" / "layout.json")}


def cell_layout_size(path: Path) -> dict:
    """Windows and rows of windows of a run's cell layout (the largest, with one per camera)."""
    from vad_pipeline.cells import read_layout

    layouts = read_layout(str(path))["cameras"].values()
    big = max(layouts, key=lambda lay: len(lay["rows"]))
    return {"cell_windows": len(big["rows"]), "cell_rows": len(set(big["rows"]))}


def loader_rate(stc: Path, block: int = 8192) -> float:
    """Cubes/s the training reader delivers as model tensors (no model): a GPU's ceiling."""
    from vad_pipeline.cubes import STCDataset

    ds = STCDataset(str(stc), flow_scale=5.0)
    n, t0 = 0, time.perf_counter()
    for _ in range(2):
        for idx, _app, _flow in ds.blocks(block, np.random.default_rng(0)):
            n += len(idx)
    return n / (time.perf_counter() - t0)


def knn_scaling(sizes: list[int], queries: int = 2000) -> list[dict]:
    """Build and query time of the S_m reference (7 features, k 10) and of one row of the S_c
    reference (5 statistics, k 5) with ``n`` training entries."""
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(0)
    out = []
    for n in sizes:
        row = {"n": n}
        for term, dims, k in (("s_m", 7, 10), ("s_c", 5, 5)):
            x, q = rng.normal(size=(n, dims)), rng.normal(size=(queries, dims))
            t0 = time.perf_counter()
            nn = NearestNeighbors(n_neighbors=k).fit(x)
            t1 = time.perf_counter()
            nn.kneighbors(q)
            t2 = time.perf_counter()
            row[term] = {"build_s": round(t1 - t0, 3), "query_ms_per_1000": round((t2 - t1) / queries * 1e6, 2),
                         "reference_mb": round(x.nbytes / 2**20, 1)}
        out.append(row)
    return out


def per_frame(bench: dict) -> dict:
    """Seconds (one core-job) and bytes per frame of each stage."""
    n = bench["n_frames"]
    return {s: {"s_per_frame": (v["wall_s"] or 0) / n, "bytes_per_frame": v["bytes_per_frame"] or 0,
                "peak_rss_mb": v["peak_rss_mb"]} for s, v in bench["stages"].items()}


def extrapolate(bench: dict, knn: list[dict], loader: float, target: dict, epochs: int, cores: int = 8,
                references: tuple[str, str] = ("camera", "camera")) -> dict:
    """Disk, CPU hours per stage and --cores wall time for ``target`` frames, linear in frames;
    training from the measured CPU cubes/s and epochs; the GPU bound from the loader's cubes/s."""
    frames = target["train_frames"] + target["test_frames"]
    pf, cubes = per_frame(bench), bench["n_cubes"]
    cubes_per_frame = sum(cubes.values()) / bench["n_frames"]
    train_cubes = cubes_per_frame * target["train_frames"]
    out = {"frames": frames, "cubes": round(cubes_per_frame * frames), "stages": {}}
    for s in ("detect", "flow", "stc", "infer", "motion", "cells"):
        cpu_h = pf[s]["s_per_frame"] * frames / 3600
        # detect and flow run one job per video: --cores jobs at once; the others one job per split
        wall_h = cpu_h / cores if s in ("detect", "flow") else cpu_h * target["train_frames"] / frames
        out["stages"][s] = {"disk_gb": round(pf[s]["bytes_per_frame"] * frames / 1e9, 1),
                            "cpu_h": round(cpu_h, 1), "wall_h_cores": round(wall_h, 1),
                            "peak_rss_mb_measured": pf[s]["peak_rss_mb"]}
    rate = bench["train_cubes_per_s"]
    out["stages"]["train"] = {"disk_gb": 0.0, "cpu_h": round(train_cubes * epochs / rate / 3600, 1),
                              "wall_h_cores": round(train_cubes * epochs / rate / 3600, 1),
                              "cpu_cubes_per_s": rate, "epochs": epochs,
                              "gpu_h_at_loader_rate": round(train_cubes * epochs / loader / 3600, 2)}
    # a reference (cameras.motion, cameras.cells: ``references``) holds one camera's training
    # data or all cameras', and is rebuilt once per training video (leave its video out)
    big = knn[-1]
    cams_m, cams_c = (target["cameras"] if r == "camera" else 1 for r in references)
    ref_m = train_cubes / cams_m
    q_ms = big["s_m"]["query_ms_per_1000"] / 1000 * max(1.0, np.log2(ref_m / big["n"]) + 1)
    out["knn"] = {"references": list(references), "s_m_reference_objects": round(ref_m),
                  "s_m_reference_mb": round(ref_m * 7 * 8 / 2**20),
                  "s_m_rebuilds": target["train_videos"],
                  "s_m_build_h": round(big["s_m"]["build_s"] * ref_m / big["n"] * target["train_videos"] / 3600, 2),
                  "s_m_query_h": round(q_ms * cubes_per_frame * frames / 1000 / 3600, 2)}
    # S_c: one reference per row of windows (a camera's training frames x windows of the row),
    # rebuilt per row and training video; every window of every frame a query
    per_row = bench["cell_windows"] / bench["cell_rows"]
    ref_c = target["train_frames"] / cams_c * per_row
    qc_ms = big["s_c"]["query_ms_per_1000"] / 1000 * max(1.0, np.log2(ref_c / big["n"]) + 1)
    out["knn"].update({
        "s_c_reference_per_row": round(ref_c), "s_c_rows": bench["cell_rows"],
        "s_c_reference_mb": round(target["train_frames"] * bench["cell_windows"] * 5 * 4 / 2**20),
        "s_c_build_h": round(big["s_c"]["build_s"] * ref_c / big["n"] * bench["cell_rows"] * target["train_videos"] / 3600, 2),
        "s_c_query_h": round(qc_ms * bench["cell_windows"] * frames / 1000 / 3600, 2)})
    total_disk = sum(v["disk_gb"] for v in out["stages"].values())
    out["disk_gb"] = round(total_disk, 1)
    out["cpu_h"] = round(sum(v["cpu_h"] for v in out["stages"].values()), 1)
    out["wall_h_cores"] = round(sum(v["wall_h_cores"] for v in out["stages"].values()), 1)
    return out


def table(name: str, ex: dict) -> str:
    lines = [f"{name}: {ex['frames']:,} frames, ~{ex['cubes']:,} cubes",
             f"{'stage':8} {'disk GB':>8} {'CPU h':>8} {'wall h (8 cores)':>17} {'peak RSS MB (measured)':>24}"]
    for s, v in ex["stages"].items():
        lines.append(f"{s:8} {v['disk_gb']:8.1f} {v['cpu_h']:8.1f} {v['wall_h_cores']:17.1f} "
                     f"{v.get('peak_rss_mb_measured') or 0:24.0f}")
    lines.append(f"{'total':8} {ex['disk_gb']:8.1f} {ex['cpu_h']:8.1f} {ex['wall_h_cores']:17.1f}")
    t = ex["stages"]["train"]
    lines.append(f"train: {t['epochs']} epochs at {t['cpu_cubes_per_s']} cubes/s on this CPU; a GPU fed by the "
                 f"loader at its measured rate: {t['gpu_h_at_loader_rate']} h")
    k = ex["knn"]
    lines.append(f"S_m reference ({k['references'][0]}): {k['s_m_reference_objects']:,} objects ({k['s_m_reference_mb']} MB), rebuilt "
                 f"{k['s_m_rebuilds']} times (leave one video out): ~{k['s_m_build_h']} h; queries ~{k['s_m_query_h']} h")
    lines.append(f"S_c reference ({k['references'][1]}): {k['s_c_rows']} rows of ~{k['s_c_reference_per_row']:,} entries (all cameras' "
                 f"statistics {k['s_c_reference_mb']} MB float32), rebuilt per row and training video: ~{k['s_c_build_h']} h; "
                 f"queries ~{k['s_c_query_h']} h")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="480x856", help="frame size HxW (default ShanghaiTech's)")
    ap.add_argument("--name", default="shanghaitech", help="the config.yaml dataset section to run with")
    ap.add_argument("--layout", default=None, help="layout to write (default: the section's)")
    ap.add_argument("--cameras", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=2, help="epochs of the benchmark run (the estimate uses the preset's)")
    ap.add_argument("--knn", default="10000,100000,1000000", help="reference sizes of the nearest-neighbour timing")
    ap.add_argument("--workdir", default=None, help="keep the run here (default: a temporary folder)")
    ap.add_argument("--out", default=None, help="write every figure as JSON")
    a = ap.parse_args()
    import tempfile

    h, w = (int(v) for v in a.size.lower().split("x"))
    base = C.load(REPO / "config.yaml")
    layout = a.layout or base["datasets"][a.name]["layout"]
    resolved = C.resolve(base, a.name)
    epochs, refs = resolved["train"]["epochs"], (resolved["cameras"]["motion"], resolved["cameras"]["cells"])
    with tempfile.TemporaryDirectory(prefix="vad-bench-scale-") as tmp:
        work = Path(a.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        section = build_set(work / "data", layout, (h, w), a.cameras)
        bench = run_workflow(work, a.name, section, a.epochs)
        loader = loader_rate(work / "results" / a.name / "stc" / "train.h5")
    knn = knn_scaling([int(n) for n in a.knn.split(",")])
    result = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
              "size": [h, w], "run": bench, "loader_cubes_per_s": round(loader, 1), "knn": knn,
              "shanghaitech": extrapolate(bench, knn, loader, SHANGHAITECH, epochs, references=refs),
              "hour_1080p": extrapolate(bench, knn, loader, HOUR_1080P, epochs, references=refs)}
    pf = per_frame(bench)
    print(f"measured on {bench['n_frames']} frames of {w}x{h} ({a.cameras} cameras), workflow {bench['workflow_wall_s']} s")
    for s, v in bench["stages"].items():
        fps = next((v[k] for k in v if k.endswith("_per_s")), None)
        print(f"  {s:7} {v['jobs']:3} jobs  {fps or 0:9.1f} /s  {pf[s]['bytes_per_frame']:9.0f} B/frame  "
              f"peak RSS {v['peak_rss_mb'] or 0:7.0f} MB")
    print(f"  cubes per frame {sum(bench['n_cubes'].values()) / bench['n_frames']:.2f}, "
          f"loader {loader:.0f} cubes/s")
    print("nearest-neighbour references (2,000 queries):")
    for row in knn:
        print(f"  n={row['n']:>9,}  S_m build {row['s_m']['build_s']:6.2f} s, {row['s_m']['query_ms_per_1000']:7.1f} ms/1000 "
              f"queries | S_c row build {row['s_c']['build_s']:6.2f} s, {row['s_c']['query_ms_per_1000']:7.1f} ms/1000")
    print(table("ShanghaiTech (274,515 + 42,883 frames)", result["shanghaitech"]))
    print(table("one hour of own footage (90,000 frames, half of it normal training footage)", result["hour_1080p"]))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
