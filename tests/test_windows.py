"""Cell motion term S_c (vad_pipeline.windows) and its pooling into the frame score (evaluate)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from vad_pipeline import cli
from vad_pipeline import evaluate as E
from vad_pipeline import windows as W
from vad_pipeline.config import defaults
from vad_pipeline.io import VadError
from vad_pipeline.reference import leave_out

H, WD, N = 80, 120, 10
P = {**defaults()["cells"], "size": 40, "stride": 20, "frames": 1, "k": 1, "rows": 0, "cols": 0}


def _video(path, movers: list[tuple[int, int, float]], odd: dict | None = None):
    """A flow file: every frame from 1 on, a 20 x 20 patch at (x, y) moves ``speed`` px/frame to
    the right, per entry of ``movers``; ``odd``: {frame: (x, y, speed)} one more patch in that frame."""
    flow = np.zeros((N, H, WD, 2), np.float16)
    for x, y, speed in movers:
        flow[1:, y : y + 20, x : x + 20, 0] = speed
    for t, (x, y, speed) in (odd or {}).items():
        flow[t, y : y + 20, x : x + 20, 0] = speed
    with h5py.File(path, "w") as f:
        f.create_dataset("flow", data=flow)
        f.attrs.update(height=H, width=WD, downscale=1, quantum=0.0)
    return str(path)


def _boxes(path, boxes=()):
    """A detections CSV with the given (x1, y1, x2, y2) boxes (frame 1)."""
    pd.DataFrame([(1, *b) for b in boxes], columns=["frame", "x1", "y1", "x2", "y2"]).to_csv(path, index=False)
    return str(path)


def _layout(tmp_path, flows, p=P, boxes=()):
    out = tmp_path / "layout.json"
    W.make_layout([_boxes(tmp_path / f"b{i}.csv", boxes) for i in range(len(flows))], flows, str(out), p)
    return str(out)


def test_window_statistics_hand_checked():
    flow = np.zeros((H, WD, 2), np.float32)
    flow[0:20, 0:20] = (3.0, -4.0)   # magnitude 5 in a quarter of the top-left 40 px cell
    boxes, rows, steps = W.grid_windows(H, WD, 40, 20)
    assert len(boxes) == 15 and rows.tolist() == [0] * 5 + [1] * 5 + [2] * 5 and (steps == 20).all()
    m = W.window_means(flow, boxes.astype(int), 1.0)
    assert m[0] == pytest.approx([1.25, 0.25, 0.75, -1.0])   # mean magnitude, moving, dx, dy
    assert m[6] == pytest.approx([0, 0, 0, 0])   # the cell at (20, 20) does not reach the patch
    # frame 2 pools flows 1, 2 (frames: 2): peak and mean of the window's mean magnitude
    s = W.pool(np.stack([np.zeros_like(m), m, 2 * m]), 2)
    assert s[2, 0] == pytest.approx([2.5, 1.875, 0.375, 1.125, -1.5])
    assert s[0, 0] == pytest.approx([0, 0, 0, 0, 0])   # frame 0: flow 0 alone (all zero)
    b, _, _ = W.grid_windows(30, 50, 40, 20)   # a cell never exceeds the frame
    assert b.tolist() == [[0, 0, 30, 30], [20, 0, 50, 30]]


def test_perspective_fitted_to_the_training_boxes(tmp_path, caplog):
    """Boxes 0.5 x bottom + 5 high and 0.25 x bottom wide: the fit recovers both lines, and each
    row of windows is scale x that size at its bottom row, overlapping by half."""
    rng = np.random.default_rng(0)
    bottom = rng.uniform(20, 80, 400).round()
    x1 = rng.uniform(0, 60, 400).round()
    boxes = np.stack([x1, bottom - (0.5 * bottom + 5), x1 + 0.25 * bottom, bottom], axis=1)
    fit = W.fit_perspective(boxes, 10)
    assert fit["height"] == pytest.approx([0.5, 5.0], abs=0.2) and fit["width"] == pytest.approx([0.25, 0.0], abs=0.2)
    win, rows, steps = W.perspective_windows(H, WD, {"height": [0.5, 5.0], "width": [0.25, 0.0]}, 0.8, 10)
    last = win[rows == rows.max()]
    assert (last[:, 3] == 80).all() and (last[:, 3] - last[:, 1] == 36).all()   # 0.8 x (0.5 x 80 + 5)
    assert (last[:, 2] - last[:, 0] == 16).all() and np.diff(last[:, 0]).max() == 8
    assert last[-1, 2] == WD   # the right edge is covered
    first = win[rows == 0]   # bottom row 10: 0.8 x 10 = 8 px, raised to row_step
    assert (first[:, 3] - first[:, 1] == 10).all()
    assert W.fit_perspective(boxes[:5], 10) is None   # too few boxes in every band
    one = W.fit_perspective(np.repeat([[0, 10, 6, 30]], 25, axis=0), 10)
    assert one == {"height": [0.0, 20.0], "width": [0.0, 6.0]}
    flows = [_video(tmp_path / "tr.h5", [(10, 0, 1.0)])]
    grid = json.loads(Path(_layout(tmp_path, flows, {**P, "windows": "perspective"})).read_text())["cameras"]["all"]
    assert grid["windows"] == "grid" and "square cells instead" in caplog.text


def test_unusual_speed_for_its_row_scores_highest(tmp_path):
    """Training: slow movers at the top (far away), fast ones at the bottom (close by). A test frame
    with a fast mover at the top is the anomaly; the same speed at the bottom is not."""
    train = [_video(tmp_path / f"tr{i}.h5", [(10 + 10 * i, 0, 1.0), (60 + 10 * i, 50, 4.0)]) for i in range(3)]
    test = _video(tmp_path / "te.h5", [(20, 0, 1.0), (70, 50, 4.0)], odd={6: (60, 0, 4.0)})
    cfg = {"cells": P}
    layout = _layout(tmp_path, train)
    W.split_stats(train, layout, str(tmp_path / "stats_train.h5"), P)
    W.split_stats([test], layout, str(tmp_path / "stats_test.h5"), P)
    W.TERM.write(str(tmp_path / "stats_train.h5"), str(tmp_path / "stats_test.h5"),
                 str(tmp_path / "train.csv"), str(tmp_path / "test.csv"), cfg)
    te = W.read_terms(str(tmp_path / "test.csv"))
    assert list(te["frame"]) == list(range(N))
    assert te["s_c"].idxmax() == 6   # the frame with the fast mover at the top
    top = te.loc[6]
    assert top["y1"] == 0 and top["x1"] <= 60 < top["x2"]   # its cell holds the mover
    others = te.drop(index=[0, 6])["s_c"]
    assert top["s_c"] > 3 * others.max()
    tr = W.read_terms(str(tmp_path / "train.csv"))   # each training video against the other two
    assert len(tr) == 3 * N and tr["s_c"].max() < top["s_c"]


def test_row_band_neighbourhood_and_k():
    """cols -1 compares a window with every window of its row; k averages the k nearest."""
    boxes, rows, steps = W.grid_windows(60, 80, 20, 20)   # 3 rows of 4
    layout = {"boxes": (boxes / [80, 60, 80, 60]).tolist(), "rows": rows.tolist(), "steps": (steps / 80).tolist()}
    rng = np.random.default_rng(0)
    train = rng.normal(size=(20, 12, 5))
    query = train[:2].copy()
    query[0, 6] = train[5, 7]   # another window's statistics of the same row: close under cols -1
    same = W.cell_scores(train, query, np.ones(5), layout, {"k": 1, "rows": 0, "cols": 0})
    band = W.cell_scores(train, query, np.ones(5), layout, {"k": 1, "rows": 0, "cols": -1})
    near = W.cell_scores(train, query, np.ones(5), layout, {"k": 1, "rows": 0, "cols": 1})
    assert band[0, 6] == pytest.approx(0.0) and near[0, 6] == pytest.approx(0.0) and same[0, 6] > 0
    assert np.allclose(same[1], 0) and np.allclose(band[1], 0)   # a training frame itself
    k3 = W.cell_scores(train, query, np.ones(5), layout, {"k": 3, "rows": 0, "cols": 0})
    assert (k3[1] > 0).all()   # with k 3 the frame's own statistics are one of three
    leave = leave_out(defaults())
    one_video = W.training_cell_scores(train, np.zeros(20), np.ones(5), layout, {"k": 1, "rows": 0, "cols": 0}, leave)
    assert (one_video > 0).all()   # a frame's own statistics left out
    lovo = W.training_cell_scores(train, np.arange(20) % 4, np.ones(5), layout, {"k": 1, "rows": 0, "cols": 0},
                                  leave)
    np.testing.assert_allclose(lovo[np.arange(20) % 4 == 1], W.cell_scores(
        train[np.arange(20) % 4 != 1], train[np.arange(20) % 4 == 1], np.ones(5), layout, {"k": 1, "rows": 0, "cols": 0}))
    with pytest.raises(VadError, match="window layouts differ"):
        W.cell_scores(train, query[:, :6], np.ones(5), layout, {"k": 1, "rows": 0, "cols": 0})


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
    # score_c is S_c as the frame score takes it: z-scored with the training frames' statistics
    assert on["score_c"].to_numpy() == pytest.approx((cells[1]["s_c"].to_numpy() - 2.0) / sd)
    result = E.metrics(on.reset_index())
    assert result["auc_terms"]["s_c"] == 1.0   # S_c alone ranks the two abnormal frames first
    with pytest.raises(VadError, match="video 01 frame 7"):
        E.frame_scores(objects, labels, cfg, (cells[0], cells[1].iloc[:7]))


def test_cell_stage_from_the_command_line(tmp_path, capsys):
    """cell-layout (perspective, from the training boxes), cell-stats, cell-terms, then frame-scores
    with both cell files; one of them alone is refused."""
    train = [_video(tmp_path / f"tr{i}.h5", [(10 + 10 * i, 0, 1.0)]) for i in range(2)]
    test = _video(tmp_path / "01.h5", [(20, 0, 1.0)], odd={6: (60, 0, 4.0), 7: (60, 0, 4.0)})
    params = json.dumps({"cells": {**P, "windows": "perspective", "scale": 1.0}})
    c = tmp_path / "cells"
    walkers = [(x, 0, x + 12, 20) for x in range(0, 100, 4)] + [(x, 40, x + 24, 80) for x in range(0, 90, 4)]
    boxes = [_boxes(tmp_path / f"tr{i}.csv", walkers) for i in range(2)]
    assert cli.main(["cell-layout", "--params", params, "--boxes", *boxes, "--flows", *train,
                     "--out", str(c / "layout.json")]) == 0
    layout = json.loads((c / "layout.json").read_text())["cameras"]["all"]
    assert layout["windows"] == "perspective" and layout["perspective"]["height"] == pytest.approx([1 / 3, 40 / 3])
    for split, vids in (("train", train), ("test", [test])):
        assert cli.main(["cell-stats", "--params", params, "--flows", *vids, "--layout", str(c / "layout.json"),
                         "--out", str(c / f"stats_{split}.h5")]) == 0
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


def test_footage_of_another_frame_size_is_covered_at_the_same_places(tmp_path):
    """A test video at twice the training resolution: the layout (fractions of the frame) puts its
    windows at the same places of the view, twice as large, and its highest window's box is in
    its own pixels."""
    train = [_video(tmp_path / f"tr{i}.h5", [(10 + 10 * i, 0, 1.0), (60 + 10 * i, 50, 4.0)]) for i in range(2)]
    flow = np.zeros((N, 2 * H, 2 * WD, 2), np.float16)
    flow[1:, 0:40, 40:80, 0] = 1.0   # the slow movers at the top, at double resolution
    flow[6, 0:40, 120:160, 0] = 4.0  # frame 6: a fast one at the top
    with h5py.File(tmp_path / "big.h5", "w") as f:
        f.create_dataset("flow", data=flow)
        f.attrs.update(height=2 * H, width=2 * WD, downscale=1, quantum=0.0)
    layout = _layout(tmp_path, train)
    W.split_stats(train, layout, str(tmp_path / "stats_train.h5"), P)
    W.split_stats([str(tmp_path / "big.h5")], layout, str(tmp_path / "stats_test.h5"), P)
    W.TERM.write(str(tmp_path / "stats_train.h5"), str(tmp_path / "stats_test.h5"),
                 str(tmp_path / "train.csv"), str(tmp_path / "test.csv"), {"cells": P})
    te = W.read_terms(str(tmp_path / "test.csv"))
    assert te["s_c"].idxmax() == 6
    row = te.loc[6]   # a window of the big frame that holds the fast mover
    assert row["y1"] == 0 and row["x1"] < 160 and row["x2"] > 120 and row["x2"] - row["x1"] == 80
    (tmp_path / "o").mkdir()   # training statistics of another layout: refused, not mixed
    other = _layout(tmp_path / "o", train, {**P, "size": 20})
    W.split_stats(train, other, str(tmp_path / "o" / "stats_train.h5"), P)
    with pytest.raises(VadError, match="different window layouts"):
        W.TERM.write(str(tmp_path / "o" / "stats_train.h5"), str(tmp_path / "stats_test.h5"),
                     str(tmp_path / "x.csv"), str(tmp_path / "y.csv"), {"cells": P})


def test_every_cells_setting_is_tracked_by_exactly_one_stage():
    """The rules track only the keys their stage reads (a new k must not redo the statistics):
    a cells setting that none of them lists would change results without rerunning anything."""
    # frames is the statistics' setting; the terms read it too, as the least margin of their leave-out
    keys = [*W.LAYOUT_KEYS, *W.STATS_KEYS, *(k for k in W.TERMS_KEYS if k != "frames"), *W.JOBS_KEYS]
    assert len(keys) == len(set(keys))
    assert set(keys) == set(defaults()["cells"])
