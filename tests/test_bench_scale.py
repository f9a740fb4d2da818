"""benchmarks/bench_scale.py's model (issue 28): the scheduler that turns jobs into wall time on N
cores, the critical path of a cluster, the S_c work a reference bound saves, and the target's
jobs (one per video, per camera, per split) with the budgets of the config."""

from __future__ import annotations

import importlib.util

import pytest

from tests.conftest import REPO
from vad_pipeline import config as C


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_scale", REPO / "benchmarks" / "bench_scale.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _job(name, s, deps=(), threads=1):
    return {"name": name, "s": float(s), "deps": list(deps), "threads": threads}


def test_schedule_packs_cores_and_waits_for_dependencies(bench):
    jobs = [_job("a", 10), _job("b", 10), _job("c", 10), _job("d", 5, ["a", "b", "c"])]
    assert bench.schedule(jobs, 3) == 15 and bench.schedule(jobs, 2) == 25 and bench.schedule(jobs, 1) == 35
    # a job of 2 threads waits for two free cores; the longest remaining path goes first
    wide = [_job("short", 1), _job("long", 10), _job("wide", 4, ["long"], threads=2)]
    assert bench.schedule(wide, 2) == 14
    assert bench.critical_path(jobs, overhead_s=0) == 15 and bench.critical_path(jobs, overhead_s=1) == 17


def test_reference_bound_cuts_the_cell_work(bench):
    full = bench.cell_work(21_000, 3_300, 25, 1_456, 24, None)
    bounded = bench.cell_work(21_000, 3_300, 25, 1_456, 24, 16_000)
    assert full["step"] == 1 and bounded["step"] == 2
    assert bounded["entries"] == pytest.approx(full["entries"] / 2)
    assert bounded["builds"] == full["builds"] == 24 * 25
    assert bounded["queries"] == pytest.approx((10_500 + 3_300) * 1_456)
    assert bench.cell_work(600, 300, 1, 100, 10, 16_000)["builds"] == 10 * 5   # one video: time blocks
    assert bench.cell_work(600, 300, 2, 100, 10, 16_000)["builds"] == 10 * 10  # two: blocks of each
    assert bench.cell_work(600, 300, 3, 100, 10, 16_000)["builds"] == 10 * 3   # three: each left out


def test_target_jobs_follow_the_sets_shape_and_budgets(bench):
    bench.KNN = {"n": [1e4, 1e6], "build_s_per_entry": [1e-6, 1e-6], "query_s": {1: [1e-5, 2e-5], 2: [1e-5, 2e-5]}}
    rate = {k: 0.01 for k in ("detect_s_per_frame", "flow_s_per_frame", "stc_s_per_cube", "stats_s_per_frame",
                               "stc_gather_s_per_cube", "stats_gather_s_per_video", "layout_s_per_train_frame",
                               "motion_features_s_per_frame", "motion_terms_s_per_cube", "infer_s_per_cube",
                               "score_s_per_cube", "train_s_per_cube_seen")}
    rate.update(cell_terms_factor=1.0, small_job_s=1.0, windows=100, rows=10, cubes_per_frame=2.0)
    t = {"train_frames": 4_000, "test_frames": 2_000, "train_videos": 8, "test_videos": 4, "cameras": 2}
    cfg = C.resolve(C.load(REPO / "config.yaml"), "shanghaitech")
    jobs = bench.target_jobs(t, rate, cfg, bench.RULE_THREADS, 8)
    names = [j["name"].split(":")[0] for j in jobs]
    assert names.count("detect") == names.count("stc_video") == names.count("cell_stats_video") == 12
    assert names.count("cell_terms") == names.count("motion_terms") == 2
    by = {j["name"]: j for j in jobs}
    assert by["train"]["threads"] == 8 and by["cell_terms:0:0"]["threads"] == 4
    # every dependency is a job listed before it
    seen = set()
    for j in jobs:
        assert set(j["deps"]) <= seen, j
        seen.add(j["name"])
    budget = {**cfg, "train": {**cfg["train"], "max_cubes": 1_000}}
    assert bench.target_jobs(t, rate, budget, bench.RULE_THREADS, 8)[names.index("train")]["s"] < by["train"]["s"]


def test_bench_apply_extrapolates_fixed_and_per_frame_costs_to_an_hour():
    import pandas as pd

    spec = importlib.util.spec_from_file_location("bench_apply", REPO / "benchmarks" / "bench_apply.py")
    ba = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ba)
    frames = pd.Series([40, 300, 600])
    jobs = pd.DataFrame({"frames": frames, "cubes": frames * 5})
    for stage in ba.FRAME_STAGES + ba.CUBE_STAGES:   # 1 s fixed, 10 ms a frame or 2 ms a cube
        jobs[stage] = 1.0 + (0.01 * frames if stage in ba.FRAME_STAGES else 0.002 * jobs["cubes"])
    jobs["wall_s"] = jobs[list(ba.FRAME_STAGES + ba.CUBE_STAGES)].sum(axis=1) + 2.0   # + the process's start
    m = ba.model(jobs)
    assert m["flow"]["fixed_s"] == pytest.approx(1.0) and m["flow"]["s_per_frame"] == pytest.approx(0.01)
    assert m["infer"]["s_per_cube"] == pytest.approx(0.002) and m["other"]["fixed_s"] == pytest.approx(2.0)
    per_job = 2.0 + 8 * 1.0 + 1500 * (5 * 0.01 + 3 * 0.002 * 5)
    hour = ba.hour(m, 10.0, 3.0, 5.0, 1500, cores=8)
    assert hour["files"] == 60 and hour["job_s"] == pytest.approx(per_job, rel=1e-3)
    # 60 one-core jobs on 8 cores: 8 rounds, then the gather and the three small report jobs in a row
    assert hour["wall_min"] == pytest.approx((8 * per_job + 10.0 + 3 * 3.0) / 60, abs=0.1)
