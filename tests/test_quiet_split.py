"""A test split in which nothing is detected in any video (issue 27): a night-time test set is
normal footage, scored from the cell term S_c and the no-object fill like a single quiet video."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from tests.conftest import write_config
from tests.test_data_change import _copy_video, _dataset, _source, _write_gt
from vad_pipeline.io import VadError


def _no_boxes(path: Path) -> str:
    pd.DataFrame(columns=["frame", "x1", "y1", "x2", "y2", "score", "class"]).to_csv(path, index=False)
    return str(path)


def test_a_test_split_without_cubes_gives_an_empty_file_a_training_split_an_error(tiny_demo, tmp_path, caplog):
    """The cube file of a test split with no detection holds zero samples and its videos; infer
    writes the header alone, without the model; a training split like it is refused."""
    from vad_pipeline.datasets import get_video
    from vad_pipeline.flow import flow_video
    from vad_pipeline.infer import infer
    from vad_pipeline.stc import INDEX, build_split, read_index

    cfg = tiny_demo
    videos = [get_video(cfg, "test", n) for n in ("01", "02")]
    boxes = [_no_boxes(tmp_path / f"{v.name}.csv") for v in videos]
    flows = [str(tmp_path / f"{v.name}.h5") for v in videos]
    for v, f in zip(videos, flows):
        flow_video(v, cfg, f)
    out = tmp_path / "stc" / "test.h5"
    with caplog.at_level("WARNING"):
        assert build_split(videos, boxes, flows, cfg, str(out)) == 0
    assert "no object was detected in the test split" in caplog.text
    with h5py.File(out, "r") as f:
        s, t = cfg["stc"]["size"], cfg["stc"]["t_past"]
        assert f["app"].shape == (0, t + 1, 3, s, s) and f["flow"].shape == (0, t, 2, s, s)
        assert f.attrs["content_sha256"]
    assert read_index(str(out)).empty
    csv = tmp_path / "infer" / "test.csv"
    infer(str(tmp_path / "no_model.pt"), str(out), str(csv), cfg)   # the model is not needed
    df = pd.read_csv(csv)
    assert df.empty and list(df.columns) == INDEX + ["s_f", "s_p"]

    train = get_video(cfg, "train", "01")
    flow_video(train, cfg, str(tmp_path / "train_01.h5"))
    with pytest.raises(VadError, match="no cube could be built.*nothing to train on"):
        build_split([train], [_no_boxes(tmp_path / "train_01.csv")], [str(tmp_path / "train_01.h5")], cfg,
                    str(tmp_path / "stc" / "train.h5"))
    assert not (tmp_path / "stc" / "train.h5").exists()


@pytest.mark.slow
def test_a_test_split_without_any_object_is_scored(workdir, tiny_config, tmp_path):
    """Both test videos show their first frame throughout (nothing moves, nothing is detected);
    the training videos are the demo's. The empty test cube file flows through every stage
    (localisation too: the demo's pixel masks are kept), auc.json lists both videos, and the
    logs say the test split has no object."""
    from tests.smk import snakemake

    demo = _source(tiny_config, tmp_path, n_train=2, n_test=2)
    data = tmp_path / "data"
    for v in ("01", "02"):
        _copy_video(demo, "train", v, data)
        _copy_video(demo, "test", v, data, quiet=True)
    _write_gt(demo, data, ["01", "02"])   # the demo's labels: both classes, so an AUC from S_c and the fill
    masks = Path(demo["dataset"]["root"]) / "testing" / "pixel_masks"   # and its masks: localisation runs too
    shutil.copytree(masks, data / "testing" / "pixel_masks")
    _dataset(tiny_config, "night", data)
    write_config(tiny_config, workdir / "config.yaml")

    snakemake(workdir, "results/night/auc.json")
    res = workdir / "results" / "night"
    assert pd.read_csv(res / "infer" / "test.csv").empty
    assert pd.read_csv(res / "object_scores.csv").empty
    frames = pd.read_csv(res / "frame_scores.csv", dtype={"video": str})
    n = demo["demo"]["n_frames"]
    assert len(frames) == 2 * n and (frames["n_objects"] == 0).all()
    assert np.isfinite(frames["score"]).all() and frames["score_c"].notna().all()
    auc = json.loads((res / "auc.json").read_text())
    assert auc["videos_without_objects"] == ["01", "02"]
    assert auc["n_frames"] == 2 * (n - tiny_config["frame_scores"]["exclude_first"])
    assert auc["auc_micro"] is not None
    assert (res / "top_anomalies" / "contact_sheet.png").is_file()
    loc = json.loads((res / "localisation.json").read_text())
    assert loc["n_detections"] == 0 and auc["localisation"]["rbdc"] == loc["rbdc"]
    logs = workdir / "results" / "logs" / "night"
    assert "no object was detected in the test split" in (logs / "stc" / "test.log").read_text()
    assert "no object was detected in the test split" in (logs / "infer" / "test.log").read_text()
