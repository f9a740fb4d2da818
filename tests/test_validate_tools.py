"""The tools that study the weight-free references on a finished run's files (tools/): they work
on a camera with one or two training videos (the time-block leave-out, as the workflow does) and
take their settings from the run's config, not the schema's defaults."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import REPO
from vad_pipeline import object_motion as M
from vad_pipeline import windows as W
from vad_pipeline.datasets import cameras as K
from vad_pipeline.io import write_csv

H, WD, N = 48, 64, 24
# camera a filmed twice (a fold holds one out: one video kept), camera b three times
VIDEOS = {"a_1": (0, 0.8), "a_2": (5, 1.0), "b_1": (1, 1.5), "b_2": (7, 1.2), "b_3": (3, 1.4)}


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _video(res: Path, name: str, seed: int, speed: float) -> None:
    """Flow and boxes of one training video: two 12 x 16 px objects walking right at ``speed``
    px/frame (one high, one low in the view), a little noise everywhere."""
    rng = np.random.default_rng(seed)
    flow = rng.normal(0, 0.05, (N, H, WD, 2)).astype(np.float16)
    flow[0] = 0
    rows = []
    for t in range(1, N):
        for i, (x0, y) in enumerate(((2, 4), (30, 28))):
            x = int(x0 + speed * (1 + i) * t) % (WD - 12)
            flow[t, y : y + 16, x : x + 12, 0] += speed * (1 + i)
            rows.append({"frame": t, "x1": x, "y1": y, "x2": x + 12, "y2": y + 16, "score": 1.0, "class": 0})
    (res / "flow" / "train").mkdir(parents=True, exist_ok=True)
    (res / "detect" / "train").mkdir(parents=True, exist_ok=True)
    with h5py.File(res / "flow" / "train" / f"{name}.h5", "w") as f:
        f.create_dataset("flow", data=flow)
        f.attrs.update(height=H, width=WD, downscale=1, quantum=0.0)
    pd.DataFrame(rows).to_csv(res / "detect" / "train" / f"{name}.csv", index=False)


def _config(path: Path, data: Path, **sections) -> Path:
    cfg = {"datasets": {"mc": {"layout": "frames", "root": str(data)}}, "presets": {"cpu": {}},
           "motion": {"k": 3}, "cells": {"windows": "grid", "size": 16, "stride": 16, "k": 3}, **sections}
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """results/mc of a run, as the tools read it: cameras, detections, flow, the S_m features
    and the S_c statistics of the training split."""
    from vad_pipeline import config as C

    root = tmp_path_factory.mktemp("validate")
    res = root / "results" / "mc"
    for name, (seed, speed) in VIDEOS.items():
        _video(res, name, seed, speed)
    write_csv(res / "cameras" / "train.csv", pd.DataFrame([("train", v, v[0], N) for v in VIDEOS], columns=K.COLUMNS))
    boxes = [str(res / "detect" / "train" / f"{v}.csv") for v in VIDEOS]
    flows = [str(res / "flow" / "train" / f"{v}.h5") for v in VIDEOS]
    cfg = C.resolve(C.load(_config(root / "config.yaml", root)), "mc")
    write_csv(res / "motion" / "features_train.csv", M.split_features(flows, boxes, cfg["motion"]))
    W.make_layout(boxes, flows, str(res / "cells" / "layout.json"), cfg["cells"])
    W.split_stats(flows, str(res / "cells" / "layout.json"), str(res / "cells" / "stats_train.h5"), cfg["cells"])
    return root


def test_validate_cameras_on_cameras_with_one_or_two_training_videos(run, tmp_path):
    """Each fold keeps one of camera a's two videos and two of camera b's: every camera's training
    scores are time blocks (cameras.few_videos 2), which need each row's frame; the tool stopped
    with a ValueError there. Faster movers (flow doubled) score above the held-out normal footage."""
    tool = _tool("validate_cameras")
    out = tmp_path / "validate.json"
    assert tool.main(["--results", str(run / "results" / "mc"), "--dataset", "mc", "--config",
                      str(run / "config.yaml"), "--folds", "2", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["folds"] == [["a_1", "b_1"], ["a_2", "b_2"]]
    for term in ("s_m", "s_c"):
        for mode in ("camera", "pooled"):
            assert set(result[term][mode]["cameras"]) == {"a", "b"}
    for mode in ("camera", "pooled"):   # measured: S_m 0.83-0.97, S_c 0.74-0.94
        assert min(result["s_m"][mode]["cameras"].values()) > 0.75, result["s_m"]
        assert min(result["s_c"][mode]["cameras"].values()) > 0.65, result["s_c"]


def test_validate_cameras_scores_the_reference_as_the_workflow_does(run):
    """The training scores it z-scores with are the workflow's (M.training_scores with the run's
    leave-out): a camera whose one kept video is scored in time blocks, each row against the rest."""
    from vad_pipeline import config as C
    from vad_pipeline.reference import leave_out

    tool = _tool("validate_cameras")
    res = C.resolve(C.load(run / "config.yaml"), "mc")
    features = pd.read_csv(run / "results" / "mc" / "motion" / "features_train.csv", dtype={"video": str})
    cams = {v: v[0] for v in VIDEOS}
    rows = tool.s_m(features, cams, res["motion"], leave_out(res, res["motion"]["frames"]), "camera", {"a_1"})
    assert set(rows["camera"]) == {"a"} and np.isfinite(rows["z"]).all()
    assert rows.loc[rows["label"] == 1, "z"].mean() > rows.loc[rows["label"] == 0, "z"].mean()


def test_validate_leave_out_takes_exclude_first_from_the_runs_config(run, tmp_path, capsys):
    tool = _tool("validate_leave_out")
    printed = []
    for first in (0, 6):
        cfg = _config(tmp_path / f"config_{first}.yaml", run, frame_scores={"exclude_first": first})
        assert tool.main(["--results", str(run / "results"), "--dataset", "mc", "--configfile", str(cfg),
                          "--clips", "2", "--unseen", "2"]) == 0
        printed.append(capsys.readouterr().out)
    assert "s_m one" in printed[0] and printed[0] != printed[1]   # frames 0-5 left out of the second
