"""A dataset's videos change between runs (issue 24): one run brings every result up to date, a
copy or a move reruns nothing; a test video in which nothing moves is scored, not refused. So do
cameras.csv, the pixel masks and a frame replaced at the same size (issue 27); a pixel mask over
64 MiB fixed in place, under the default dataset.fingerprint (content, each file read once:
tests/test_hash_cache.py), issue 35."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import REPO, write_config
from vad_pipeline import config as C
from vad_pipeline import datasets as D
from vad_pipeline.io import VadError

# --------------------------------------------------------------------------- fingerprints


def _frames(folder: Path, n: int = 5, ext: str = ".jpg") -> Path:
    folder.mkdir(parents=True)
    for t in range(n):
        (folder / f"{t:03d}{ext}").write_bytes(b"x" * (100 + t))
    return folder


def _cfg(root: Path) -> dict:
    """A frames-layout dataset ``mine`` at ``root``, resolved as the workflow does (the schema's defaults)."""
    cfg = C.load(REPO / "config.yaml")
    cfg["datasets"]["mine"] = {"layout": "frames", "root": str(root), "gt": "gt.json"}
    return C.resolve(cfg, "mine")


def test_fingerprint_survives_a_move_and_a_touch(tmp_path):
    a = _frames(tmp_path / "a" / "01")
    (a / ".DS_Store").write_bytes(b"finder")   # hidden files are not frames
    (a / "notes.txt").write_text("not a frame")
    before = D.fingerprint(a, "size")
    assert before.startswith("5 frames, 510 bytes")
    b = tmp_path / "elsewhere" / "01"
    shutil.copytree(a, b)
    for p in b.iterdir():
        p.touch()
    assert D.fingerprint(b, "size") == before
    shutil.move(str(a), str(tmp_path / "moved"))
    assert D.fingerprint(tmp_path / "moved", "size") == before


def test_fingerprint_changes_with_a_frame_or_a_name(tmp_path):
    a = _frames(tmp_path / "01")
    before = D.fingerprint(a, "size")
    (a / "004.jpg").unlink()
    assert D.fingerprint(a, "size") != before
    (a / "004.jpg").write_bytes(b"y" * 104)   # back, same size: the same fingerprint by size
    assert D.fingerprint(a, "size") == before
    (a / "004.jpg").write_bytes(b"y" * 105)   # re-extracted at another quality
    assert D.fingerprint(a, "size") != before
    (a / "004.jpg").write_bytes(b"y" * 104)
    (a / "004.jpg").rename(a / "004.png")
    assert D.fingerprint(a, "size") != before
    container = tmp_path / "02.avi"
    container.write_bytes(b"z" * 10)
    assert D.fingerprint(container, "size") == "02.avi, 10 bytes"
    with pytest.raises(VadError, match="no_such.avi: video not readable"):
        D.fingerprint(tmp_path / "no_such.avi", "content")


def test_fingerprints_of_a_split_follow_its_videos(tmp_path):
    root = tmp_path / "data"
    for name in ("01", "02"):
        _frames(root / "training" / "frames" / name)
    cfg = _cfg(root)
    before = D.fingerprints(cfg, "train")
    assert list(before) == ["01", "02"] and before["01"] == before["02"]
    assert D.fingerprints(cfg, "train", ["02"]) == {"02": before["02"]}
    shutil.copytree(root, tmp_path / "copy")
    assert D.fingerprints(_cfg(tmp_path / "copy"), "train") == before
    (root / "training" / "frames" / "02").rename(root / "training" / "frames" / "03")
    assert list(D.fingerprints(cfg, "train")) == ["01", "03"]
    shutil.rmtree(root / "training" / "frames" / "03")
    assert list(D.fingerprints(cfg, "train")) == ["01"]
    with pytest.raises(VadError, match="video not found"):
        D.fingerprints(cfg, "train", ["02"])
    demo = {"name": "demo", "dataset": {"layout": "demo", "root": str(tmp_path / "none")},
            "demo": {"n_train": 2, "n_test": 1}, "validation": {"videos": 0}}
    assert D.fingerprints(demo, "train") == {"01": None, "02": None}   # generated: not read


def test_gt_fingerprint_follows_the_content_not_the_place(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    (root / "gt.json").write_text("[[0, 1, 1], [0, 0, 0]]")
    cfg = _cfg(root)
    before = D.gt_fingerprint(cfg)
    shutil.copytree(root, tmp_path / "copy")
    assert D.gt_fingerprint(_cfg(tmp_path / "copy")) == before
    (root / "gt.json").write_text("[[0, 0, 1], [0, 0, 0]]")   # one label fixed, same size
    assert D.gt_fingerprint(cfg) != before
    folder = {"name": "st", "dataset": {"layout": "shanghaitech", "root": str(root), "labelled": True}}
    assert D.gt_fingerprint(folder) is None   # no test_frame_mask folder: the labels stage says so
    (root / "testing" / "test_frame_mask").mkdir(parents=True)
    np.save(root / "testing" / "test_frame_mask" / "01_0001.npy", np.zeros(4, np.int64))
    first = D.gt_fingerprint(folder)
    np.save(root / "testing" / "test_frame_mask" / "01_0001.npy", np.ones(4, np.int64))
    assert first.startswith("test_frame_mask/: 1 files") and D.gt_fingerprint(folder) != first
    assert D.gt_fingerprint({**cfg, "dataset": {**cfg["dataset"], "labelled": False}}) is None


def test_sample_and_content_see_a_frame_replaced_at_the_same_size(tmp_path):
    """Uncompressed frames (UCSD's TIFFs) all have one size: ``size`` cannot see one replaced by
    another, ``sample`` (head, middle and tail blocks) and ``content`` can; a copy keeps all three.
    An edit between the sampled blocks is seen by ``content`` only."""
    rng = np.random.default_rng(0)
    a = tmp_path / "a" / "01"
    a.mkdir(parents=True)
    frames = [rng.integers(0, 255, 40_000, dtype=np.uint8).tobytes() for _ in range(4)]
    for t, data in enumerate(frames):
        (a / f"{t:03d}.tif").write_bytes(data)
    hows = ("size", "sample", "content")
    before = {h: D.fingerprint(a, h) for h in hows}
    assert before["sample"].startswith(before["size"] + ", sample ")
    shutil.copytree(a, tmp_path / "b" / "01")
    assert {h: D.fingerprint(tmp_path / "b" / "01", h) for h in hows} == before
    (a / "002.tif").write_bytes(frames[3])   # frame 2 replaced by frame 3: same size
    after = {h: D.fingerprint(a, h) for h in hows}
    assert after["size"] == before["size"]
    assert after["sample"] != before["sample"] and after["content"] != before["content"]
    edited = bytearray(frames[2])
    edited[10_000] ^= 0xFF   # one byte between the head and middle blocks
    (a / "002.tif").write_bytes(bytes(edited))
    after = {h: D.fingerprint(a, h) for h in hows}
    assert after["sample"] == before["sample"] and after["content"] != before["content"]
    container = tmp_path / "02.avi"
    container.write_bytes(frames[0] * 10)
    first = D.fingerprint(container, "sample")
    container.write_bytes(frames[1] * 10)
    assert D.fingerprint(container, "sample") != first and first.startswith("02.avi, 400000 bytes, sample ")
    cfg = _cfg(tmp_path / "a")
    cfg["dataset"]["fingerprint"] = "everything"
    with pytest.raises(VadError, match="fingerprint 'everything' is unknown"):
        D.fingerprint_mode(cfg)


def test_mask_fingerprint_follows_each_layouts_masks(tmp_path):
    """The pixel masks of every layout that has them, by content: a mask fixed (same size)
    changes the fingerprint, a copy of the dataset keeps it, other files beside them do not count."""
    import cv2

    root = tmp_path / "data"
    ucsd = root / "ucsd" / "Test" / "Test001_gt"
    ucsd.mkdir(parents=True)
    st = root / "shanghaitech" / "testing" / "test_pixel_mask"
    st.mkdir(parents=True)
    avenue = root / "avenue" / "ground_truth_demo" / "testing_label_mask"
    avenue.mkdir(parents=True)
    frames = root / "frames" / "testing" / "pixel_masks"
    frames.mkdir(parents=True)
    mask = np.zeros((4, 8, 8), np.uint8)
    mask[:, 2:4, 2:4] = 1

    def write(m: np.ndarray) -> None:
        for t, f in enumerate(m):
            cv2.imwrite(str(ucsd / f"{t:03d}.bmp"), f * 255)
        np.save(st / "01_0001.npy", m)
        (avenue / "1_label.mat").write_bytes(m.tobytes())   # (the fingerprint reads bytes only)
        np.savez_compressed(frames / "01.npz", bits=np.packbits(m.astype(bool), axis=-1), width=8)

    write(mask)
    (ucsd / "Thumbs.db").write_bytes(b"not a mask")
    (st / "README.txt").write_text("not a mask")
    cfgs = {name: {"name": name, "dataset": {"layout": name, "root": str(root / name), "labelled": True}}
            for name in ("ucsd", "shanghaitech", "avenue", "frames")}
    before = {n: D.mask_fingerprint(c) for n, c in cfgs.items()}
    assert all(before.values()) and before["ucsd"].startswith("4 mask files, ")
    shutil.copytree(root, tmp_path / "copy")
    for n, c in cfgs.items():
        assert D.mask_fingerprint({**c, "dataset": {**c["dataset"], "root": str(tmp_path / "copy" / n)}}) == before[n]
    (ucsd / "Thumbs.db").write_bytes(b"still not a mask")
    assert D.mask_fingerprint(cfgs["ucsd"]) == before["ucsd"]
    fixed = mask.copy()
    fixed[2, 2:4, 2:4] = 0   # one frame's region removed: every file keeps its size
    write(fixed)
    assert all(D.mask_fingerprint(c) != before[n] for n, c in cfgs.items())
    videos = {"name": "v", "dataset": {"layout": "videos", "root": str(root), "labelled": True}}
    unlabelled = {**cfgs["ucsd"], "dataset": {**cfgs["ucsd"]["dataset"], "labelled": False}}
    assert D.mask_fingerprint(videos) is None and D.mask_fingerprint(unlabelled) is None


def test_camera_fingerprints_hold_each_splits_rows(tmp_path):
    root = tmp_path / "data"
    for split, names in (("training", ("a1", "b1")), ("testing", ("t1", "t2"))):
        for n in names:
            _frames(root / split / "frames" / n)
    cfg = _cfg(root)
    assert D.camera_fingerprints(cfg, "test") is None   # no cameras.csv: one camera
    (root / "cameras.csv").write_text("video,camera\na1,A\nb1,B\nt1,A\nt2,A\n")
    train, test = D.camera_fingerprints(cfg, "train"), D.camera_fingerprints(cfg, "test")
    assert train == {"a1": ["A"], "b1": ["B"]} and test == {"t1": ["A"], "t2": ["A"]}
    (root / "cameras.csv").write_text("video,camera\nt2,B\nt1,A\nb1,B\na1,A\n")   # t2 moved, rows reordered
    assert D.camera_fingerprints(cfg, "train") == train and D.camera_fingerprints(cfg, "test")["t2"] == ["B"]
    (root / "cameras.csv").write_text("video,camera\na1,A\nb1,B\nt1,A\n")   # t2 left out: the stage says so
    assert D.camera_fingerprints(cfg, "test")["t2"] == []


# --------------------------------------------------------------------------- videos without objects


def test_frame_scores_name_the_test_videos_without_objects(caplog):
    from vad_pipeline.evaluate import frame_scores, quiet_videos

    labels = pd.DataFrame({"video": ["01"] * 6 + ["02"] * 6, "frame": list(range(6)) * 2, "label": [0, 0, 1, 1, 0, 0] + [0] * 6})
    objects = pd.DataFrame({"video": ["01"] * 3, "frame": [2, 3, 4], "score": [1.0, 2.0, 0.5]})
    cells = pd.DataFrame({"video": labels["video"], "frame": labels["frame"], "s_c": np.linspace(0, 1, 12)})
    cfg = {"frame_scores": {"fill": "min", "exclude_first": 1, "per_video": "none", "smoothing": 0},
           "score": {"w_c": 1.0}}
    with caplog.at_level(logging.WARNING, logger="vad_pipeline"):
        df = frame_scores(objects, labels, cfg, (cells, cells))
    quiet = df[df["video"] == "02"]
    assert (quiet["n_objects"] == 0).all() and quiet["score_c"].notna().all()
    assert quiet["score"].nunique() > 1   # S_c still orders its frames
    assert quiet_videos(df) == ["02"]
    assert "02" in caplog.text and "no scored object" in caplog.text


# --------------------------------------------------------------------------- end to end

SLOW = pytest.mark.slow


def _source(tiny_config, tmp_path, n_train: int, n_test: int) -> dict:
    """The tiny demo generated with ``n_train`` and ``n_test`` videos (the source of the datasets below)."""
    from vad_pipeline import config as C
    from vad_pipeline.demo import generate

    demo = C.resolve(tiny_config, "demo")
    demo["demo"].update(n_train=n_train, n_test=n_test)
    demo["dataset"]["root"] = str(tmp_path / "demo_source")
    generate(demo["demo"], demo["dataset"]["root"])
    return demo


def _copy_video(demo: dict, split: str, name: str, root: Path, quiet: bool = False, as_name: str | None = None,
                pattern: str = "{:03d}.jpg") -> None:
    """One demo video into ``root`` in the frames layout (named ``as_name``, frame files named by
    ``pattern``); ``quiet``: its first frame throughout (a frozen camera: nothing moves, so nothing
    is detected)."""
    from vad_pipeline.datasets.export import write_image_folder

    video = D.get_video(demo, split, name)
    frames = D.iter_frames(video)
    if quiet:
        first = next(frames)
        frames = (first for _ in range(video.n_frames))
    write_image_folder(root / D.SPLIT_DIRS[split] / "frames" / (as_name or name), frames, pattern)


def _write_gt(demo: dict, root: Path, test: list[str], quiet: tuple[str, ...] = ()) -> None:
    """gt.json: per-frame labels of the ``test`` videos, in order (a quiet video is normal throughout)."""
    labels = D.frame_labels(demo, [D.get_video(demo, "test", n) for n in D.video_names(demo, "test")])
    (root / "gt.json").write_text(json.dumps(
        [[0] * len(labels[n]) if n in quiet else labels[n].astype(int).tolist() for n in test]))


def _dataset(tiny_config, name: str, root: Path) -> None:
    shared = {k: tiny_config["datasets"]["demo"][k] for k in ("detect", "stc")}
    tiny_config["datasets"][name] = {"layout": "frames", "root": str(root), "gt": "gt.json", **shared}


def _state(res: Path) -> dict[str, tuple[int, str]]:
    """Every result file under ``res`` (logs and benchmarks are elsewhere): (mtime, sha256)."""
    return {str(p.relative_to(res)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(res.rglob("*")) if p.is_file() and "ckpt" not in p.parts}


def _rewritten(before: dict, after: dict) -> set[str]:
    return {k for k in after if k not in before or after[k][0] != before[k][0]}


@SLOW
def test_one_run_brings_results_up_to_date_after_the_videos_change(workdir, tiny_config, tmp_path):
    """On one dataset, one after the other: ``root`` pointed at a copy without one of the training
    videos, a test video added with its labels, the data moved, a pixel mask fixed in place;
    each time one run reruns exactly what depends on the change, and a dry run after it plans
    nothing. The fixed mask is over 64 MiB (padded) and keeps its size: seen by its content, its
    hash kept in results/.hashes/mine.json once it is read."""
    from tests.smk import planned_rules, snakemake

    demo = _source(tiny_config, tmp_path, n_train=3, n_test=3)
    data = tmp_path / "data"
    for v in ("01", "02", "03"):
        _copy_video(demo, "train", v, data)
    masks = Path(demo["dataset"]["root"]) / "testing" / "pixel_masks"
    (data / "testing" / "pixel_masks").mkdir(parents=True)
    for v in ("01", "02"):
        _copy_video(demo, "test", v, data)
        shutil.copyfile(masks / f"{v}.npz", data / "testing" / "pixel_masks" / f"{v}.npz")
    with np.load(masks / "01.npz") as f:   # 01's masks over 64 MiB: uncompressed, with an array nobody reads
        bits, width = f["bits"], int(f["width"])
    pad = np.zeros(65 * 2**20, np.uint8)
    np.savez(data / "testing" / "pixel_masks" / "01.npz", bits=bits, width=width, pad=pad)
    _write_gt(demo, data, ["01", "02"])
    _dataset(tiny_config, "mine", data)
    write_config(tiny_config, workdir / "config.yaml")
    target = "results/mine/auc.json"
    snakemake(workdir, target)
    res = workdir / "results" / "mine"
    first = _state(res)

    # 1. another root: a copy of the dataset without training video 03; one run
    smaller = tmp_path / "data_v2"
    shutil.copytree(data, smaller)
    shutil.rmtree(smaller / "training" / "frames" / "03")
    tiny_config["datasets"]["mine"]["root"] = str(smaller)
    write_config(tiny_config, workdir / "config.yaml")
    snakemake(workdir, target)
    second = _state(res)
    redone = _rewritten(first, second)
    training = {"stc/train.h5", "train/model.pt", "train/loss.csv", "infer/train.csv", "infer/test.csv",
                "motion/features_train.csv", "motion/train.csv", "motion/test.csv", "cells/layout.json",
                "cells/stats_train.h5", "cells/stats_test.h5", "cells/train.csv", "cells/test.csv",
                "object_scores.csv", "score_stats.json", "frame_scores.csv", "auc.json"}
    assert training <= redone, training - redone
    assert second["train/model.pt"][1] != first["train/model.pt"][1]   # trained on two videos now
    assert "detect/train/03.csv" in second   # (left, no longer an input)
    kept = {"detect/train/01.csv", "detect/train/02.csv", "flow/train/01.h5", "detect/test/01.csv",
            "flow/test/02.h5", "stc/test.h5", "motion/features_test.csv"}
    # gt_summary.json counts each camera's training videos: rewritten; labels.csv with it, the same
    assert second["labels.csv"][1] == first["labels.csv"][1]
    assert not kept & redone, kept & redone
    assert planned_rules(workdir, target) == set()

    # 2. a test video added with its labels, in place; one run
    _copy_video(demo, "test", "03", smaller)
    shutil.copyfile(masks / "03.npz", smaller / "testing" / "pixel_masks" / "03.npz")
    _write_gt(demo, smaller, ["01", "02", "03"])
    snakemake(workdir, target)
    third = _state(res)
    redone = _rewritten(second, third)
    assert {"labels.csv", "gt_summary.json", "detect/test/03.csv", "flow/test/03.h5", "stc/test.h5",
            "infer/test.csv", "motion/features_test.csv", "motion/test.csv", "cells/stats_test.h5",
            "cells/test.csv", "object_scores.csv", "frame_scores.csv", "auc.json"} <= redone
    assert not redone & {"train/model.pt", "stc/train.h5", "cells/layout.json", "detect/test/01.csv",
                         "flow/train/01.h5"}
    frames = pd.read_csv(res / "frame_scores.csv", dtype={"video": str})
    assert sorted(frames["video"].unique()) == ["01", "02", "03"]
    assert json.loads((res / "gt_summary.json").read_text())["videos"] == 3
    assert planned_rules(workdir, target) == set()

    # the same data copied elsewhere (new paths, new timestamps): nothing to do
    moved = tmp_path / "data_v2_copy"
    shutil.copytree(smaller, moved)
    tiny_config["datasets"]["mine"]["root"] = str(moved)
    write_config(tiny_config, workdir / "config.yaml")
    assert planned_rules(workdir, target) == set()
    assert (workdir / "results" / "mine" / "dataset_root.txt").read_text() == f"{moved}\n"
    # moved again and a setting changed in the same run: the setting's stages are planned at once
    # (a job rewriting the root file used to hide them until the next run)
    tiny_config["datasets"]["mine"]["root"] = str(smaller)
    write_config(tiny_config, workdir / "config.yaml")
    rules = planned_rules(workdir, target, "--config", 'cells={"k": 3}')
    assert {"cell_terms", "frame_scores", "evaluate"} <= rules and not rules & {"train", "detect", "stc"}
    snakemake(workdir, target)   # (the root file names the data where it is)
    fourth = _state(res)

    # 3. a pixel mask over 64 MiB fixed in place at the same size (same file name, new regions): the
    # localisation metrics, the ground-truth summary and the pictures (they draw masks), nothing
    # upstream of them
    path = smaller / "testing" / "pixel_masks" / "01.npz"
    size, inode = path.stat().st_size, path.stat().st_ino
    assert size > 64 * 2**20
    fixed = np.unpackbits(bits, axis=-1, count=width).astype(bool)
    abnormal = np.flatnonzero(fixed.reshape(len(fixed), -1).any(1))
    fixed[abnormal[: len(abnormal) // 2]] = False   # the first half of its regions were not anomalies
    np.savez(path, bits=np.packbits(fixed, axis=-1), width=width, pad=pad)
    assert (path.stat().st_size, path.stat().st_ino) == (size, inode)
    snakemake(workdir, target)
    fifth = _state(res)
    redone = _rewritten(fourth, fifth)
    assert {"localisation.json", "gt_summary.json", "top_anomalies/contact_sheet.png"} <= redone, redone
    assert fifth["localisation.json"][1] != fourth["localisation.json"][1]
    assert fifth["gt_summary.json"][1] != fourth["gt_summary.json"][1]
    assert not redone & {"detect/test/01.csv", "flow/test/01.h5", "stc/test.h5", "train/model.pt",
                         "object_scores.csv", "cameras/test.csv"}, redone
    assert planned_rules(workdir, target) == set()
    # the fixed mask's hash is kept with its stat: the next dry run reads none of its 65 MiB
    kept = json.loads((workdir / "results" / ".hashes" / "mine.json").read_text())["dirs"]
    st = path.stat()
    entry = kept[str(path.parent.resolve())]["01.npz"].split(" ")
    assert entry[:4] == [str(st.st_size), str(st.st_mtime_ns), str(st.st_ctime_ns), str(st.st_ino)]
    assert len(entry[4]) == 16   # its content hash


@SLOW
def test_a_quiet_test_video_is_scored_a_quiet_training_video_refused(workdir, tiny_config, tmp_path):
    """Test video 02 shows one frame throughout (nothing moves, nothing is detected): its frames
    take the no-object score plus S_c, and the run names it. A training video like it stays an
    error unless detect.allow_empty is set."""
    from tests.smk import snakemake

    demo = _source(tiny_config, tmp_path, n_train=2, n_test=2)
    data = tmp_path / "data"
    for v in ("01", "02"):
        _copy_video(demo, "train", v, data)
    _copy_video(demo, "test", "01", data)
    _copy_video(demo, "test", "02", data, quiet=True)
    _write_gt(demo, data, ["01", "02"], quiet=("02",))
    _dataset(tiny_config, "quiet", data)
    # the same, but training video 02 is the frozen one
    quiet_train = tmp_path / "quiet_train"
    _copy_video(demo, "train", "01", quiet_train)
    _copy_video(demo, "train", "02", quiet_train, quiet=True)
    _dataset(tiny_config, "quiet_train", quiet_train)
    write_config(tiny_config, workdir / "config.yaml")

    snakemake(workdir, "results/quiet/auc.json")
    res = workdir / "results" / "quiet"
    assert len(pd.read_csv(res / "detect" / "test" / "02.csv")) == 0
    frames = pd.read_csv(res / "frame_scores.csv", dtype={"video": str})
    quiet = frames[frames["video"] == "02"]
    assert len(quiet) == demo["demo"]["n_frames"] and (quiet["n_objects"] == 0).all()
    assert quiet["score_c"].notna().all() and np.isfinite(quiet["score"]).all()
    # S_c scores its windows: the same in every frame, as nothing moves; a low score, no alarm
    assert np.isfinite(quiet["score_c"]).all() and quiet["score_c"].nunique() == 1
    assert quiet["score"].max() < frames.loc[frames["label"] == 1, "score"].max()
    auc = json.loads((res / "auc.json").read_text())
    assert auc["videos_without_objects"] == ["02"] and auc["auc_micro"] is not None
    log = (workdir / "results" / "logs" / "quiet" / "frame_scores.log").read_text()
    assert "WARNING" in log and "02" in log and "no scored object" in log

    out = snakemake(workdir, "results/quiet_train/detect/train/02.csv", check=False)
    assert out.returncode != 0
    text = out.stdout + out.stderr
    log = (workdir / "results" / "logs" / "quiet_train" / "detect" / "train" / "02.log").read_text()
    assert "no object detected" in log and "training video" in log and "detect.allow_empty" in log, text
    snakemake(workdir, "results/quiet_train/detect/train/02.csv", "--config", 'detect={"allow_empty": true}')
    assert len(pd.read_csv(workdir / "results" / "quiet_train" / "detect" / "train" / "02.csv")) == 0


@SLOW
def test_one_run_follows_a_video_moved_to_another_camera(workdir, tiny_config, tmp_path):
    """Test video t2 moved to another camera in cameras.csv: one run rewrites the test split's
    camera list and what follows it, not the training side's (its rows are as they were); a dry
    run after it plans nothing. (Targets short of training: what reads the camera lists.)"""
    from tests.smk import planned_rules, snakemake

    demo = _source(tiny_config, tmp_path, n_train=2, n_test=2)
    data = tmp_path / "data"
    for split, name, as_name in (("train", "01", "a1"), ("train", "02", "b1"), ("test", "01", "t1"),
                                 ("test", "02", "t2")):
        _copy_video(demo, split, name, data, as_name=as_name)
    _write_gt(demo, data, ["01", "02"])   # t1, t2: test videos 01, 02
    (data / "cameras.csv").write_text("video,camera\na1,A\nb1,B\nt1,A\nt2,A\n")
    _dataset(tiny_config, "cams", data)
    write_config(tiny_config, workdir / "config.yaml")
    targets = [f"results/cams/{t}" for t in ("gt_summary.json", "cells/test.csv", "motion/test.csv")]
    snakemake(workdir, *targets)
    res = workdir / "results" / "cams"
    first = _state(res)

    (data / "cameras.csv").write_text("video,camera\na1,A\nb1,B\nt1,A\nt2,B\n")
    snakemake(workdir, *targets)
    second = _state(res)
    redone = _rewritten(first, second)
    test_cams = pd.read_csv(res / "cameras" / "test.csv", dtype=str)
    assert dict(zip(test_cams["video"], test_cams["camera"])) == {"t1": "A", "t2": "B"}
    assert {"cameras/test.csv", "gt_summary.json", "cells/stats_test.h5", "cells/test.csv",
            "motion/test.csv"} <= redone, redone
    summary = json.loads((res / "gt_summary.json").read_text())["cameras"]
    assert summary["B"]["test_videos"] == 1
    # (motion/train.csv and cells/train.csv are rewritten with the test side's: one job writes both)
    assert not redone & {"cameras/train.csv", "cells/layout.json", "cells/stats_train.h5", "detect/test/t2.csv",
                         "flow/test/t2.h5"}, redone
    assert planned_rules(workdir, *targets) == set()


@SLOW
def test_one_run_follows_a_frame_replaced_at_the_same_size(workdir, tiny_config, tmp_path):
    """Uncompressed frames (BMP: every file one size) and the default dataset.fingerprint
    (content): a test frame replaced by another reruns that video's detection and flow and what
    follows in one run, not the other videos' nor training; a dry run after it plans nothing.
    (Targets short of training: what reads the videos.)"""
    from tests.smk import planned_rules, snakemake

    demo = _source(tiny_config, tmp_path, n_train=2, n_test=2)
    data = tmp_path / "data"
    for split in ("train", "test"):
        for v in ("01", "02"):
            _copy_video(demo, split, v, data, pattern="{:03d}.bmp")
    _write_gt(demo, data, ["01", "02"])
    _dataset(tiny_config, "bmp", data)
    write_config(tiny_config, workdir / "config.yaml")
    targets = [f"results/bmp/{t}" for t in ("stc/train.h5", "stc/test.h5", "cameras/train.csv", "gt_summary.json")]
    snakemake(workdir, *targets)
    res = workdir / "results" / "bmp"
    first = _state(res)

    frames = data / "testing" / "frames" / "02"
    replaced, other = frames / "020.bmp", frames / "030.bmp"
    size, by_size = replaced.stat().st_size, D.fingerprint(frames, "size")
    shutil.copyfile(other, replaced)
    assert replaced.stat().st_size == size and D.fingerprint(frames, "size") == by_size   # unseen by size
    snakemake(workdir, *targets)
    second = _state(res)
    redone = _rewritten(first, second)
    assert {"detect/test/02.csv", "flow/test/02.h5", "stc/test.h5", "labels.csv"} <= redone, redone
    assert not redone & {"detect/test/01.csv", "flow/test/01.h5", "detect/train/02.csv", "stc/train.h5",
                         "cameras/train.csv"}, redone
    assert planned_rules(workdir, *targets) == set()
