"""Training, checkpoints and resumption (vad_pipeline.train); object scores (vad_pipeline.fusion)."""

from __future__ import annotations

import copy
import json
import logging
import math
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from tests.conftest import REPO, build_stcs
from vad_pipeline import fusion as Fu
from vad_pipeline import train as T
from vad_pipeline.cubes import STCDataset
from vad_pipeline.infer import infer
from vad_pipeline.io import VadError
from vad_pipeline.stc import INDEX


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """train() applies train.threads process-wide; give the other tests their setting back."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def _cfg(resolved: dict, **train) -> dict:
    cfg = copy.deepcopy(resolved)
    cfg["device"] = "cpu"
    # one thread: tiny batches gain nothing from more, and lose a lot on a busy machine
    cfg["train"].update({"threads": 1, **train})
    return cfg


def _paths(root: Path, ckpt: bool = True) -> dict[str, str]:
    """Output paths of a run; its checkpoint folder given explicitly (root/ckpt) unless not ``ckpt``."""
    out = {"out_model": str(root / "model.pt"), "out_log": str(root / "loss.csv")}
    return {**out, "ckpt_dir": str(root / "ckpt")} if ckpt else out


class _Epochs:
    """Records the epoch of every checkpoint train() saves (one per epoch run)."""

    def __init__(self, monkeypatch, after_save=None):
        self.saved: list[int] = []
        self.after_save = after_save
        real = T.save

        def save(obj, path):
            real(obj, path)
            if "epoch" in obj:
                self.saved.append(obj["epoch"])
                if self.after_save:
                    self.after_save(obj, Path(path))

        monkeypatch.setattr(T, "save", save)


def _state_dicts_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- train


def test_train_writes_model_log_and_checkpoint(tiny_demo, tmp_path):
    stc = build_stcs(tiny_demo, tmp_path)[0]
    cfg = _cfg(tiny_demo, epochs=2)
    run = tmp_path / "run"
    out = T.train(cfg, stc, **_paths(run))
    assert out == run / "model.pt" and out.is_file()
    log = pd.read_csv(run / "loss.csv")
    assert log["epoch"].tolist() == [1, 2]
    for col in ("loss", "int", "gd", "sim", "lr", "seconds", "samples_per_s", "peak_mem_mb"):
        assert col in log.columns
    assert (log["samples_per_s"] > 0).all() and (log["peak_mem_mb"] > 0).all()  # on the CPU: peak RSS
    assert np.isfinite(log[["loss", "int", "gd", "sim"]].to_numpy()).all()
    assert log["loss"].iloc[-1] < log["loss"].iloc[0]  # it learns something
    # loss = lambda-weighted sum of the terms (all lambdas 1 in the shipped config)
    np.testing.assert_allclose(log["loss"], log["int"] + log["gd"] + log["sim"], rtol=1e-4)
    ckpt = torch.load(run / "ckpt" / "last.pt", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 2 and len(ckpt["history"]) == 2
    assert {"model", "optimizer", "scheduler", "config_hash", "identity", "rng"} <= set(ckpt)
    assert {"python", "numpy", "torch"} <= set(ckpt["rng"])
    assert ckpt["identity"]["train"]["lr"] == cfg["train"]["lr"] and "epochs" not in ckpt["identity"]["train"]
    assert ckpt["identity"]["data"]["samples"] == len(STCDataset(stc))
    final = torch.load(out, map_location="cpu", weights_only=True)
    assert final["in_frames"] == cfg["stc"]["t_past"] and final["channels"] == 3
    assert final["flow_scale"] == cfg["train"]["flow_scale"]
    assert final["model_cfg"] == cfg["model"]
    assert _state_dicts_equal(final["model"], ckpt["model"])
    assert not list(run.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_custom_checkpoint_folder(tiny_demo, tmp_path):
    stc = build_stcs(tiny_demo, tmp_path)[0]
    T.train(_cfg(tiny_demo, epochs=1), stc, **_paths(tmp_path / "run", ckpt=False), ckpt_dir=str(tmp_path / "elsewhere"))
    assert (tmp_path / "elsewhere" / "last.pt").is_file()
    assert not (tmp_path / "run" / "ckpt").exists()


KILLED_RUN = """
import json, os, signal, sys
from vad_pipeline import train as T

