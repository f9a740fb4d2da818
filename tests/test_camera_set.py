"""The multi-camera generator (vad_pipeline.camera_set, `vad-pipeline make-camera-set`): sets of
any number of cameras, each with its own training footage and frame size, that the pipeline's
dataset layer reads back (names, frame counts, cameras)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO
from vad_pipeline import cli
from vad_pipeline import config as C
from vad_pipeline import datasets as D
from vad_pipeline.camera_set import CAMERAS, camera_spec
from vad_pipeline.datasets.cameras import camera_table
from vad_pipeline.datasets.video import frame_size, iter_frames

# a tiny scene, few frames: the point is the files and names, not the pictures
TINY = json.dumps({"n_frames": 10, "n_test": 1, "height": 48, "width": 64})


def _make(capsys, out, *flags: str) -> dict:
    assert cli.main(["make-camera-set", "--out", str(out), "--demo", TINY, *flags]) == 0
    return json.loads(capsys.readouterr().out)["joint"]


def _read(section: dict) -> tuple[dict, dict]:
    """The set as the workflow resolves it: a dataset section of config.yaml."""
    res = C.resolve(C.deep_merge(C.load(REPO / "config.yaml"), {"datasets": {"set": section}}), "set")
    videos = {s: {n: D.get_video(res, s, n) for n in D.video_names(res, s)} for s in ("train", "test")}
    return res, videos


def test_videos_layout_with_two_frame_sizes_and_one_training_clip(tmp_path, capsys):
    out = tmp_path / "own"
    section = _make(capsys, out, "--layout", "videos", "--cameras", "3", "--size", "48x64,72x128,48x64",
                    "--train-clips", "1,2,3")
    assert section["cameras"] == "file" and (out / "cameras.csv").is_file() and (out / "labels.csv").is_file()
    res, videos = _read(section)
    assert list(videos["train"]) == ["01_01", "02_01", "02_02", "03_01", "03_02", "03_03"]
    assert list(videos["test"]) == ["01_01", "02_01", "03_01"]
    assert {p.suffix for p in (out / "train").iterdir()} >= {".avi", ".mp4"}   # real video files, mixed
    table = camera_table(res, {s: {n: v.n_frames for n, v in vs.items()} for s, vs in videos.items()})
    trained = table[table["split"] == "train"].groupby("camera").size().to_dict()
    assert trained == {"01": 1, "02": 2, "03": 3}   # camera 01: a single training clip
    assert set(table.loc[table["split"] == "test", "camera"]) == {"01", "02", "03"}
    assert set(table["frames"]) == {10}
    sizes = {(s, n): tuple(frame_size(v)) for s, vs in videos.items() for n, v in vs.items()}
    assert {sz for (_, n), sz in sizes.items() if n.startswith("02_")} == {(72, 128)}
    assert {sz for (_, n), sz in sizes.items() if not n.startswith("02_")} == {(48, 64)}
    v = videos["train"]["02_01"]
    assert sum(1 for _ in iter_frames(v)) == 10 and next(iter_frames(v)).shape == (72, 128, 3)
    labels = D.frame_labels(res, list(videos["test"].values()))
    assert {n: len(x) for n, x in labels.items()} == {n: 10 for n in videos["test"]}


def test_shanghaitech_layout_of_more_cameras_than_the_hand_written(tmp_path, capsys):
    section = _make(capsys, tmp_path / "sh", "--layout", "shanghaitech", "--cameras", "4", "--size", "48x64",
                    "--train-clips", "1")
    res, videos = _read(section)
    table = camera_table(res, {s: {n: v.n_frames for n, v in vs.items()} for s, vs in videos.items()})
    assert sorted(table["camera"].unique()) == ["01", "02", "03", "04"]
    assert (table[table["split"] == "train"].groupby("camera").size() == 1).all()
    assert D.pixel_masks(res, next(iter(videos["test"].values()))).shape == (10, 48, 64)


def test_camera_specs_beyond_the_three_are_varied_and_deterministic():
    assert [camera_spec(i) for i in range(3)] == CAMERAS
    specs = [camera_spec(i) for i in range(13)]   # ShanghaiTech's 13 cameras
    # the same in another interpreter (another hash seed, nothing drawn before): seed and index alone
    code = "import json; from vad_pipeline.camera_set import camera_spec; print(json.dumps([camera_spec(i) for i in range(13)]))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO,
                           env={**os.environ, "PYTHONHASHSEED": "123"})
    assert json.loads(other.stdout) == specs and specs[5] != camera_spec(5, seed=12)
    assert [camera_spec(i) for i in range(12, -1, -1)][::-1] == specs   # drawn in any order
    assert len({s["object_scale"] for s in specs}) > 8 and any(s["n_train"] == 1 for s in specs)
    for s in specs:
        C.validate({"datasets": {}, "demo": s})   # settings the demo accepts
        assert s["fast_speed"][0] > s["walker_speed"][1]   # the fast anomaly outruns every walker


@pytest.mark.parametrize("flags, message", [
    (["--cameras", "3", "--size", "48x64,72x128"], "size: 2 values for 3 cameras"),
    (["--train-clips", "0"], "--train-clips 0"),
    (["--size", "48"], "--size 48"),
])
def test_bad_flags_are_errors(tmp_path, capsys, flags, message):
    assert cli.main(["make-camera-set", "--out", str(tmp_path / "x"), "--demo", TINY, *flags]) == 1
    assert message in capsys.readouterr().err


def _own_footage_tool():
    import importlib.util

    spec = importlib.util.spec_from_file_location("own_footage", REPO / "tools" / "own_footage.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_own_footage_report_reads_the_clip_the_unseen_clips_and_the_cameras(tmp_path):
    """tools/own_footage.py: the clip's mean training terms (frames before the first full cube
    left out), the unseen clips' means, and the frame-weighted mean of the per-camera AUCs."""
    tool = _own_footage_tool()
    res = tmp_path / "r"
    for folder, term in (("motion", "s_m"), ("cells", "s_c")):
        (res / folder).mkdir(parents=True)
        pd.DataFrame({"video": ["a_01"] * 6 + ["b_01"] * 2, "frame": [0, 1, 4, 5, 6, 7, 4, 5],
                      term: [100.0, 100.0, 1.0, 2.0, 3.0, 4.0, 50.0, 50.0]}).to_csv(res / folder / "train.csv", index=False)
        pd.DataFrame({"video": ["a_n03", "a_n04", "a_01", "a_n03"], "frame": [4, 9, 5, 2],
                      term: [2.0, 4.0, 70.0, 99.0]}).to_csv(res / folder / "test.csv", index=False)
    means = tool.clip_means(res, "a_01", ["a_n03", "a_n04"], 4)
    assert means == {"s_m": 2.5, "s_m_unseen": 3.0, "s_c": 2.5, "s_c_unseen": 3.0}
    (res / "auc.json").write_text(json.dumps({"auc_micro": 0.9, "cameras": {
        "a": {"auc_micro": 0.8, "n_frames": 300}, "b": {"auc_micro": 1.0, "n_frames": 100}}}))
    got = tool.aucs(res)
    assert got["pooled_micro"] == 0.9 and got["cameras"] == {"a": 0.8, "b": 1.0}
    assert got["camera_mean_micro"] == pytest.approx(0.85)


def test_a_shanghaitech_set_needs_every_test_videos_pixel_masks(tmp_path):
    from types import SimpleNamespace

    from vad_pipeline.camera_set import joint
    from vad_pipeline.io import VadError

    video = SimpleNamespace(name="01_02", source=Path("/data/ped2/testing/frames/02"))
    parts = {"01": ([], [video], {}, {"01_02": None})}
    with pytest.raises(VadError, match=r"camera 01: test video 01_02 \(/data/ped2/testing/frames/02\) has no pixel masks"):
        joint(parts, "shanghaitech", tmp_path / "out", {"01": (240, 360)}, tmp_path / "tmp")
