"""Faults a user's real data or a config change brings: each one either gives the right result or
stops with an error naming the file and what is wrong, never a silently different result."""

from __future__ import annotations

import copy
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import scipy.io
import torch

from tests.conftest import REPO, build_stcs
from vad_pipeline import datasets as D
from vad_pipeline import train as T
from vad_pipeline.demo import MARKER, generate
from vad_pipeline.detect.motion import median_background
from vad_pipeline.io import VadError, atomic_path, write_json


def _frames_dataset(root: Path, videos: dict[str, list[str]], split: str = "test", size=(12, 16)) -> dict:
    """A frames-layout dataset whose test videos hold the given frame file names (PNG, value = index)."""
    for name, files in videos.items():
        d = root / D.SPLIT_DIRS[split] / "frames" / name
        d.mkdir(parents=True)
        for i, f in enumerate(files):
            cv2.imwrite(str(d / f), np.full((*size, 3), 10 * i, np.uint8))
    return {"name": "mine", "dataset": {"layout": "frames", "root": str(root), "gt": "gt.mat", "labelled": True}}


# --------------------------------------------------------------------------- frame files


def test_appledouble_and_hidden_files_are_not_frames_or_videos(tmp_path):
    cfg = _frames_dataset(tmp_path, {"01": ["001.png", "002.png"]})
    folder = tmp_path / "testing" / "frames"
    (folder / "01" / "._001.png").write_bytes(b"\x00\x05\x16\x07 Mac OS X resource fork")
    (folder / "01" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (folder / "._01").mkdir()
    assert D.video_names(cfg, "test") == ["01"]
    v = D.get_video(cfg, "test", "01")
    assert [p.name for p in v.frames] == ["001.png", "002.png"]
    assert len(list(D.iter_frames(v))) == 2


def test_unpadded_frame_names_play_in_numeric_order(tmp_path):
    names = [f"{t}.png" for t in range(1, 13)]   # what ffmpeg's %d.png writes
    cfg = _frames_dataset(tmp_path, {"01": names})
    v = D.get_video(cfg, "test", "01")
    assert [p.name for p in v.frames] == names
    assert [int(f[0, 0, 0]) for f in D.iter_frames(v)] == [10 * i for i in range(12)]


def test_unpadded_video_names_get_their_own_ground_truth(tmp_path):
    """A ground-truth list follows the videos' natural order (2 before 10), and the summary says
    which entry went to which video."""
    cfg = _frames_dataset(tmp_path, {str(i): [f"{t:03d}.png" for t in range(6)] for i in (1, 2, 10)})
    gt = np.empty((1, 3), dtype=object)
    for i, first in enumerate((1, 2, 3)):   # video 1: frames 1-1, video 2: 2-2, video 10: 3-3 (1-based)
        gt[0, i] = np.asarray([[first], [first]], np.float64)
    scipy.io.savemat(tmp_path / "gt.mat", {"gt": gt})
    names = D.video_names(cfg, "test")
    assert names == ["1", "2", "10"]
    videos = [D.get_video(cfg, "test", n) for n in names]
    labels = D.frame_labels(cfg, videos)
    assert [int(np.flatnonzero(labels[n])[0]) for n in names] == [0, 1, 2]
    summary = D.gt_summary(cfg, videos, labels)
    assert {n: summary["per_video"][n]["gt_entry"] for n in names} == {"1": 1, "2": 2, "10": 3}
    assert "natural name order" in summary["gt_matching"] and summary["gt_file"].endswith("gt.mat")


def test_a_missing_frame_in_the_numbering_is_an_error(tmp_path):
    cfg = _frames_dataset(tmp_path, {"01": ["001.png", "002.png", "004.png", "005.png"]}, split="train")
    with pytest.raises(VadError, match=r"01: frame numbering jumps from 002\.png to 004\.png"):
        D.get_video(cfg, "train", "01")


def test_frames_extracted_every_nth_are_accepted(tmp_path):
    cfg = _frames_dataset(tmp_path, {"01": ["000.png", "005.png", "010.png", "015.png"]})
    assert D.get_video(cfg, "test", "01").n_frames == 4


def test_a_frame_number_given_twice_is_an_error(tmp_path):
    cfg = _frames_dataset(tmp_path, {"01": ["1.png", "01.png", "2.png"]})
    with pytest.raises(VadError, match="same frame number 1"):
        D.get_video(cfg, "test", "01")


def test_a_jpeg_cut_short_is_an_error_naming_it(tmp_path):
    img = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    good = tmp_path / "good.jpg"
    cv2.imwrite(str(good), img)
    data = good.read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: int(0.6 * len(data))])
    assert cv2.imread(str(cut)) is not None  # OpenCV alone decodes it, grey-filled: the silent fault
    assert np.array_equal(D.read_frame(good), cv2.imread(str(good)))
    with pytest.raises(VadError, match=r"cut\.jpg: damaged image"):
        D.read_frame(cut)
    png = tmp_path / "cut.png"
    cv2.imwrite(str(png), img)
    png.write_bytes(png.read_bytes()[:-20])
    with pytest.raises(VadError, match=r"cut\.png: damaged image"):
        D.read_frame(png)


def test_a_frame_of_another_size_in_the_background_sample_names_it(tmp_path):
    cfg = _frames_dataset(tmp_path, {"01": [f"{t:03d}.png" for t in range(8)]})
    odd = tmp_path / "testing" / "frames" / "01" / "004.png"
    cv2.imwrite(str(odd), np.zeros((10, 16, 3), np.uint8))
    v = D.get_video(cfg, "test", "01")
    with pytest.raises(VadError, match=r"004\.png: frame size \(10, 16\) differs"):
        median_background(v, 8, 1)