cfg_path, stc, root, after = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
saved, steps = [], []
real_save, real_step = T.save, T.train_step

def save(obj, path):
    real_save(obj, path)
    if "epoch" in obj:
        saved.append(obj["epoch"])

def step(*args):
    if saved:  # in epoch 2: the weights move, then the process is killed before the epoch ends
        steps.append(1)
        if len(steps) > after:
            os.kill(os.getpid(), signal.SIGKILL)
    return real_step(*args)

T.save, T.train_step = save, step
T.train(json.loads(open(cfg_path).read()), stc, root + "/model.pt", root + "/loss.csv", root + "/ckpt")
"""


def test_run_killed_mid_epoch_resumes_to_the_same_weights_bit_for_bit(tiny_demo, tmp_path, monkeypatch, caplog):
    stc = build_stcs(tiny_demo, tmp_path)[0]
    # hflip draws and a learning-rate step after epoch 2: the data order, the augmentation and
    # the scheduler must all come back; several blocks per epoch
    cfg = _cfg(tiny_demo, epochs=3, hflip=True, lr_step=2, lr_decay=0.5, block=64)
    fresh, run = tmp_path / "fresh", tmp_path / "run"
    T.train(cfg, stc, **_paths(fresh))

    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    (tmp_path / "killed.py").write_text(KILLED_RUN)
    killed = subprocess.run([sys.executable, str(tmp_path / "killed.py"), str(tmp_path / "cfg.json"), stc, str(run), "2"],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert torch.load(run / "ckpt" / "last.pt", weights_only=True)["epoch"] == 1
    assert not (run / "model.pt").exists() and not (run / "loss.csv").exists()
    assert not list((run / "ckpt").glob(".*.tmp"))  # killed between saves: no temporary file

    epochs = _Epochs(monkeypatch)
    caplog.set_level(logging.INFO, logger="vad_pipeline.train")
    T.train(cfg, stc, **_paths(run))
    assert epochs.saved == [2, 3]  # only the missing epochs ran
    assert "resuming" in caplog.text

    a = torch.load(run / "model.pt", weights_only=True)["model"]
    b = torch.load(fresh / "model.pt", weights_only=True)["model"]
    assert a.keys() == b.keys()
    for k in a:  # weights, batch-norm statistics and counters
        assert torch.equal(a[k], b[k]), k
    timing = ["seconds", "samples_per_s", "peak_mem_mb"]
    la, lb = pd.read_csv(run / "loss.csv").drop(columns=timing), pd.read_csv(fresh / "loss.csv").drop(columns=timing)
    pd.testing.assert_frame_equal(la, lb, check_exact=True)
    assert la["lr"].tolist() == [cfg["train"]["lr"], cfg["train"]["lr"] * 0.5, cfg["train"]["lr"] * 0.5]


def test_finished_run_is_not_trained_again(tiny_demo, tmp_path, monkeypatch):
    stc = build_stcs(tiny_demo, tmp_path)[0]
    cfg = _cfg(tiny_demo, epochs=1)
    run = tmp_path / "run"
    T.train(cfg, stc, **_paths(run))
    before = torch.load(run / "model.pt", weights_only=True)["model"]
    epochs = _Epochs(monkeypatch)
    T.train(cfg, stc, **_paths(run))
    assert epochs.saved == []
    assert _state_dicts_equal(before, torch.load(run / "model.pt", weights_only=True)["model"])
    assert len(pd.read_csv(run / "loss.csv")) == 1


def test_more_epochs_resume_from_the_checkpoint(tiny_demo, tmp_path, monkeypatch, caplog):
    stc = build_stcs(tiny_demo, tmp_path)[0]
    run = tmp_path / "run"
    T.train(_cfg(tiny_demo, epochs=1), stc, **_paths(run))
    first = pd.read_csv(run / "loss.csv")
    epochs = _Epochs(monkeypatch)
    caplog.set_level(logging.INFO, logger="vad_pipeline.train")
    T.train(_cfg(tiny_demo, epochs=2), stc, **_paths(run))
    assert "resuming" in caplog.text
    assert epochs.saved == [2]  # epoch 1 is not trained again
    log = pd.read_csv(run / "loss.csv")
    assert log["epoch"].tolist() == [1, 2]
    assert log["seconds"].iloc[0] == first["seconds"].iloc[0]  # the stored row of epoch 1


def test_speed_switches_resume_and_give_the_same_weights(tiny_demo, tmp_path, monkeypatch, caplog):
    """workers, pin_memory, compile and channels_last are not part of the checkpoint's identity
    (the data order does not depend on workers); compile and channels_last warn on the CPU."""
    stc = build_stcs(tiny_demo, tmp_path)[0]
    T.train(_cfg(tiny_demo, epochs=2, block=64), stc, **_paths(tmp_path / "plain"))
    run = tmp_path / "run"
    T.train(_cfg(tiny_demo, epochs=1, block=64), stc, **_paths(run))
    epochs = _Epochs(monkeypatch)
    caplog.set_level(logging.INFO, logger="vad_pipeline.train")
    T.train(_cfg(tiny_demo, epochs=2, block=64, workers=2, pin_memory=True, compile=True, channels_last=True),
            stc, **_paths(run))
    assert "resuming" in caplog.text and epochs.saved == [2]
    if not torch.cuda.is_available():
        assert "train.compile is applied on CUDA only" in caplog.text
        assert "train.channels_last is applied on CUDA only" in caplog.text
    a = torch.load(run / "model.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "plain" / "model.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("change, named", [
    ({"train": {"lr": 0.001}}, "train.lr 0.0002 -> now 0.001"),
    ({"train": {"batch_size": 16}}, "train.batch_size"),
    ({"model": {"width": 8}}, "model.width 4 -> now 8"),
    ({"loss": {"lambda_sim": 2.0}}, "loss.lambda_sim"),
    ({"seed": 1}, "seed 0 -> now 1"),
])
def test_checkpoint_of_another_configuration_is_refused(tiny_demo, tmp_path, change, named):
    stc = build_stcs(tiny_demo, tmp_path)[0]
    run = tmp_path / "run"
    T.train(_cfg(tiny_demo, epochs=1), stc, **_paths(run))
    ckpt = run / "ckpt" / "last.pt"
    before = ckpt.read_bytes(), (run / "model.pt").read_bytes()
    other = _cfg(tiny_demo, epochs=1)
    for key, value in change.items():
        if isinstance(value, dict):
            other[key].update(value)
        else:
            other[key] = value
    with pytest.raises(VadError) as exc:
        T.train(other, stc, **_paths(run))
    msg = str(exc.value)
    assert msg.startswith(str(ckpt)) and "another configuration" in msg and named in msg
    assert f"rm {ckpt}" in msg and "--forcerun" in msg and "--ckpt-dir" in msg  # what to do
    assert (ckpt.read_bytes(), (run / "model.pt").read_bytes()) == before  # nothing touched
    # a checkpoint folder of its own trains from scratch
    T.train(other, stc, **_paths(run, ckpt=False), ckpt_dir=str(tmp_path / "other"))
    assert torch.load(tmp_path / "other" / "last.pt", weights_only=True)["epoch"] == 1


def test_default_checkpoint_folder_is_per_configuration(tiny_demo, tmp_path):
    """What Snakemake does after a config change: the new settings train afresh in a folder of
    their own, the old checkpoint stays, and going back to the old settings resumes it."""
    stc = build_stcs(tiny_demo, tmp_path)[0]
    run = tmp_path / "run"
    T.train(_cfg(tiny_demo, epochs=1), stc, **_paths(run, ckpt=False))
    first = sorted((run / "ckpt").glob("*/last.pt"))
    assert len(first) == 1
    stored = first[0].read_bytes()
    T.train(_cfg(tiny_demo, epochs=1, lr=0.001), stc, **_paths(run, ckpt=False))
    both = sorted((run / "ckpt").glob("*/last.pt"))
    assert len(both) == 2 and first[0] in both and first[0].read_bytes() == stored
    T.train(_cfg(tiny_demo, epochs=2), stc, **_paths(run, ckpt=False))  # resumes the first
    assert torch.load(first[0], weights_only=True)["epoch"] == 2


def test_checkpoint_of_other_training_cubes_is_refused(tiny_demo, tmp_path):
    stc = build_stcs(tiny_demo, tmp_path)[0]
    run = tmp_path / "run"
    T.train(_cfg(tiny_demo, epochs=1), stc, **_paths(run))
    changed = tmp_path / "changed.h5"  # same shapes and count, one box elsewhere (e.g. another detector setting)
    shutil.copy(stc, changed)
    with h5py.File(changed, "r+") as f:
        f["box"][0] = f["box"][0] + 1
    with pytest.raises(VadError, match=r"other training cubes \(data\.index "):
        T.train(_cfg(tiny_demo, epochs=1), str(changed), **_paths(run))


def test_checkpoint_past_the_requested_epochs_is_refused(tiny_demo, tmp_path):
    stc = build_stcs(tiny_demo, tmp_path)[0]
    run = tmp_path / "run"
    T.train(_cfg(tiny_demo, epochs=2), stc, **_paths(run))
    with pytest.raises(VadError, match=r"holds 2 trained epochs but train\.epochs is 1") as exc:
        T.train(_cfg(tiny_demo, epochs=1), stc, **_paths(run))
    assert str(run / "ckpt" / "last.pt") in str(exc.value)


def test_batches_do_not_depend_on_the_number_of_workers(tiny_demo, tmp_path):
    stc = build_stcs(tiny_demo, tmp_path)[0]
    n = len(STCDataset(stc))
    tc = {**_cfg(tiny_demo)["train"], "block": 48, "batch_size": 32, "hflip": True}
    assert n > 2 * tc["block"]  # several blocks

    def epochs(workers: int) -> list[list[tuple[torch.Tensor, ...]]]:
        data = T.TrainData(stc, n, {**tc, "workers": workers}, seed=0, device=torch.device("cpu"))
        try:
            return [list(data.batches(e)) for e in (0, 1)]
        finally:
            data.close()

    two, none = epochs(2), epochs(0)
    for e in (0, 1):
        assert len(two[e]) == len(none[e])
        for x, y in zip(two[e], none[e]):
            assert all(torch.equal(u, v) for u, v in zip(x, y))
        idx = torch.cat([b[0] for b in none[e]])
        assert len(idx) == len(set(idx.tolist())) >= n - -(-n // tc["block"])  # each sample once (a lone rest skipped)
        assert all(len(b[0]) <= tc["batch_size"] for b in none[e])
    assert not torch.equal(none[0][0][0], none[1][0][0])  # the order changes with the epoch
    # the batches are what STCDataset reads (frames in [-1, 1], flows / flow_scale), mirrored where drawn
    ds = STCDataset(stc, flow_scale=tc["flow_scale"])
    idx, app, flow = none[0][0]
    flipped = 0
    for i, a, f in zip(idx.tolist(), app, flow):
        ra, rf = ds[i]
        if not torch.equal(a, ra):
            ra, rf = T.hflip(ra[None], rf[None], torch.tensor([True]))
            ra, rf, flipped = ra[0], rf[0], flipped + 1
        assert torch.equal(a, ra) and torch.equal(f, rf)
    assert 0 < flipped < len(idx)


def test_nan_loss_stops_and_keeps_the_last_checkpoint(tiny_demo, tmp_path, monkeypatch):
    stc = build_stcs(tiny_demo, tmp_path)[0]
    cfg = _cfg(tiny_demo, epochs=2)
    run = tmp_path / "run"
    ckpt = run / "ckpt" / "last.pt"
    stored = {}

    def remember(obj, path):
        stored["bytes"] = path.read_bytes()

    epochs = _Epochs(monkeypatch, after_save=remember)
    real_terms = T.compute_terms

    def nan_after_first_epoch(*args):
        terms = real_terms(*args)
        if epochs.saved:
            terms["int"] = torch.full_like(terms["int"], float("nan"))
        return terms

    monkeypatch.setattr(T, "compute_terms", nan_after_first_epoch)
    with pytest.raises(VadError, match="epoch 2") as exc:
        T.train(cfg, stc, **_paths(run))
    assert "nan" in str(exc.value).lower() and str(ckpt) in str(exc.value)
    assert epochs.saved == [1]
    assert ckpt.read_bytes() == stored["bytes"]
    assert torch.load(ckpt, weights_only=True)["epoch"] == 1
    assert not (run / "model.pt").exists() and not (run / "loss.csv").exists()


def test_load_model_rebuilds_from_the_file_alone(tiny_demo, tmp_path):
    stc = build_stcs(tiny_demo, tmp_path)[0]
    cfg = _cfg(tiny_demo, epochs=1)
    cfg["model"]["skips"] = [1, 3]  # not the default: must come from the file
    path = T.train(cfg, stc, **_paths(tmp_path / "run"))
    model, state = T.load_model(str(path), torch.device("cpu"))
    assert not model.training
    assert model.cfg.skips == [1, 3] and model.cfg.width == cfg["model"]["width"]
    assert _state_dicts_equal(model.state_dict(), torch.load(path, weights_only=True)["model"])
    ds = STCDataset(stc, flow_scale=state["flow_scale"])
    app, flow = ds[0]
    with torch.no_grad():
        out = model(*T.split_cube(app[None], flow[None])[:2])
    assert out["pred"].shape == (1, 3, cfg["stc"]["size"], cfg["stc"]["size"])
    # a checkpoint is not a model file; garbage is not a checkpoint
    with pytest.raises(VadError, match="not a model file"):
        T.load_model(str(tmp_path / "run" / "ckpt" / "last.pt"), torch.device("cpu"))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(VadError, match="bad.pt"):
        T.load_model(str(bad), torch.device("cpu"))


def test_split_cube_shapes():
    app = torch.arange(2 * 5 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 5, 3, 4, 4)
    flow = torch.zeros(2, 4, 2, 4, 4)
    frames, flows, target = T.split_cube(app, flow)
    assert frames.shape == (2, 12, 4, 4) and flows.shape == (2, 8, 4, 4) and target.shape == (2, 3, 4, 4)
    torch.testing.assert_close(target, app[:, 4])
    torch.testing.assert_close(frames[:, 3:6], app[:, 1])


def test_pick_device():
    assert T.pick_device("cpu").type == "cpu"
    assert T.pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(VadError, match="cuda"):
            T.pick_device("cuda")


def test_cpu_training_flushes_subnormal_floats(tiny_demo, tmp_path):
    """An encoder that only weight decay moves decays into subnormal weights, which make CPU
    arithmetic several times slower; training on the CPU treats them as zero."""
    stc = build_stcs(tiny_demo, tmp_path)[0]
    torch.set_flush_denormal(False)   # an earlier training in this process may have set it
    subnormal = torch.tensor([1e-39])  # made after: with flushing on it would be 0 already
    try:
        assert (subnormal * 1.0).item() != 0.0
        T.train(_cfg(tiny_demo, epochs=1), stc, **_paths(tmp_path / "run"))
        assert (subnormal * 1.0).item() == 0.0
    finally:
        torch.set_flush_denormal(False)


# --------------------------------------------------------------------------- score


def test_infer_writes_raw_terms_per_object(tiny_demo, tmp_path):
    stc = build_stcs(tiny_demo, tmp_path)[0]
    cfg = _cfg(tiny_demo, epochs=1)
    model_path = T.train(cfg, stc, **_paths(tmp_path / "run"))
    out = tmp_path / "scores" / "train.csv"
    df = infer(str(model_path), stc, str(out), cfg)
    ds = STCDataset(stc, flow_scale=cfg["train"]["flow_scale"])
    assert len(df) == len(ds)
    assert list(df.columns) == INDEX + ["s_f", "s_p"]
    assert np.isfinite(df[["s_f", "s_p"]].to_numpy()).all()
    assert (df["s_f"].between(0, 2)).all() and (df["s_p"] >= 0).all()
    back = pd.read_csv(out, dtype={"video": str})
    assert back["video"].iloc[0] == "01"
    # the stored terms are the model's on that sample
    model, _ = T.load_model(str(model_path), torch.device("cpu"))
    i = len(ds) // 2
    app, flow = ds[i]
    with torch.no_grad():
        terms = T.compute_terms(model, app[None], flow[None])
    assert df["s_p"].iloc[i] == pytest.approx(float(terms["int"][0]), rel=1e-4)
    assert df["s_f"].iloc[i] == pytest.approx(float(terms["sim"][0]), rel=1e-4, abs=1e-6)
    # score.train_cubes: every s-th cube only, the same terms as scoring them all
    cap = len(ds) // 3
    some = infer(str(model_path), stc, str(tmp_path / "scores" / "some.csv"), cfg, max_cubes=cap)
    step = -(-len(ds) // cap)
    assert len(some) <= cap and some[INDEX].equals(df[INDEX].iloc[::step].reset_index(drop=True))
    np.testing.assert_allclose(some[["s_f", "s_p"]], df[["s_f", "s_p"]].iloc[::step], rtol=1e-5, atol=1e-7)
    assert infer(str(model_path), stc, str(tmp_path / "scores" / "all.csv"), cfg, max_cubes=len(ds)).equals(df)


def _scores(s_f, s_p, videos=None) -> pd.DataFrame:
    n = len(s_f)
    return pd.DataFrame({
        "video": videos or ["01"] * n, "frame": np.arange(n) + 4,
        "x1": 0, "y1": 0, "x2": 8, "y2": 8, "s_f": s_f, "s_p": s_p,
    })


def test_fuse_uses_training_statistics(tmp_path):
    _scores([1.0, 2.0, 3.0], [10.0, 10.0, 10.0]).to_csv(tmp_path / "train.csv", index=False)
    _scores([2.0, 4.0, float("nan")], [12.0, 9.0, 10.0], ["01", "01", "02"]).to_csv(tmp_path / "test.csv", index=False)
    cfg = {"score": {"w_f": 2.0, "w_p": 0.5}}
    df = Fu.fuse(str(tmp_path / "train.csv"), str(tmp_path / "test.csv"), str(tmp_path / "out.csv"),
                 cfg, str(tmp_path / "stats.json"))
    sd_f = math.sqrt(2 / 3)  # population std of 1, 2, 3
    np.testing.assert_allclose(df["z_f"], [0.0, 2.0 / sd_f, 0.0])  # NaN (no motion stream) -> 0
    np.testing.assert_allclose(df["z_p"], [2.0, -1.0, 0.0])        # std 0 -> divided by 1
    np.testing.assert_allclose(df["score"], 2.0 * df["z_f"] + 0.5 * df["z_p"])
    np.testing.assert_allclose(df["score"], [1.0, 4.0 / sd_f - 0.5, 0.0])
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["s_f"]["mean"] == pytest.approx(2.0) and stats["s_f"]["std"] == pytest.approx(sd_f)
    assert stats["s_f"]["weight"] == 2.0
    assert stats["s_p"] == {"mean": 10.0, "std": 1.0, "weight": 0.5}
    back = pd.read_csv(tmp_path / "out.csv", dtype={"video": str})
    assert back["video"].tolist() == ["01", "01", "02"]
    for col in INDEX + ["s_f", "s_p", "z_f", "z_p", "score"]:
        assert col in back.columns
    np.testing.assert_allclose(back["score"], df["score"])


def test_fuse_weights_select_a_term(tmp_path):
    _scores([0.1, 0.3], [1.0, 3.0]).to_csv(tmp_path / "train.csv", index=False)
    _scores([0.3, 0.1], [1.0, 3.0]).to_csv(tmp_path / "test.csv", index=False)
    only_p = Fu.fuse(str(tmp_path / "train.csv"), str(tmp_path / "test.csv"), str(tmp_path / "p.csv"),
                     {"score": {"w_f": 0.0, "w_p": 1.0}})
    only_f = Fu.fuse(str(tmp_path / "train.csv"), str(tmp_path / "test.csv"), str(tmp_path / "f.csv"),
                     {"score": {"w_f": 1.0, "w_p": 0.0}})
    np.testing.assert_allclose(only_p["score"], [-1.0, 1.0])
    np.testing.assert_allclose(only_f["score"], [1.0, -1.0])
    assert not (tmp_path / "stats.json").exists()


def test_fuse_missing_column_names_the_file(tmp_path):
    _scores([1.0], [1.0]).to_csv(tmp_path / "train.csv", index=False)
    _scores([1.0], [1.0]).drop(columns="s_p").to_csv(tmp_path / "test.csv", index=False)
    with pytest.raises(VadError, match="test.csv"):
        Fu.fuse(str(tmp_path / "train.csv"), str(tmp_path / "test.csv"), str(tmp_path / "o.csv"),
                {"score": {"w_f": 1.0, "w_p": 1.0}})


@pytest.mark.parametrize("values, expected", [
    ([1.0, 2.0, 3.0], (2.0, math.sqrt(2 / 3))),
    ([5.0, 5.0, 5.0], (5.0, 1.0)),                        # std 0 -> 1
    ([float("nan"), float("inf"), 1.0, 3.0], (2.0, 1.0)),  # non-finite values ignored
    ([], (0.0, 1.0)),
    ([float("nan")] * 3, (0.0, 1.0)),
])
def test_zstats(values, expected):
    mu, sd = Fu.zstats(np.asarray(values, dtype=float))
    assert mu == pytest.approx(expected[0]) and sd == pytest.approx(expected[1])
    assert sd > 0


def test_hflip_mirrors_frames_and_negates_horizontal_flow_of_selected_cubes_only():
    app = torch.arange(2 * 5 * 1 * 2 * 3, dtype=torch.float32).reshape(2, 5, 1, 2, 3)
    flow = torch.arange(2 * 4 * 2 * 2 * 3, dtype=torch.float32).reshape(2, 4, 2, 2, 3)
    a, f = T.hflip(app, flow, torch.tensor([True, False]))
    assert torch.equal(a[0], app[0].flip(-1)) and torch.equal(a[1], app[1])
    assert torch.equal(f[0, :, 0], -flow[0, :, 0].flip(-1))  # x component: mirrored and negated
    assert torch.equal(f[0, :, 1], flow[0, :, 1].flip(-1))   # y component: mirrored only
    assert torch.equal(f[1], flow[1])


def test_bench_models_script_runs_and_writes_json(tmp_path, capsys):
    """benchmarks/bench_models.py at a toy size: the table, the FLOP counts, the JSON."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_models", REPO / "benchmarks" / "bench_models.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.json"
    assert bench.main(["--configfile", str(REPO / "config.yaml"), "--device", "cpu", "--widths", "2",
                       "--colors", "gray", "--batch", "4", "--infer-batch", "4", "--seconds", "0",
                       "--warmup", "0", "--threads", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [(r["model"], r["width"], r["color"]) for r in result["rows"]] == [("amsrc", 2, "gray"), ("mgsm", 2, "gray")]
    for r in result["rows"]:
        assert r["train_samples_per_s"] > 0 and r["infer_samples_per_s"] > 0
        assert 2 * r["fwd_gflop_per_sample"] < r["train_gflop_per_sample"] < 4 * r["fwd_gflop_per_sample"]
    assert "amsrc" in capsys.readouterr().out


def test_bench_models_times_each_ablation_training_once(tmp_path, base_config):
    """--ablation DATASET: one row per training the ablation needs there, with its minutes."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_models", REPO / "benchmarks" / "bench_models.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.json"
    assert bench.main(["--configfile", str(REPO / "config.yaml"), "--device", "cpu", "--ablation", "ped2",
                       "--cubes", "1000", "--batch", "2", "--infer-batch", "2", "--seconds", "0",
                       "--warmup", "0", "--threads", "1", "--out", str(out)]) == 0
    rows = {r["run"]: r for r in json.loads(out.read_text())["rows"]}
    assert list(rows) == [v for v in base_config["ablation"] if v != "mgsm_mem40"]  # Ped2's mem40 is mgsm
    assert rows["amsrc_baseline"]["model"] == "amsrc" and rows["mgsm_mem240"]["model"] == "mgsm"
    assert {r["width"] for r in rows.values()} == {16} and {r["color"] for r in rows.values()} == {"gray"}
    for r in rows.values():   # 20 epochs of 1000 cubes at the measured rate
        assert r["train_minutes"] == pytest.approx(20 * 1000 / r["train_samples_per_s"] / 60)
