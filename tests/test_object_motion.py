"""Motion-density term S_m (vad_pipeline.object_motion), its fusion (score.fuse) and its pooling to frames."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest

from vad_pipeline import cli
from vad_pipeline import evaluate as E
from vad_pipeline import object_motion as M
from vad_pipeline.config import defaults
from vad_pipeline.fusion import fuse
from vad_pipeline.io import VadError
from vad_pipeline.reference import leave_out

H, W, N = 120, 160, 12
P = {**defaults()["motion"], "k": 3, "frames": 1, "location_weight": 4.0}


def _scene(tmp_path, name: str, objects: list[tuple[int, int, float]]):
    """A video of ``N`` frames whose flow is ``speed`` px/frame (to the right) inside a 20 x 30 box
    at (x, y), one such object per entry (x, y, speed), every frame from 1 on; its boxes CSV."""
    flow = np.zeros((N, H, W, 2), np.float16)
    rows = []
    for x, y, speed in objects:
        flow[1:, y : y + 30, x : x + 20, 0] = speed
        rows += [{"frame": t, "x1": x, "y1": y, "x2": x + 20, "y2": y + 30, "score": 1.0, "class": 0}
                 for t in range(1, N)]
    fp, bp = tmp_path / f"{name}.h5", tmp_path / f"{name}.csv"
    with h5py.File(fp, "w") as f:
        f.create_dataset("flow", data=flow)
        f.attrs.update(height=H, width=W, downscale=1, quantum=0.0)
    pd.DataFrame(rows).to_csv(bp, index=False)
    return str(fp), str(bp)


def _perspective(tmp_path, name: str, shift: int = 0):
    """Far away (top) objects move 1 px/frame, close ones (bottom) 4 px/frame: normal footage."""
    return _scene(tmp_path, name, [(10 + shift, 5, 1.0), (100 - shift, 5, 1.0), (30 + shift, 85, 4.0),
                                   (120 - shift, 85, 4.0)])


def test_object_features_hand_checked(tmp_path):
    fp, bp = _scene(tmp_path, "v", [(40, 20, 3.0)])
    df = M.object_features(fp, bp, "v", {**P, "moving_px": 1.0})
    assert list(df.columns) == M.INDEX + M.FEATURES and len(df) == N - 1
    row = df.iloc[0]
    assert (row["video"], row["frame"], row["x1"], row["y2"]) == ("v", 1, 40, 50)
    assert (row["mag_mean"], row["mag_p95"], row["moving"], row["dx"], row["dy"]) == (3.0, 3.0, 1.0, 3.0, 0.0)
    assert row["width"] == pytest.approx(20 / W) and row["height"] == pytest.approx(30 / H)
    assert (row["cx"], row["cy"]) == pytest.approx((50 / W, 35 / H))


def test_unusual_speed_for_its_place_scores_highest(tmp_path):
    """An object at the top moving at the speed of the close (bottom) objects is the anomaly:
    the same speed at the bottom is normal, and so is the slow speed at the top."""
    train = M.split_features(*zip(*[_perspective(tmp_path, f"tr{i}", shift=2 * i) for i in range(3)]), P)
    odd = _scene(tmp_path, "te", [(60, 5, 4.0), (20, 5, 1.0), (70, 85, 4.0)])   # top object at 4 px/frame
    test = M.split_features([odd[0]], [odd[1]], P)
    s = M.density_scores(train, test, P)
    per_object = pd.Series(s).groupby(test["x1"].to_numpy()).mean()
    assert per_object.idxmax() == 60
    assert per_object[60] > 2.5 * max(per_object[20], per_object[70])
    # where it is matters: without the location the fast top object looks like the bottom ones
    blind = pd.Series(M.density_scores(train, test, {**P, "location_weight": 0.0})).groupby(test["x1"].to_numpy()).mean()
    assert blind[60] == pytest.approx(blind[70], abs=0.2)
    # training objects, each video against the others: as low as normal test objects
    own = M.training_scores(train, P, leave_out(defaults(), P["frames"]))
    assert own.shape == (len(train),) and own.max() < per_object[60] / 2.5


def test_motion_stage_cli_and_fusion(tmp_path):
    """motion-features and motion-terms from the command line; score with w_m = 0 is the two-term
    score bit for bit, with w_m > 0 it adds w_m * z(S_m) (z with the training objects' S_m)."""
    tr = [_perspective(tmp_path, f"tr{i}", shift=2 * i) for i in range(3)]
    te = _scene(tmp_path, "te", [(60, 5, 4.0), (20, 5, 1.0)])
    params = '{"motion": {"frames": 1, "moving_px": 1.0, "k": 3, "location_weight": 4.0}}'
    m = tmp_path / "motion"
    for split, vids in (("train", tr), ("test", [te])):
        assert cli.main(["motion-features", "--params", params, "--boxes", *[b for _, b in vids],
                         "--flows", *[f for f, _ in vids], "--out", str(m / f"features_{split}.csv")]) == 0
    assert cli.main(["motion-terms", "--params", params, "--train", str(m / "features_train.csv"),
                     "--test", str(m / "features_test.csv"), "--train-out", str(m / "train.csv"),
                     "--test-out", str(m / "test.csv")]) == 0
    mtr, mte = pd.read_csv(m / "train.csv", dtype={"video": str}), pd.read_csv(m / "test.csv", dtype={"video": str})
    assert list(mte.columns) == M.INDEX + ["s_m"] and len(mtr) == 3 * 4 * (N - 1)
    # the model's terms of the same objects (from frame 4 on, as the cubes), random
    rng = np.random.default_rng(0)
    for split, df in (("train", mtr), ("test", mte)):
        inf = df[df["frame"] >= 4][M.INDEX].copy()
        inf["s_f"], inf["s_p"] = rng.random(len(inf)), rng.random(len(inf))
        inf.to_csv(tmp_path / f"infer_{split}.csv", index=False)
    base = {"score": {"w_f": 1.0, "w_p": 0.3, "w_m": 0.0}}
    args = (str(tmp_path / "infer_train.csv"), str(tmp_path / "infer_test.csv"))
    two = fuse(*args, str(tmp_path / "two.csv"), base)
    zero = fuse(*args, str(tmp_path / "zero.csv"), base, str(tmp_path / "zero.json"),
                motion=(str(m / "train.csv"), str(m / "test.csv")))
    assert np.array_equal(two["score"].to_numpy(), zero["score"].to_numpy())
    assert (pd.read_csv(tmp_path / "two.csv")["score"] == pd.read_csv(tmp_path / "zero.csv")["score"]).all()
    one = fuse(*args, str(tmp_path / "one.csv"), {"score": {**base["score"], "w_m": 1.0}},
               motion=(str(m / "train.csv"), str(m / "test.csv")))
    mu, sd = mtr[mtr["frame"] >= 4]["s_m"].mean(), mtr[mtr["frame"] >= 4]["s_m"].std(ddof=0)
    np.testing.assert_allclose(one["score"], two["score"] + (one["s_m"] - mu) / sd)
    top = one.groupby("x1")["score"].mean()
    assert top.idxmax() == 60
    # an object of the model's without an S_m row: an error naming both files, not a z(S_m) of 0
    inf = pd.read_csv(tmp_path / "infer_test.csv", dtype={"video": str})
    inf.iloc[[0]].assign(x1=999).to_csv(tmp_path / "stray.csv", index=False)
    with pytest.raises(VadError, match=r"motion/test.csv: no S_m for 1 of the 1 objects of .*stray.csv"):
        fuse(args[0], str(tmp_path / "stray.csv"), str(tmp_path / "x.csv"), base,
             motion=(str(m / "train.csv"), str(m / "test.csv")))


def test_term_alone_is_pooled_to_frames_and_evaluated():
    """score_m is each frame's maximum S_m, and auc_terms reports S_m alone."""
    objects = pd.DataFrame({"video": ["a"] * 5, "frame": [0, 0, 1, 2, 2], "score": [0.1, 0.2, 0.3, 0.4, 0.5],
                            "s_f": [1, 2, 3, 4, 5.0], "s_p": [5, 4, 3, 2, 1.0], "s_m": [0.5, 2.0, 1.0, 0.1, 3.0]})
    objects[["z_f", "z_p", "z_m"]] = objects[["s_f", "s_p", "s_m"]].to_numpy()   # the fusion's z-scores: here the terms
    labels = pd.DataFrame({"video": ["a"] * 4, "frame": [0, 1, 2, 3], "label": [0, 0, 1, 0]})
    cfg = {"frame_scores": {**defaults()["frame_scores"], "exclude_first": 0}}
    fr = E.frame_scores(objects, labels, cfg)
    assert fr["score_m"].tolist() == [2.0, 1.0, 3.0, 0.1]   # frame 3 has no object: the lowest S_m
    m = E.metrics(fr)
    assert m["auc_terms"]["s_m"] == pytest.approx(1.0)
    assert set(m["auc_terms"]) == {"s_f", "s_p", "s_m"}


def test_best_box_flow_auc_diagnostic(tmp_path):
    """benchmark.json's proposal diagnostic: the frames whose best box moves fastest rank first."""
    root = tmp_path / "res" / "toy"
    (root / "detect" / "test").mkdir(parents=True)
    (root / "flow" / "test").mkdir(parents=True)
    fp, bp = _scene(tmp_path, "v", [(10, 5, 1.0), (100, 70, 1.5)])
    with h5py.File(fp, "r+") as f:   # frames 8.. : the second object speeds up to 5 px/frame
        flow = f["flow"][:]
        flow[8:, 70:100, 100:120, 0] = 5.0
        f["flow"][:] = flow
    (root / "flow" / "test" / "v.h5").write_bytes(open(fp, "rb").read())
    (root / "detect" / "test" / "v.csv").write_text(open(bp).read())
    pd.DataFrame({"video": "v", "frame": range(N), "label": [0] * 8 + [1] * (N - 8)}).to_csv(root / "labels.csv", index=False)
    assert M.best_box_flow_auc(str(tmp_path / "res"), "toy", 4) == pytest.approx(1.0)
    assert M.best_box_flow_auc(str(tmp_path / "res"), "other", 4) is None   # no labels: none