def test_a_labels_file_the_user_named_must_exist(tmp_path):
    for split in ("train", "test"):
        d = tmp_path / split / "01"
        d.mkdir(parents=True)
        for t in range(3):
            cv2.imwrite(str(d / f"{t:03d}.png"), np.zeros((8, 8, 3), np.uint8))
    cfg = {"name": "mycam", "dataset": {"layout": "videos", "root": str(tmp_path), "labelled": True}}
    videos = [D.get_video(cfg, "test", "01")]
    assert D.frame_labels(cfg, videos) == {}   # no labels.csv, none named: unlabelled footage
    cfg["dataset"]["gt"] = "my_labels.csv"
    with pytest.raises(VadError, match=r"my_labels\.csv: ground-truth file not found"):
        D.frame_labels(cfg, videos)


# --------------------------------------------------------------------------- output files


def test_results_are_created_with_the_users_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        with atomic_path(tmp_path / "b.h5") as tmp, h5py.File(tmp, "w") as f:
            f["x"] = np.arange(3)
    finally:
        os.umask(old)
    for name in ("a.json", "b.h5"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name


def test_a_killed_writers_temporary_file_is_removed_by_the_next_run(tmp_path):
    out = tmp_path / "stc" / "train.h5"
    script = (f"import os, signal\nfrom vad_pipeline.io import atomic_path\n"
              f"with atomic_path({str(out)!r}) as tmp:\n"
              f"    tmp.write_bytes(b'x' * 100000)\n    os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO)
    assert proc.returncode == -signal.SIGKILL
    left = [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]
    assert len(left) == 1 and not out.exists()   # what SIGKILL leaves behind
    foreign = out.parent / f".{out.name}.otherhost.1.abcd.tmp"   # another node's job may still run
    foreign.write_bytes(b"y")
    with atomic_path(out) as tmp:
        tmp.write_bytes(b"done")
    assert out.read_bytes() == b"done"
    assert sorted(p.name for p in out.parent.iterdir()) == sorted([out.name, foreign.name])


def test_make_demo_never_deletes_a_folder_of_the_users(tiny_resolved, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(VadError, match="not a demo dataset"):
        generate(tiny_resolved["demo"], mine)
    assert (mine / "thesis.tex").read_text() == "years of work"
    demo = tmp_path / "demo"
    generate(tiny_resolved["demo"], demo)
    assert (demo / MARKER).is_file()
    generate(tiny_resolved["demo"], demo)   # an earlier demo is replaced
    assert stat.S_IMODE(demo.stat().st_mode) == 0o777 & ~_umask()


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


# --------------------------------------------------------------------------- training


def _cfg(resolved: dict, **train) -> dict:
    cfg = copy.deepcopy(resolved)
    cfg["device"] = "cpu"
    cfg["train"].update({"threads": 1, "epochs": 1, **train})
    return cfg


@pytest.fixture()
def _threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_cubes_with_the_same_index_but_other_content_train_afresh(tiny_demo, tmp_path):
    """Another flow backend or crop setting keeps every (video, frame, box) but changes the cubes:
    the run identity, and so the checkpoint folder, must change."""
    stc = build_stcs(tiny_demo, tmp_path)[0]
    other = tmp_path / "other.h5"
    with h5py.File(stc, "r") as f, h5py.File(other, "w") as g:
        for k in f:
            g[k] = f[k][:]
        g["flow"][0] = g["flow"][0] + 1   # the same index, other flow
        g.attrs.update({k: v for k, v in f.attrs.items() if k != "content_sha256"})
    a, b = T.data_fingerprint(stc), T.data_fingerprint(str(other))
    assert a["index"] == b["index"] and a["content"] != b["content"]
    with h5py.File(stc, "r") as f, h5py.File(other, "r+") as g:
        g["flow"][0] = f["flow"][0]
    assert T.data_fingerprint(str(other)) == a   # read from the data when the attribute is absent


def test_a_training_set_that_gives_no_batch_is_an_error(tiny_demo, tmp_path, _threads):
    stc = build_stcs(tiny_demo, tmp_path)[0]
    run = tmp_path / "run"
    with pytest.raises(VadError, match=r"no training step in epoch 1.*train\.block=1"):
        T.train(_cfg(tiny_demo, block=1), stc, str(run / "model.pt"), str(run / "loss.csv"))
    assert not (run / "model.pt").exists()


def test_weights_that_turn_non_finite_are_not_saved(tiny_demo, tmp_path, monkeypatch, _threads):
    stc = build_stcs(tiny_demo, tmp_path)[0]
    real = T.train_step

    def poisoned(fwd, opt, *args, **kw):
        out = real(fwd, opt, *args, **kw)
        with torch.no_grad():
            next(fwd.parameters()).fill_(float("inf"))
        return out

    monkeypatch.setattr(T, "train_step", poisoned)
    run = tmp_path / "run"
    with pytest.raises(VadError, match="weights became NaN/Inf in epoch 1"):
        # one batch per epoch: the poisoned step is the last, the loss never sees the weights
        T.train(_cfg(tiny_demo, batch_size=100000, block=100000), stc, str(run / "model.pt"), str(run / "loss.csv"))
    assert not (run / "model.pt").exists()
    assert not list(run.rglob("last.pt"))


# --------------------------------------------------------------------------- settings


def test_moving_a_dataset_changes_no_stage_params(tiny_resolved):
    from vad_pipeline import config as C

    moved = copy.deepcopy(tiny_resolved)
    moved["dataset"]["root"] = "/elsewhere/demo"
    for sections in (("detect", "demo"), ("flow", "demo"), ("stc", "demo"), ("demo",)):
        assert json.dumps(C.stage_params(moved, *sections), sort_keys=True) == \
            json.dumps(C.stage_params(tiny_resolved, *sections), sort_keys=True)
