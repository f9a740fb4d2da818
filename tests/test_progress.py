"""Long jobs at scale (issue 28): progress lines in a job's log, the training budget
``train.max_cubes``, and training that uses the cores a job is given."""

from __future__ import annotations

import copy
import logging
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from tests.conftest import REPO, build_stcs, write_config
from tests.smk import snakemake
from vad_pipeline import progress as P
from vad_pipeline import train as T
from vad_pipeline.cubes import STCDataset
from vad_pipeline.infer import infer

# "<what>: done/total unit (pct), rate unit/s, elapsed, about T left"
LINE = r"{what}: (\d+)/(\d+) {unit} \(\d+ %\), [0-9.e+]+ {unit}/s, \d+:\d\d:\d\d elapsed, about (\d+:\d\d:\d\d|\?) left"


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture()
def every_update(monkeypatch):
    """A progress line at every update, as if every update took longer than the interval."""
    monkeypatch.setenv("VAD_PROGRESS_S", "0")


def _cfg(resolved: dict, **train) -> dict:
    cfg = copy.deepcopy(resolved)
    cfg["device"] = "cpu"
    cfg["train"].update({"threads": 1, **train})
    return cfg


def _lines(text: str, what: str, unit: str) -> list[tuple[int, int]]:
    return [(int(a), int(b)) for a, b, _ in re.findall(LINE.format(what=what, unit=unit), text)]


# --------------------------------------------------------------------------- Progress


def test_progress_lines_say_done_of_total_rate_and_time_left(caplog):
    caplog.set_level(logging.INFO, logger="vad_pipeline.progress")
    p = P.Progress("stc x", 10, "frames", every_s=3600)
    for _ in range(10):
        p.update(1)
    assert _lines(caplog.text, "stc x", "frames") == [(10, 10)]   # within the interval: the end only
    assert "stc x: 10 frames to do" in caplog.text
    caplog.clear()
    p = P.Progress("flow y", 4, "frames", every_s=0)
    p.update(1)
    p.update(3)
    assert _lines(caplog.text, "flow y", "frames") == [(1, 4), (4, 4)]
    assert P.clock(3725) == "1:02:05"


def test_progress_interval_from_the_environment(monkeypatch):
    monkeypatch.delenv(P.ENV, raising=False)
    assert P.Progress("a", 1).every_s == P.EVERY_S <= 60   # at least once a minute
    monkeypatch.setenv(P.ENV, "0.5")
    assert P.Progress("a", 1).every_s == 0.5
    assert P.Progress("a", 1, every_s=7).every_s == 7      # an explicit interval wins
    monkeypatch.setenv(P.ENV, "soon")
    assert P.Progress("a", 1).every_s == P.EVERY_S


# --------------------------------------------------------------------------- the jobs' logs


