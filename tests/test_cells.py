"""Cell motion term S_c (vad_pipeline.cells) and its pooling into the frame score (evaluate)."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest

from vad_pipeline import cells as C
from vad_pipeline import cli
from vad_pipeline import evaluate as E
from vad_pipeline.config import defaults
from vad_pipeline.io import VadError

H, W, N = 80, 120, 10
P = {**defaults()["cells"], "size": 40, "stride": 20, "frames": 1, "k": 1, "rows": 0, "cols": 0}


def _video(path, movers: list[tuple[int, int, float]], odd: dict | None = None):
    """A flow file: every frame from 1 on, a 20 x 20 patch at (x, y) moves ``speed`` px/frame to
    the right, per entry of ``movers``; ``odd``: {frame: (x, y, speed)} one more patch in that frame."""
    flow = np.zeros((N, H, W, 2), np.float16)
    for x, y, speed in movers:
        flow[1:, y : y + 20, x : x + 20, 0] = speed
    for t, (x, y, speed) in (odd or {}).items():
        flow[t, y : y + 20, x : x + 20, 0] = speed
    with h5py.File(path, "w") as f:
        f.create_dataset("flow", data=flow)
        f.attrs.update(height=H, width=W, downscale=1, quantum=0.0)
    return str(path)


def test_cell_statistics_hand_checked():
    flow = np.zeros((1, H, W, 2), np.float32)
    flow[0, 0:20, 0:20] = (3.0, -4.0)   # magnitude 5 in a quarter of the top-left 40 px cell
    s = C.cell_stats(flow, 40, 20, 1.0)
    assert s.shape == (3, 5, 5)   # rows at y 0, 20, 40; columns at x 0 .. 80
    assert s[0, 0] == pytest.approx([5.0, 1.25, 0.25, 0.75, -1.0])
    assert s[1, 1] == pytest.approx([0, 0, 0, 0, 0])   # the cell at (20, 20) does not reach the patch
    ys, xs, size = C.grid(30, 50, 40, 20)   # a cell never exceeds the frame
    assert size == 30 and list(ys) == [0] and list(xs) == [0, 20]


def test_unusual_speed_for_its_cell_scores_highest(tmp_path):
    """Training: slow movers at the top (far away), fast ones at the bottom (close by). A test frame
    with a fast mover at the top is the anomaly; the same speed at the bottom is not."""
    train = [_video(tmp_path / f"tr{i}.h5", [(10 + 10 * i, 0, 1.0), (60 + 10 * i, 50, 4.0)]) for i in range(3)]
    test = _video(tmp_path / "te.h5", [(20, 0, 1.0), (70, 50, 4.0)], odd={6: (60, 0, 4.0)})
    cfg = {"cells": P}
    C.split_stats(train, str(tmp_path / "stats_train.h5"), P)
    C.split_stats([test], str(tmp_path / "stats_test.h5"), P)
    C.cell_terms(str(tmp_path / "stats_train.h5"), str(tmp_path / "stats_test.h5"),
                 str(tmp_path / "train.csv"), str(tmp_path / "test.csv"), cfg)
    te = C.read_terms(str(tmp_path / "test.csv"))
    assert list(te["frame"]) == list(range(N))
    assert te["s_c"].idxmax() == 6   # the frame with the fast mover at the top
    top = te.loc[6]
    assert top["y1"] == 0 and top["x1"] <= 60 < top["x2"]   # its cell holds the mover
    others = te.drop(index=[0, 6])["s_c"]
    assert top["s_c"] > 3 * others.max()
    tr = C.read_terms(str(tmp_path / "train.csv"))   # each training video against the other two
    assert len(tr) == 3 * N and tr["s_c"].max() < top["s_c"]


def test_row_band_neighbourhood_and_k():
    """cols -1 compares a cell with every cell of its row; k averages the k nearest."""
    rng = np.random.default_rng(0)
    train = rng.normal(size=(20, 3, 4, 5))
    query = train[:2].copy()
    query[0, 1, 2] = train[5, 1, 3]   # another cell's statistics of the same row: close under cols -1
    same = C.cell_scores(train, query, np.ones(5), {"k": 1, "rows": 0, "cols": 0})
    band = C.cell_scores(train, query, np.ones(5), {"k": 1, "rows": 0, "cols": -1})
    assert band[0, 1, 2] == pytest.approx(0.0) and same[0, 1, 2] > 0
    assert np.allclose(same[1], 0) and np.allclose(band[1], 0)   # a training frame itself
    k3 = C.cell_scores(train, query, np.ones(5), {"k": 3, "rows": 0, "cols": 0})
    assert (k3[1] > 0).all()   # with k 3 the frame's own statistics are one of three
    self_left_out = C.cell_scores(train, train[:2], np.ones(5), {"k": 1, "rows": 0, "cols": 0}, skip_self=True)
    assert (self_left_out > 0).all()
    with pytest.raises(VadError, match="cell grids differ"):
        C.cell_scores(train, query[:, :2], np.ones(5), {"k": 1, "rows": 0, "cols": 0})


def _frames_inputs():
    objects = pd.DataFrame({"video": "01", "frame": [4, 5, 6], "x1": 0, "y1": 0, "x2": 10, "y2": 10,
                            "score": [0.5, 2.0, 1.0]})
    labels = pd.DataFrame({"video": "01", "frame": range(8), "label": [0, 0, 0, 0, 0, 0, 1, 1]})
    train = pd.DataFrame({"video": "t", "frame": range(8), "s_c": [9.0] * 4 + [1.0, 2.0, 3.0, 2.0],
                          "x1": 0, "y1": 0, "x2": 40, "y2": 40})
    test = pd.DataFrame({"video": "01", "frame": range(8), "s_c": [0, 0, 0, 0, 1.0, 1.0, 5.0, 6.0],
                         "x1": 0, "y1": 0, "x2": 40, "y2": 40})
    return objects, labels, (train, test)


def test_cell_term_pooled_into_frames():
    objects, labels, cells = _frames_inputs()
    cfg = {"frame_scores": {**defaults()["frame_scores"], "exclude_first": 4, "fill": "min"},
           "score": {"w_c": 1.0}}
    plain = E.frame_scores(objects, labels, cfg)
    off = E.frame_scores(objects, labels, {**cfg, "score": {"w_c": 0.0}}, cells)
    assert off["score"].tolist() == plain["score"].tolist()   # w_c 0: bit for bit
    on = E.frame_scores(objects, labels, cfg, cells).set_index("frame")
    # z from training frames 4..7 only (mean 2, std sqrt(0.5)); frame 7 has no object: fill 0.5
    sd = np.sqrt(0.5)
    assert on.loc[6, "score"] == pytest.approx(1.0 + (5.0 - 2.0) / sd)
    assert on.loc[7, "score"] == pytest.approx(0.5 + (6.0 - 2.0) / sd)
    assert on["score_c"].tolist() == cells[1]["s_c"].tolist()
    result = E.metrics(on.reset_index())
    assert result["auc_terms"]["s_c"] == 1.0   # S_c alone ranks the two abnormal frames first
    with pytest.raises(VadError, match="video 01 frame 7"):
        E.frame_scores(objects, labels, cfg, (cells[0], cells[1].iloc[:7]))


def test_cell_stage_from_the_command_line(tmp_path, capsys):
    """cell-stats, cell-terms, then frame-scores with both cell files; one of them alone is refused."""
    train = [_video(tmp_path / f"tr{i}.h5", [(10 + 10 * i, 0, 1.0)]) for i in range(2)]
    test = _video(tmp_path / "01.h5", [(20, 0, 1.0)], odd={6: (60, 0, 4.0), 7: (60, 0, 4.0)})
    params = json.dumps({"cells": P})
    c = tmp_path / "cells"
    for split, vids in (("train", train), ("test", [test])):
        assert cli.main(["cell-stats", "--params", params, "--flows", *vids, "--out", str(c / f"stats_{split}.h5")]) == 0
    assert cli.main(["cell-terms", "--params", params, "--train", str(c / "stats_train.h5"),
                     "--test", str(c / "stats_test.h5"), "--train-out", str(c / "train.csv"),
                     "--test-out", str(c / "test.csv")]) == 0
    objects, labels, _ = _frames_inputs()
    objects.to_csv(tmp_path / "o.csv", index=False)
    labels.to_csv(tmp_path / "l.csv", index=False)
    fs = {"frame_scores": {**defaults()["frame_scores"], "exclude_first": 4}, "score": {"w_c": 1.0}}
    base = ["frame-scores", "--params", json.dumps(fs), "--objects", str(tmp_path / "o.csv"),
            "--labels", str(tmp_path / "l.csv"), "--out", str(tmp_path / "f.csv")]
    assert cli.main(base + ["--cells-train", str(c / "train.csv"), "--cells-test", str(c / "test.csv")]) == 0
    f = pd.read_csv(tmp_path / "f.csv")
    assert E.metrics(f)["auc_terms"]["s_c"] == 1.0
    assert cli.main(base + ["--cells-train", str(c / "train.csv")]) == 1
    assert "both --cells-train and --cells-test" in capsys.readouterr().err
    assert cli.main(["cell-terms", "--params", params, "--train", str(c / "missing.h5"), "--test",
                     str(c / "stats_test.h5"), "--train-out", str(c / "x.csv"), "--test-out", str(c / "y.csv")]) == 1
    assert "missing.h5: cell statistics not found" in capsys.readouterr().err


def test_footage_of_another_frame_size_maps_to_the_training_grid(tmp_path, caplog):
    """A test video at twice the training resolution: its cells are compared with the training
    cells at the same relative place, and its highest cell's box is in its own pixels."""
    train = [_video(tmp_path / f"tr{i}.h5", [(10 + 10 * i, 0, 1.0), (60 + 10 * i, 50, 4.0)]) for i in range(2)]
    flow = np.zeros((N, 2 * H, 2 * W, 2), np.float16)
    flow[1:, 0:40, 40:80, 0] = 2.0   # the slow movers at the top, at double resolution
    flow[6, 0:40, 120:160, 0] = 8.0  # frame 6: a fast one at the top
    with h5py.File(tmp_path / "big.h5", "w") as f:
        f.create_dataset("flow", data=flow)
        f.attrs.update(height=2 * H, width=2 * W, downscale=1, quantum=0.0)
    C.split_stats(train, str(tmp_path / "stats_train.h5"), P)
    C.split_stats([str(tmp_path / "big.h5")], str(tmp_path / "stats_test.h5"), P)
    C.cell_terms(str(tmp_path / "stats_train.h5"), str(tmp_path / "stats_test.h5"),
                 str(tmp_path / "train.csv"), str(tmp_path / "test.csv"), {"cells": P})
    assert "mapped by relative position" in caplog.text
    te = C.read_terms(str(tmp_path / "test.csv"))
    assert te["s_c"].idxmax() == 6
    row = te.loc[6]   # a cell of the big frame that holds the fast mover
    assert row["y1"] < 40 and row["x1"] < 160 and row["x2"] > 120 and row["x2"] - row["x1"] == 40
    mapped, boxes = C.to_grid(np.arange(4 * 6).reshape(1, 4, 6, 1), np.zeros((4, 6, 4)), (2, 3))
    assert mapped[0, :, :, 0].tolist() == [[7, 9, 11], [19, 21, 23]]   # rows 1, 3 and columns 1, 3, 5
