"""Cameras: which camera each video comes from in every layout, each camera judged against its
own training data (z-scores, S_m and S_c references), and results per camera."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.conftest import REPO, tiny_overlay, write_config
from vad_pipeline import cli
from vad_pipeline import config as C
from vad_pipeline import datasets as D
from vad_pipeline.datasets import cameras as K
from vad_pipeline.datasets import holdout as HO
from vad_pipeline.io import VadError


def _cfg(layout="frames", cameras="auto", root="/nowhere"):
    return {"dataset": {"layout": layout, "root": str(root)}, "cameras": {"assign": cameras}}


VIDEOS = {"train": {"01_001": 10, "01_002": 10, "02_001": 5}, "test": {"01_0014": 8, "02_0001": 6}}


def test_cameras_by_layout_and_setting(tmp_path):
    assert K.mode(_cfg("shanghaitech")) == "prefix"   # ShanghaiTech: 01_001 is camera 01
    for layout in ("frames", "ucsd", "avenue", "demo", "videos"):
        assert K.mode(_cfg(layout, root=tmp_path)) == "one"
    (tmp_path / "cameras.csv").write_text("video,camera\n01_001,hall\n")
    assert K.mode(_cfg("videos", root=tmp_path)) == "file"   # own footage with a camera list
    assert K.mode(_cfg("frames", "prefix")) == "prefix"
    table = K.camera_table(_cfg("shanghaitech"), VIDEOS)
    assert dict(zip(table["video"], table["camera"])) == {"01_001": "01", "01_002": "01", "02_001": "02",
                                                          "01_0014": "01", "02_0001": "02"}
    few = C.defaults()["cameras"]["few_videos"]   # the schema's: 2
    assert K.summary(table, 10, few) == {
        "01": {"train_videos": 2, "train_frames": 20, "test_videos": 1, "test_frames": 8, "leave_out": "time blocks",
               "too_little_footage": False},
        "02": {"train_videos": 1, "train_frames": 5, "test_videos": 1, "test_frames": 6, "leave_out": "time blocks",
               "too_little_footage": True}}
    # cameras.few_videos 1: a camera filmed twice leaves each video out in turn
    assert K.summary(table, 0, 1)["01"]["leave_out"] == "videos"
    assert set(K.camera_table(_cfg("frames"), VIDEOS)["camera"]) == {K.ONE}


def test_a_test_camera_without_training_videos_is_an_error_naming_it(tmp_path):
    videos = {"train": {"01_001": 10}, "test": {"01_0014": 8, "07_0001": 6}}
    with pytest.raises(VadError, match="07_0001.*camera 07.*no training video"):
        K.camera_table(_cfg("shanghaitech"), videos)
    (tmp_path / "cameras.csv").write_text("video,camera\n01_001,hall\n01_0014,hall\n")
    with pytest.raises(VadError, match=r"cameras.csv: no camera for test video 07_0001"):
        K.camera_table(_cfg("videos", root=tmp_path), videos)
    (tmp_path / "cameras.csv").write_text("video,camera\n01_001,hall\n01_001,yard\n")
    with pytest.raises(VadError, match="01_001 is listed with two cameras"):
        K.camera_table(_cfg("videos", root=tmp_path), videos)


def _two_camera_terms(tmp_path):
    """Objects of two cameras whose S_f lives on different scales (camera 02's ten times 01's)."""
    rng = np.random.default_rng(0)
    rows = {"train": [], "test": []}
    for split, n in (("train", 200), ("test", 40)):
        for cam, scale in (("01", 1.0), ("02", 10.0)):
            for i in range(n):
                rows[split].append({"video": f"{cam}_{i % 2:03d}" if split == "train" else f"{cam}_0001",
                                    "frame": i, "x1": 0, "y1": 0, "x2": 4, "y2": 4,
                                    "s_f": scale * (1 + rng.random()), "s_p": 1.0})
    paths = {}
    for split, r in rows.items():
        paths[split] = tmp_path / f"infer_{split}.csv"
        pd.DataFrame(r).to_csv(paths[split], index=False)
    cams = {v: v[:2] for r in rows.values() for v in pd.DataFrame(r)["video"]}
    return paths, cams


def test_each_camera_is_z_scored_with_its_own_training_data(tmp_path):
    from vad_pipeline.fusion import fuse

    paths, cams = _two_camera_terms(tmp_path)
    cfg = {"score": {"w_f": 1.0, "w_p": 0.0, "w_m": 0.0}, "cameras": {"normalize": "camera"}}
    per = fuse(str(paths["train"]), str(paths["test"]), str(tmp_path / "o.csv"), cfg, str(tmp_path / "s.json"),
               cameras=cams)
    means = per.groupby("camera")["score"].mean()
    assert abs(means["01"] - means["02"]) < 0.5   # normal objects of both cameras alike
    stats = json.loads((tmp_path / "s.json").read_text())["s_f"]
    assert set(stats["cameras"]) == {"01", "02"} and stats["cameras"]["02"]["mean"] > 5 * stats["cameras"]["01"]["mean"]
    pooled = fuse(str(paths["train"]), str(paths["test"]), str(tmp_path / "p.csv"),
                  {**cfg, "cameras": {"normalize": "pooled"}}, cameras=cams)
    pm = pooled.groupby("camera")["score"].mean()
    assert pm["02"] - pm["01"] > 1.5   # pooled: camera 02's normal objects outscore 01's
    one = fuse(str(paths["train"]), str(paths["test"]), str(tmp_path / "n.csv"), cfg)   # no camera list
    np.testing.assert_array_equal(one["score"], pooled["score"])


def test_test_rows_are_z_scored_with_training_statistics_not_their_own():
    """Training and test rows from different distributions: each camera's test z-scores come
    from its training rows' mean and spread, so a camera whose whole test split moved up stands
    out, and a test split like its training data does not (z-scoring with the test rows' own
    statistics would centre both on 0)."""
    from vad_pipeline.fusion import camera_z

    rng = np.random.default_rng(1)
    train = pd.DataFrame({"camera": ["01"] * 300 + ["02"] * 300,
                          "s_f": np.r_[rng.normal(1.0, 0.1, 300), rng.normal(10.0, 2.0, 300)]})
    test = pd.DataFrame({"camera": ["01"] * 50 + ["02"] * 50,
                         "s_f": np.r_[rng.normal(1.5, 0.1, 50), rng.normal(10.0, 2.0, 50)]})
    z, stats = camera_z(train, test, "s_f", by_camera=True)
    one, two = test["camera"].to_numpy() == "01", test["camera"].to_numpy() == "02"
    for mine, cam in ((one, "01"), (two, "02")):
        ref = train.loc[train["camera"] == cam, "s_f"]
        np.testing.assert_allclose(z[mine], (test.loc[mine, "s_f"] - ref.mean()) / ref.std(ddof=0))
        assert stats["cameras"][cam]["mean"] == pytest.approx(ref.mean())
    assert z[one].mean() > 4 and abs(z[two].mean()) < 0.5


def test_motion_reference_per_camera(tmp_path):
    """Objects of camera 02 move fast as a rule; a fast object of camera 01 is unusual there,
    which only the per-camera reference sees."""
    from vad_pipeline import object_motion as M

    rng = np.random.default_rng(1)

    def objs(video, n, speed):
        f = rng.normal(0, 0.1, (n, len(M.FEATURES)))
        f[:, :2] += speed
        return pd.DataFrame(np.hstack([np.zeros((n, 2)), np.tile([0, 0, 5, 5], (n, 1)), f]),
                            columns=M.INDEX + M.FEATURES).assign(video=video, frame=np.arange(n))

    train = pd.concat([objs("01_a", 60, 1.0), objs("01_b", 60, 1.0), objs("02_a", 60, 5.0), objs("02_b", 60, 5.0)])
    test = pd.concat([objs("01_t", 10, 1.0), objs("01_t", 1, 5.0).assign(frame=99)])
    train.to_csv(tmp_path / "ftr.csv", index=False)
    test.to_csv(tmp_path / "fte.csv", index=False)
    cams = {v: v[:2] for v in ("01_a", "01_b", "02_a", "02_b", "01_t")}
    out = {}
    for mode in ("camera", "pooled"):
        cfg = {"motion": {**C.defaults()["motion"], "k": 3}, "cameras": {**C.defaults()["cameras"], "motion": mode}}
        M.TERM.write(str(tmp_path / "ftr.csv"), str(tmp_path / "fte.csv"), str(tmp_path / f"tr_{mode}.csv"),
                     str(tmp_path / f"te_{mode}.csv"), cfg, cams)
        te = pd.read_csv(tmp_path / f"te_{mode}.csv")
        out[mode] = te.loc[te["frame"] == 99, "s_m"].item() / te.loc[te["frame"] != 99, "s_m"].max()
    assert out["camera"] > 5 and out["pooled"] < out["camera"]


def test_metrics_per_camera():
    from vad_pipeline.evaluate import metrics

    rng = np.random.default_rng(0)
    rows = []
    for cam, n in (("01", 100), ("02", 60)):
        lab = (np.arange(n) % 5 == 0).astype(int)
        rows.append(pd.DataFrame({"video": f"{cam}_v", "frame": np.arange(n), "label": lab, "excluded": False,
                                  "score": lab + rng.normal(0, 0.3, n), "score_c": rng.random(n), "camera": cam}))
    m = metrics(pd.concat(rows, ignore_index=True))
    assert set(m["cameras"]) == {"01", "02"}
    assert m["cameras"]["02"]["n_frames"] == 60 and m["cameras"]["01"]["n_abnormal"] == 20
    assert 0.9 < m["cameras"]["01"]["auc_micro"] <= 1 and "s_c" in m["cameras"]["02"]["auc_terms"]


# End to end: a ShanghaiTech-layout set of three generated cameras that differ in perspective,
# object size, speed and amount of training footage (vad_pipeline.camera_set).


@pytest.mark.slow
def test_three_cameras_end_to_end(tmp_path):
    from tests.smk import snakemake
    from vad_pipeline.camera_set import build

    # short and small: the point is the wiring
    section = build(tmp_path / "data", "shanghaitech", (240, 320), 3, n_frames=30, n_train=2, n_test=1,
                    height=96, width=128)["joint"]
    wd = tmp_path / "run"
    wd.mkdir()
    cfg = C.deep_merge(C.load(REPO / "config.yaml"), {k: v for k, v in tiny_overlay().items() if k != "demo"})
    cfg["datasets"]["shanghaitech"].update(root=section["root"], frame_size=None)
    cfg["datasets"]["shanghaitech"].pop("presets", None)
    cfg["datasets"]["shanghaitech"]["models"]["mgsm"].pop("presets", None)
    write_config(cfg, wd / "config.yaml")
    snakemake(wd, "results/shanghaitech/auc.json")
    res = wd / "results" / "shanghaitech"
    summary = json.loads((res / "gt_summary.json").read_text())
    assert set(summary["cameras"]) == {"01", "02", "03"}
    assert summary["cameras"]["01"]["train_videos"] == 2 and summary["cameras"]["02"]["test_videos"] == 1
    frames = pd.read_csv(res / "frame_scores.csv", dtype={"camera": str})
    assert set(frames["camera"]) == {"01", "02", "03"}
    auc = json.loads((res / "auc.json").read_text())
    assert set(auc["cameras"]) == {"01", "02", "03"} and "s_c" in auc["cameras"]["01"]["auc_terms"]
    layouts = json.loads((res / "cells" / "layout.json").read_text())["cameras"]
    assert set(layouts) == {"01", "02", "03"}   # the shanghaitech section: cameras.cells camera
    assert "Per camera" in (res / "summary.html").read_text()
    # S_c pooled (the default elsewhere): the cell stages and what follows rerun, nothing before them
    (wd / "pooled.yaml").write_text("datasets: {shanghaitech: {cameras: {cells: pooled}}}\n")
    snakemake(wd, "results/shanghaitech/auc.json", "--configfile", "config.yaml", "pooled.yaml")
    assert set(json.loads((res / "cells" / "layout.json").read_text())["cameras"]) == {"all"}
    from tests.smk import planned_rules

    rules = planned_rules(wd, "results/shanghaitech/auc.json", "--configfile", "config.yaml", "pooled.yaml",
                          "--config", 'cameras={"normalize": "pooled"}')
    assert {"score", "frame_scores"} <= rules and not rules & {"train", "detect", "flow", "stc", "cell_layout"}


def test_cameras_cli_writes_the_camera_lists(tmp_path):
    """frames layout with cameras: prefix (names <camera>_<video>), via the CLI as the rules call it."""
    from vad_pipeline.demo import generate

    cfg = C.load(REPO / "config.yaml")
    cfg["demo"] = C.deep_merge(cfg["demo"], {**tiny_overlay()["demo"], "n_frames": 12})
    cfg["datasets"]["demo"]["root"] = str(tmp_path / "demo")
    res = C.resolve(cfg, "demo")
    generate(res["demo"], res["dataset"]["root"])
    for split in ("training", "testing"):   # rename 01 -> 05_01: camera 05
        for d in sorted((tmp_path / "demo" / split / "frames").iterdir()):
            d.rename(d.with_name(f"05_{d.name}"))
    # as the cameras and labels rules pass them: the resolved cameras.assign
    frames = {**res, "dataset": {**res["dataset"], "layout": "frames"}, "cameras": {"assign": "prefix"}}
    held = HO.keys(frames, D.training_cameras(frames))   # as the rules pass them: common.smk's holdout_keys
    assert "block" in held   # 2 training videos: a camera small enough for time blocks
    params = json.dumps({**C.stage_params(frames, "demo", "validation", only={"validation": held}),
                         "cameras": {"assign": K.mode(frames)}})
    out = tmp_path / "out"
    for split in ("train", "test"):
        assert cli.main(["cameras", "--params", params, "--root", str(tmp_path / "demo"), "--split", split,
                         "--out", str(out / f"{split}.csv")]) == 0
    assert cli.main(["labels", "--params", params, "--root", str(tmp_path / "demo"), "--out", str(out / "labels.csv"),
                     "--summary", str(out / "gt.json"), "--cameras", str(out / "train.csv"), str(out / "test.csv")]) == 0
    table = pd.concat([pd.read_csv(out / f"{s}.csv", dtype=str) for s in ("train", "test")])
    assert set(table["camera"]) == {"05"} and len(table) == 4 and set(pd.read_csv(out / "train.csv")["split"]) == {"train"}
    assert json.loads((out / "gt.json").read_text())["cameras"]["05"]["train_videos"] == 2
