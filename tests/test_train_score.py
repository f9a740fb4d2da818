"""Training, checkpoints and resumption (vad_pipeline.train); object scores (vad_pipeline.score)."""

from __future__ import annotations

import copy
import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tests.conftest import build_stcs
from vad_pipeline import score as Sc
from vad_pipeline import train as T
from vad_pipeline.io import VadError
from vad_pipeline.stc import INDEX, STCDataset


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


def _paths(root: Path) -> dict[str, str]:
    return {"out_model": str(root / "model.pt"), "out_log": str(root / "loss.csv")}


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
    for col in ("loss", "int", "gd", "sim", "lr", "seconds", "samples_per_s"):
        assert col in log.columns
    assert np.isfinite(log[["loss", "int", "gd", "sim"]].to_numpy()).all()
    assert log["loss"].iloc[-1] < log["loss"].iloc[0]  # it learns something
    # loss = lambda-weighted sum of the terms (all lambdas 1 in the shipped config)
    np.testing.assert_allclose(log["loss"], log["int"] + log["gd"] + log["sim"], rtol=1e-4)
    ckpt = torch.load(run / "ckpt" / "last.pt", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 2 and len(ckpt["history"]) == 2
    assert {"model", "optimizer", "scheduler", "config_hash", "rng"} <= set(ckpt)
    final = torch.load(out, map_location="cpu", weights_only=True)
    assert final["in_frames"] == cfg["stc"]["t_past"] and final["channels"] == 3
    assert final["flow_scale"] == cfg["train"]["flow_scale"]
    assert final["model_cfg"] == cfg["model"]
    assert _state_dicts_equal(final["model"], ckpt["model"])
    assert not list(run.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_custom_checkpoint_folder(tiny_demo, tmp_path):
    stc = build_stcs(tiny_demo, tmp_path)[0]
    T.train(_cfg(tiny_demo, epochs=1), stc, **_paths(tmp_path / "run"), ckpt_dir=str(tmp_path / "elsewhere"))
    assert (tmp_path / "elsewhere" / "last.pt").is_file()
    assert not (tmp_path / "run" / "ckpt").exists()


def test_killed_run_resumes_where_it_stopped(tiny_demo, tmp_path, monkeypatch, caplog):
    stc = build_stcs(tiny_demo, tmp_path)[0]
    cfg = _cfg(tiny_demo, epochs=2)
    run = tmp_path / "run"
    real_terms = T.compute_terms
    epochs = _Epochs(monkeypatch)

    def dies_in_second_epoch(*args):
        if len(epochs.saved) == 1:
            raise KeyboardInterrupt  # the job is killed during epoch 2
        return real_terms(*args)

    monkeypatch.setattr(T, "compute_terms", dies_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        T.train(cfg, stc, **_paths(run))
    assert epochs.saved == [1]
    assert not (run / "model.pt").exists() and not (run / "loss.csv").exists()

    monkeypatch.setattr(T, "compute_terms", real_terms)
    epochs.saved.clear()
    caplog.set_level(logging.INFO, logger="vad_pipeline.train")
    T.train(cfg, stc, **_paths(run))
    assert epochs.saved == [2]  # only the missing epoch ran
    assert "resuming" in caplog.text
    assert pd.read_csv(run / "loss.csv")["epoch"].tolist() == [1, 2]

    # the result is the one of an uninterrupted run
    fresh = tmp_path / "fresh"
    T.train(cfg, stc, **_paths(fresh))
    a = torch.load(run / "model.pt", weights_only=True)["model"]
    b = torch.load(fresh / "model.pt", weights_only=True)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    la, lb = pd.read_csv(run / "loss.csv"), pd.read_csv(fresh / "loss.csv")
    np.testing.assert_allclose(la["loss"], lb["loss"], rtol=1e-4)


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


def test_other_configuration_trains_from_scratch(tiny_demo, tmp_path, monkeypatch, caplog):
    stc = build_stcs(tiny_demo, tmp_path)[0]
    run = tmp_path / "run"
    T.train(_cfg(tiny_demo, epochs=1), stc, **_paths(run))
    epochs = _Epochs(monkeypatch)
    caplog.set_level(logging.INFO, logger="vad_pipeline.train")
    T.train(_cfg(tiny_demo, epochs=1, lr=0.001), stc, **_paths(run))
    assert "another configuration" in caplog.text
    assert epochs.saved == [1]
    log = pd.read_csv(run / "loss.csv")
    assert log["epoch"].tolist() == [1] and log["lr"].iloc[0] == pytest.approx(0.001)


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


# --------------------------------------------------------------------------- score


def test_infer_writes_raw_terms_per_object(tiny_demo, tmp_path):
    stc = build_stcs(tiny_demo, tmp_path)[0]
    cfg = _cfg(tiny_demo, epochs=1)
    model_path = T.train(cfg, stc, **_paths(tmp_path / "run"))
    out = tmp_path / "scores" / "train.csv"
    df = Sc.infer(str(model_path), stc, str(out), cfg)
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
    df = Sc.fuse(str(tmp_path / "train.csv"), str(tmp_path / "test.csv"), str(tmp_path / "out.csv"),
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
    only_p = Sc.fuse(str(tmp_path / "train.csv"), str(tmp_path / "test.csv"), str(tmp_path / "p.csv"),
                     {"score": {"w_f": 0.0, "w_p": 1.0}})
    only_f = Sc.fuse(str(tmp_path / "train.csv"), str(tmp_path / "test.csv"), str(tmp_path / "f.csv"),
                     {"score": {"w_f": 1.0, "w_p": 0.0}})
    np.testing.assert_allclose(only_p["score"], [-1.0, 1.0])
    np.testing.assert_allclose(only_f["score"], [1.0, -1.0])
    assert not (tmp_path / "stats.json").exists()


def test_fuse_missing_column_names_the_file(tmp_path):
    _scores([1.0], [1.0]).to_csv(tmp_path / "train.csv", index=False)
    _scores([1.0], [1.0]).drop(columns="s_p").to_csv(tmp_path / "test.csv", index=False)
    with pytest.raises(VadError, match="test.csv"):
        Sc.fuse(str(tmp_path / "train.csv"), str(tmp_path / "test.csv"), str(tmp_path / "o.csv"),
                {"score": {"w_f": 1.0, "w_p": 1.0}})


@pytest.mark.parametrize("values, expected", [
    ([1.0, 2.0, 3.0], (2.0, math.sqrt(2 / 3))),
    ([5.0, 5.0, 5.0], (5.0, 1.0)),                        # std 0 -> 1
    ([float("nan"), float("inf"), 1.0, 3.0], (2.0, 1.0)),  # non-finite values ignored
    ([], (0.0, 1.0)),
    ([float("nan")] * 3, (0.0, 1.0)),
])
def test_zstats(values, expected):
    mu, sd = Sc.zstats(np.asarray(values, dtype=float))
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
