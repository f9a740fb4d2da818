"""What scoring new footage of a trained camera costs: a benchmark, not a test.

1. Train: a one-camera own-footage set (vad_pipeline.camera_set, videos layout) at ``--size``
   (default 1080x1920), config.yaml's defaults with the cpu preset at ``--epochs``, and its bundle.
2. Measure: a batch of its test videos as MPEG-4 files and a short cut of one (``--short``
   frames) applied with
   ``--cores``, through the workflow's rules as a user runs them: every video job's stage seconds
   (the "stage seconds" line of its log), wall seconds and peak RSS (its Snakemake benchmark file),
   and the batch's gathers.
3. Extrapolate to one hour at 25 fps (90,000 frames) on 8 cores, in files of 1 and of 10 minutes:
   each stage's seconds fitted as fixed + per frame (or per cube) over the measured videos; the
   cube-bound stages (cubes, inference, S_m) at the generator's cubes per frame and at
   ``--real-cubes`` (real footage at 856x480 makes 9-11); each file one job of the rule's threads,
   scheduled greedily on 8 cores as Snakemake runs them (benchmarks/bench_scale.py's schedule),
   then the gathers at their measured seconds per frame.

    python benchmarks/bench_apply.py --out docs/apply_scale.json               # ~15 min on 2 cores
    python benchmarks/bench_apply.py --work /tmp/ba --out docs/apply_scale.json # reuse a finished run

Figures are of this machine; what is extrapolated is listed under ``assumptions``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
NAME, BATCH = "cam", "new"
HOUR = 25 * 3600
FRAME_STAGES = ("detect", "flow", "motion_features", "cell_stats", "S_c")   # work grows with the frames
CUBE_STAGES = ("stc", "infer", "S_m")                                   # ... with the detected objects
THREADS = 1   # rule apply_video's


def _bench_scale():
    spec = importlib.util.spec_from_file_location("bench_scale", REPO / "benchmarks" / "bench_scale.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def snakemake(work: Path, cores: int, *targets: str) -> float:
    t0 = time.perf_counter()
    with open(work / "snakemake.log", "a") as log:
        subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--cores", str(cores),
                        *targets], cwd=work, check=True, stdout=log, stderr=subprocess.STDOUT)
    return time.perf_counter() - t0


def make_batch(work: Path, short: int) -> None:
    """The batch: each test video of the set re-encoded as MPEG-4 (.mp4, as cameras deliver
    compressed streams; the set's .avi files are lossless FFV1, several times slower to decode) and a
    cut of the first of ``short`` frames (the jobs' fixed costs)."""
    from itertools import islice

    from vad_pipeline.datasets.export import write_video_file
    from vad_pipeline.datasets.layouts import Videos
    from vad_pipeline.datasets.video import iter_frames

    batch = work / "batch"
    batch.mkdir()
    cfg = {"dataset": {"root": str(work / "data"), "fps": 25.0}}
    tests = Videos().sources(cfg, "test")
    for i, (name, src) in enumerate(sorted(tests.items())):
        video = Videos().open(cfg, "test", name, src)
        write_video_file(batch / f"{name}.mp4", iter_frames(video), 25.0)
        if i == 0:
            write_video_file(batch / "short.mp4", islice(iter_frames(video), short), 25.0)


def prepare(work: Path, size: tuple[int, int], frames: int, train_clips: int, short: int, epochs: int) -> None:
    """The camera set, its config (one dataset, one batch of its test videos and a short cut)."""
    from vad_pipeline.camera_set import build

    if (work / "config.yaml").is_file():
        return
    section = build(work / "data", "videos", size, 1, seed=5, train_clips=train_clips, n_frames=frames, n_test=2)["joint"]
    make_batch(work, short)
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    section = {k: v for k, v in section.items() if k != "cameras"}
    cfg["datasets"][NAME] = {**section, "root": "data", "apply": {BATCH: {"root": "batch"}}}
    cfg.setdefault("presets", {}).setdefault("cpu", {}).setdefault("train", {})["epochs"] = epochs
    (work / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))


def video_jobs(work: Path) -> pd.DataFrame:
    """One row per apply_video job: frames, cubes, each stage's seconds, wall s, peak RSS MB."""
    from vad_pipeline.apply import TIMING

    rows = []
    for log in sorted((work / "results" / "logs" / NAME / "apply" / BATCH).glob("*.log")):
        line = next((ln for ln in log.read_text().splitlines() if TIMING in ln), None)
        if line is None:
            continue
        t = json.loads(line.split(TIMING, 1)[1])
        bench = pd.read_csv(work / "results" / "benchmarks" / NAME / "apply" / BATCH / f"{log.stem}.tsv", sep="\t").iloc[-1]
        rows.append({"video": t["video"], "frames": t["frames"], "cubes": t["cubes"], **t["seconds"],
                     "wall_s": float(bench["s"]), "rss_mb": float(pd.to_numeric(bench["max_rss"], errors="coerce"))})
    return pd.DataFrame(rows)


def fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(fixed, per unit) of y = fixed + per unit * x, least squares, neither below 0."""
    per, fixed = np.polyfit(x.astype(float), y.astype(float), 1)
    if fixed < 0:
        per, fixed = float(np.sum(x * y) / np.sum(x * x)), 0.0
    return float(max(fixed, 0.0)), float(max(per, 0.0))


def model(jobs: pd.DataFrame) -> dict:
    """Each stage as fixed + per frame (or per cube) seconds, and the rest of a job's wall (process
    start, reading the bundle, writing) as fixed + per frame."""
    out = {}
    for stage in FRAME_STAGES + CUBE_STAGES:
        unit = "frames" if stage in FRAME_STAGES else "cubes"
        out[stage] = dict(zip(("fixed_s", f"s_per_{unit[:-1]}"), fit(jobs[unit].to_numpy(), jobs[stage].to_numpy())))
    rest = jobs["wall_s"] - jobs[list(FRAME_STAGES + CUBE_STAGES)].sum(axis=1)
    out["other"] = dict(zip(("fixed_s", "s_per_frame"), fit(jobs["frames"].to_numpy(), rest.to_numpy())))
    return out


def job_seconds(m: dict, frames: float, cubes_per_frame: float) -> float:
    s = 0.0
    for p in m.values():
        per = p.get("s_per_cube", 0.0) * cubes_per_frame if "s_per_cube" in p else p["s_per_frame"]
        s += p["fixed_s"] + per * frames
    return s


def gather_seconds(measured_s: float, s_per_cube: float, cubes: float) -> float:
    """apply_scores on ``cubes`` objects: the measured job (mostly the process's start) plus the
    fusion's seconds per object (docs/scale.json's ``score_s_per_cube``, the score rule's rate)."""
    return measured_s + s_per_cube * cubes


def hour(m: dict, gather_s: float, small_s: float, cubes_per_frame: float, file_frames: int,
         cores: int = 8) -> dict:
    """Wall minutes of an hour of footage in files of ``file_frames`` on ``cores`` cores."""
    sched = _bench_scale().schedule
    n = HOUR // file_frames
    jobs = [{"name": f"video:{i}", "s": job_seconds(m, file_frames, cubes_per_frame), "deps": [],
             "threads": min(THREADS, cores)} for i in range(n)]
    jobs.append({"name": "apply_scores", "s": gather_s, "deps": [j["name"] for j in jobs], "threads": 1})
    before = "apply_scores"
    for r in ("apply_top_anomalies", "apply_pictures", "apply_evaluate"):   # one after the other, as the rules
        jobs.append({"name": r, "s": small_s, "deps": [before], "threads": 1})
        before = r
    wall = sched(jobs, cores)
    return {"files": n, "frames_per_file": file_frames, "job_s": round(jobs[0]["s"], 1),
            "wall_min": round(wall / 60, 1), "core_h": round(sum(j["s"] * j["threads"] for j in jobs) / 3600, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="1080x1920", help="frame size HxW (default 1080p)")
    ap.add_argument("--frames", type=int, default=300, help="frames of each generated video")
    ap.add_argument("--train-clips", type=int, default=3)
    ap.add_argument("--short", type=int, default=40, help="frames of the short cut (the jobs' fixed costs)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--real-cubes", type=float, default=10.0, help="cubes a frame of real footage")
    ap.add_argument("--work", default=None, help="run folder (reused where it holds a finished run)")
    ap.add_argument("--out", default=None, help="write the summary as JSON (docs/apply_scale.json)")
    a = ap.parse_args()
    h, w = (int(v) for v in a.size.lower().split("x"))
    work = Path(a.work or tempfile.mkdtemp(prefix="vad-bench-apply-"))
    work.mkdir(parents=True, exist_ok=True)
    prepare(work, (h, w), a.frames, a.train_clips, a.short, a.epochs)
    target = f"results/{NAME}/apply/{BATCH}/auc.json"
    walls_file = work / "walls.json"
    walls = json.loads(walls_file.read_text()) if walls_file.is_file() else {}
    if not (work / "results" / NAME / "bundle").is_dir():
        print(f"training the camera in {work} ...", flush=True)
        walls["train_s"] = snakemake(work, a.cores, f"results/{NAME}/bundle")
    if not (work / target).is_file():
        print("applying the batch ...", flush=True)
        walls["apply_s"] = snakemake(work, a.cores, target)
    walls_file.write_text(json.dumps(walls))
    jobs = video_jobs(work)
    m = model(jobs)
    gather = pd.read_csv(work / "results" / "benchmarks" / NAME / "apply" / BATCH / "scores.tsv", sep="\t").iloc[-1]
    scale = REPO / "docs" / "scale.json"
    per_cube = json.loads(scale.read_text())["rates"]["score_s_per_cube"] if scale.is_file() else 0.0
    cpf = float(jobs["cubes"].sum() / jobs["frames"].sum())
    bundle_mb = sum(p.stat().st_size for p in (work / "results" / NAME / "bundle").iterdir()) / 1e6
    out = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "measured": {"size": [h, w], "cores": a.cores, "videos": jobs.to_dict(orient="records"),
                     "apply_wall_s": round(walls["apply_s"], 1), "train_and_bundle_wall_s": round(walls["train_s"], 1),
                     "gather_s": float(gather["s"]), "cubes_per_frame": round(cpf, 2), "bundle_mb": round(bundle_mb, 1),
                     "per_frame_s_by_stage": {s: round(p.get("s_per_frame", p.get("s_per_cube", 0) * cpf), 4)
                                              for s, p in m.items()}},
        "model": m,
        "hour_1080p": {f"{c}_cubes_per_frame": {
            f"{mins}_min_files": hour(m, gather_seconds(float(gather["s"]), per_cube, HOUR * cpf_), 3.0, cpf_,
                                      mins * 60 * 25) for mins in (1, 10)}
            for c, cpf_ in (("generator", cpf), ("real", a.real_cubes))},
        "goal_min": 15,
        "assumptions": [
            "each stage's seconds linear in the frames (or cubes) of a video, fitted over the measured videos; the "
            "fixed part (process start, reading the bundle, S_m's and S_c's references) paid once per video job",
            f"real footage: {a.real_cubes} cubes a frame (the generator makes fewer), the cube-bound stages scaled",
            f"8 cores: each video job on the rule's {THREADS} threads, {8 // THREADS} at a time (the scheduler of "
            "bench_scale.py); this machine's per-core speed",
            "the batch is MPEG-4 part 2 (mp4v) at 1080p, decoded by OpenCV at about 2 ms a frame here; H.264 is "
            "not measured",
            "apply_scores: the measured job plus the score rule's seconds per object of docs/scale.json; the "
            "top anomalies, pictures and evaluate 3 s each"],
    }
    text = json.dumps(out, indent=1, default=float)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