def test_detect_flow_stc_and_infer_log_their_progress(tiny_demo, tmp_path, caplog, every_update):
    caplog.set_level(logging.INFO, logger="vad_pipeline.progress")
    stc, videos, _, _ = build_stcs(tiny_demo, tmp_path, "test", cached=False)
    text = caplog.text
    for v in videos:  # one count per video, ending at its frames
        for stage in ("detect", "flow"):
            counts = _lines(text, f"{stage} test/{v.name}", "frames")
            assert counts and counts[-1] == (v.n_frames, v.n_frames), (stage, v.name)
            assert [d for d, _ in counts] == sorted(d for d, _ in counts)
    frames = sum(v.n_frames for v in videos)
    counts = _lines(text, re.escape(f"stc {stc}"), "frames")
    assert len(counts) >= frames - 1 and counts[-1] == (frames, frames)
    caplog.clear()
    model = tmp_path / "model.pt"
    T.train(_cfg(tiny_demo, epochs=1), build_stcs(tiny_demo, tmp_path)[0], str(model), str(tmp_path / "loss.csv"))
    caplog.clear()
    n = len(STCDataset(stc))
    infer(str(model), stc, str(tmp_path / "test.csv"), {"device": "cpu", "score": {"batch_size": 16}}, threads=1)
    counts = _lines(caplog.text, re.escape(f"infer {stc}"), "cubes")
    assert len(counts) == -(-n // 16) and counts[-1] == (n, n)
    assert torch.get_num_threads() == 1   # threads follow the argument


def test_train_cli_logs_progress_within_and_across_epochs(tiny_config, tmp_path):
    """The train job as the rule runs it (its log is its stderr): a line per batch here
    (VAD_PROGRESS_S=0), each with done/total, the rate and the time left; its threads."""
    from vad_pipeline import config as C
    from vad_pipeline.demo import generate

    resolved = C.resolve(tiny_config, "demo")
    generate(resolved["demo"], resolved["dataset"]["root"])
    stc = build_stcs(resolved, tmp_path)[0]
    write_config(tiny_config, tmp_path / "config.yaml")
    run = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "vad_pipeline", "train", "--configfile", str(tmp_path / "config.yaml"),
         "--dataset", "demo", "--stc", stc, "--out", str(run / "model.pt"), "--log", str(run / "loss.csv"),
         "--threads", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "VAD_PROGRESS_S": "0"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stderr
    n, tc = len(STCDataset(stc)), resolved["train"]
    batches = -(-n // tc["batch_size"]) + -(-n // tc["block"])   # at most one short batch a block
    for epoch in (1, 2):
        counts = _lines(log, f"epoch {epoch}/2", "cubes")
        assert n - -(-n // tc["block"]) <= counts[-1][0] == counts[-1][1] <= n
        assert -(-n // tc["batch_size"]) <= len(counts) <= batches
    assert _lines(log, f"training {resolved['model']['name']}", "epochs") == [(1, 2), (2, 2)]
    assert "1 threads, 0 workers" in log


# --------------------------------------------------------------------------- train.max_cubes


def _epoch(data: T.TrainData, epoch: int) -> list[tuple[torch.Tensor, ...]]:
    return list(data.batches(epoch))


def _old_blocks(stc: str, n: int, tc: dict, seed: int, epoch: int) -> list[tuple[np.ndarray, ...]]:
    """The blocks as the code before train.max_cubes read them: every block, in an order drawn
    from (seed, epoch), shuffled inside by (seed, epoch, start) with each sample's hflip draw."""
    import h5py

    out = []
    with h5py.File(stc, "r") as f:
        for s in np.random.default_rng([seed, epoch]).permutation(np.arange(0, n, tc["block"])):
            e = min(s + tc["block"], n)
            rng = np.random.default_rng([seed, epoch, s])
            order = rng.permutation(e - s)
            out.append((s + order, f["app"][s:e][order], f["flow"][s:e][order], rng.random(e - s) < 0.5))
    return out


def test_max_cubes_null_reads_what_every_epoch_read_before(tiny_demo, tmp_path):
    stc = build_stcs(tiny_demo, tmp_path)[0]
    n = len(STCDataset(stc))
    tc = {**_cfg(tiny_demo)["train"], "block": 48, "batch_size": 32, "hflip": True, "workers": 0}
    assert n > 2 * tc["block"]
    for cap in (None, n, 10 * n):   # a cap the set does not reach is no cap
        data = T.TrainData(stc, n, {**tc, "max_cubes": cap}, seed=3, device=torch.device("cpu"))
        try:
            for epoch in (0, 1):
                data.order.epoch = epoch
                got = [data.blocks[key] for key in data.order]
                want = _old_blocks(stc, n, tc, 3, epoch)
                assert len(got) == len(want)
                for g, w in zip(got, want):
                    assert all(np.array_equal(a.numpy(), b) for a, b in zip(g, w))
        finally:
            data.close()


def test_a_run_without_a_cap_keeps_the_identity_of_a_run_before_the_key(tiny_demo, tmp_path):
    """Its checkpoint (and default checkpoint folder) is found and resumed."""
    stc = build_stcs(tiny_demo, tmp_path)[0]
    cfg = _cfg(tiny_demo, max_cubes=None)
    before = copy.deepcopy(cfg)
    del before["train"]["max_cubes"]
    assert T.run_identity(cfg, stc) == T.run_identity(before, stc)
    n = len(STCDataset(stc))   # the cpu preset's cap (40,000) that a set does not reach: no cap either
    for cap in (n, 40_000):
        assert T.run_identity({**cfg, "train": {**cfg["train"], "max_cubes": cap}}, stc) == T.run_identity(cfg, stc)
    assert T.run_identity({**cfg, "train": {**cfg["train"], "max_cubes": 50}}, stc) != T.run_identity(cfg, stc)


def test_max_cubes_caps_each_epoch_with_a_seeded_subset(tiny_demo, tmp_path):
    stc = build_stcs(tiny_demo, tmp_path)[0]
    n = len(STCDataset(stc))
    cap = 50
    tc = {**_cfg(tiny_demo)["train"], "block": 64, "batch_size": 16, "hflip": True, "max_cubes": cap}
    assert n > 2 * cap

    def run(workers: int, seed: int = 0) -> list[list[tuple[torch.Tensor, ...]]]:
        data = T.TrainData(stc, n, {**tc, "workers": workers}, seed=seed, device=torch.device("cpu"))
        try:
            assert [data.epoch_size(e) for e in (0, 1, 2)] == [cap] * 3
            return [_epoch(data, e) for e in (0, 1, 2)]
        finally:
            data.close()

    uncapped = T.TrainData(stc, n, {**tc, "max_cubes": None, "workers": 0}, seed=0, device=torch.device("cpu"))
    assert uncapped.epoch_size(0) == sum(len(b[0]) for b in _epoch(uncapped, 0)) >= n - 1
    uncapped.close()

    none, two = run(0), run(2)
    seen = []
    for e in range(3):
        idx = torch.cat([b[0] for b in none[e]])
        assert len(idx) == len(set(idx.tolist())) == cap   # exactly the cap, each cube once
        assert all(len(b[0]) <= tc["batch_size"] for b in none[e])
        seen.append(set(idx.tolist()))
        for x, y in zip(none[e], two[e]):   # whatever the number of workers
            assert all(torch.equal(u, v) for u, v in zip(x, y))
    assert seen[0] != seen[1] != seen[2]          # another subset each epoch
    assert len(seen[0] | seen[1] | seen[2]) > cap
    again = run(0)
    assert all(torch.equal(a[0], b[0]) for e in range(3) for a, b in zip(none[e], again[e]))   # seeded
    assert set(torch.cat([b[0] for b in run(0, seed=1)[0]]).tolist()) != seen[0]
    # the batches are what STCDataset reads (mirrored where drawn)
    ds = STCDataset(stc, flow_scale=tc["flow_scale"])
    for i, a, f in zip(*none[0][0]):
        ra, rf = ds[int(i)]
        if not torch.equal(a, ra):
            ra, rf = (x[0] for x in T.hflip(ra[None], rf[None], torch.tensor([True])))
        assert torch.equal(a, ra) and torch.equal(f, rf)


def test_capped_training_trains_the_cap_and_resumes_to_the_same_weights(tiny_demo, tmp_path, caplog, every_update):
    stc = build_stcs(tiny_demo, tmp_path)[0]
    cap = 60
    cfg = _cfg(tiny_demo, epochs=2, block=64, hflip=True, max_cubes=cap)
    caplog.set_level(logging.INFO, logger="vad_pipeline")

    def paths(name: str) -> dict[str, str]:
        root = tmp_path / name
        return {"out_model": str(root / "model.pt"), "out_log": str(root / "loss.csv"), "ckpt_dir": str(root / "ckpt")}

    T.train(cfg, stc, **paths("fresh"))
    assert f"({cap} per epoch, train.max_cubes)" in caplog.text
    assert _lines(caplog.text, "epoch 1/2", "cubes")[-1] == (cap, cap)
    loss = pd.read_csv(tmp_path / "fresh" / "loss.csv")
    assert loss["epoch"].tolist() == [1, 2]
    T.train({**cfg, "train": {**cfg["train"], "epochs": 1}}, stc, **paths("resumed"))
    caplog.clear()
    T.train(cfg, stc, **paths("resumed"))
    assert "resuming" in caplog.text and "epoch 1/2" not in caplog.text
    a = torch.load(tmp_path / "resumed" / "model.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "fresh" / "model.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    # uncapped, the same seed trains another model (every cube an epoch)
    T.train(_cfg(tiny_demo, epochs=2, block=64, hflip=True), stc, **paths("all"))
    c = torch.load(tmp_path / "all" / "model.pt", weights_only=True)["model"]
    assert not all(torch.equal(c[k], b[k]) for k in c)


# --------------------------------------------------------------------------- threads


@pytest.mark.parametrize("tc, threads, device, expected", [
    ({}, 1, "cpu", (1, 0)),
    ({}, 2, "cpu", (2, 0)),                      # Ped2 on 2 cores: as before, no reader process
    ({}, 8, "cpu", (7, 1)),                      # one reader; the model the other cores
    ({}, 8, "cuda", (4, 4)),                     # the GPU is fed by readers
    ({}, 1, "cuda", (1, 0)),
    ({"threads": 3}, 8, "cpu", (3, 1)),          # pinned
    ({"workers": 0}, 8, "cpu", (8, 0)),
    ({"threads": 2, "workers": 3}, 8, "cuda", (2, 3)),
    ({"threads": 4, "workers": None}, 0, "cpu", (4, 1)),   # by hand: the pinned threads are the cores
])
def test_threads_and_workers_follow_the_jobs_cores(tc, threads, device, expected):
    assert T.job_threads({"threads": 0, "workers": None, **tc}, threads, torch.device(device)) == expected


def test_threads_by_hand_are_torchs():
    torch.set_num_threads(3)
    assert T.job_threads({"threads": 0, "workers": None}, 0, torch.device("cpu")) == (3, 0)


def test_train_sets_the_threads_it_is_given(tiny_demo, tmp_path, caplog, monkeypatch):
    stc = build_stcs(tiny_demo, tmp_path)[0]
    caplog.set_level(logging.INFO, logger="vad_pipeline.train")
    made = []

    def data(*args):   # what the loader is given; then stop, the threads being set
        made.append(args[2])
        raise InterruptedError

    monkeypatch.setattr(T, "TrainData", data)
    torch.set_num_threads(1)
    with pytest.raises(InterruptedError):
        T.train(_cfg(tiny_demo, threads=0), stc, str(tmp_path / "model.pt"), str(tmp_path / "loss.csv"), threads=2)
    assert torch.get_num_threads() == 2 and "2 threads, 0 workers" in caplog.text
    assert (made[0]["threads"], made[0]["workers"]) == (2, 0)


def test_the_rules_pass_their_threads(workdir):
    """snakemake --cores 3: train and infer are told 3 threads."""
    out = snakemake(workdir, "-n", "-p", "results/demo/infer/test.csv", cores=3, max_threads=None)
    shells = [line for line in (out.stdout + out.stderr).splitlines() if " --threads " in line]
    assert any(" train " in s and "--threads 3" in s for s in shells), shells
    assert any(" infer " in s and "--threads 3" in s for s in shells), shells

