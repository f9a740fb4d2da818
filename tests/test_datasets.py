"""Dataset adapters (vad_pipeline.datasets) and the synthetic demo (vad_pipeline.demo)."""

from __future__ import annotations

import copy
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

from vad_pipeline import datasets as D
from vad_pipeline.demo import generate
from vad_pipeline.io import VadError


def _cfg(root: Path, layout: str = "frames", gt: str = "gt.mat") -> dict:
    return {"name": "mine", "dataset": {"layout": layout, "root": str(root), "gt": gt, "labelled": True}}


def _video(name: str, n: int) -> D.Video:
    return D.Video(name=name, split="test", frames=tuple(Path(f"{t:03d}.jpg") for t in range(n)))


def _save_gt(path: Path, entries: list) -> None:
    gt = np.empty((1, len(entries)), dtype=object)
    for i, e in enumerate(entries):
        gt[0, i] = np.asarray(e, dtype=np.float64)
    scipy.io.savemat(path, {"gt": gt})


def _expected(n: int, ranges: list[tuple[int, int]]) -> np.ndarray:
    lab = np.zeros(n, bool)
    for first, last in ranges:  # 1-based, inclusive
        lab[first - 1 : last] = True
    return lab


# --------------------------------------------------------------------------- frame labels


def test_frame_labels_several_ranges_per_video(tmp_path):
    _save_gt(tmp_path / "gt.mat", [
        [[2, 10], [4, 12]],        # two ranges: frames 2-4 and 10-12
        [[1], [20]],               # the whole video
        [[5, 7, 15], [5, 9, 15]],  # three ranges, two of them one frame long
    ])
    videos = [_video("01", 15), _video("02", 20), _video("03", 15)]
    labels = D.frame_labels(_cfg(tmp_path), videos)
    assert list(labels) == ["01", "02", "03"]
    np.testing.assert_array_equal(labels["01"], _expected(15, [(2, 4), (10, 12)]))
    np.testing.assert_array_equal(labels["02"], np.ones(20, bool))
    np.testing.assert_array_equal(labels["03"], _expected(15, [(5, 5), (7, 9), (15, 15)]))
    assert labels["01"].dtype == bool
    assert labels["01"].tolist()[:5] == [False, True, True, True, False]


def test_frame_labels_video_without_anomaly(tmp_path):
    _save_gt(tmp_path / "gt.mat", [np.zeros((2, 0)), [[3], [4]]])
    labels = D.frame_labels(_cfg(tmp_path), [_video("01", 6), _video("02", 6)])
    assert not labels["01"].any() and len(labels["01"]) == 6
    np.testing.assert_array_equal(labels["02"], _expected(6, [(3, 4)]))


def test_frame_labels_single_video_plain_array(tmp_path):
    scipy.io.savemat(tmp_path / "gt.mat", {"gt": np.array([[2.0, 6.0], [3.0, 6.0]])})
    labels = D.frame_labels(_cfg(tmp_path), [_video("01", 6)])
    np.testing.assert_array_equal(labels["01"], _expected(6, [(2, 3), (6, 6)]))


def test_range_beyond_frame_count_names_the_file(tmp_path):
    _save_gt(tmp_path / "gt.mat", [[[2], [4]], [[18], [25]]])
    with pytest.raises(VadError, match="gt.mat") as exc:
        D.frame_labels(_cfg(tmp_path), [_video("01", 20), _video("02", 20)])
    assert "02" in str(exc.value) and "25" in str(exc.value)


@pytest.mark.parametrize("bad", [[[0], [3]], [[5], [3]]])
def test_invalid_range_raises(tmp_path, bad):
    _save_gt(tmp_path / "gt.mat", [bad])
    with pytest.raises(VadError, match="gt.mat"):
        D.frame_labels(_cfg(tmp_path), [_video("01", 10)])


def test_wrong_number_of_gt_entries(tmp_path):
    _save_gt(tmp_path / "gt.mat", [[[1], [2]], [[1], [2]]])
    with pytest.raises(VadError, match="2 entries") as exc:
        D.frame_labels(_cfg(tmp_path), [_video("01", 5), _video("02", 5), _video("03", 5)])
    assert "gt.mat" in str(exc.value) and "3 test videos" in str(exc.value)


def test_gt_file_problems(tmp_path):
    with pytest.raises(VadError, match="not found"):
        D.frame_labels(_cfg(tmp_path), [_video("01", 5)])
    scipy.io.savemat(tmp_path / "gt.mat", {"other": np.ones(3)})
    with pytest.raises(VadError, match="'gt'"):
        D.frame_labels(_cfg(tmp_path), [_video("01", 5)])
    (tmp_path / "gt.mat").write_bytes(b"not a mat file at all")
    with pytest.raises(VadError, match="gt.mat"):
        D.frame_labels(_cfg(tmp_path), [_video("01", 5)])


def test_unlabelled_dataset_has_no_labels(tmp_path):
    cfg = _cfg(tmp_path)
    cfg["dataset"]["labelled"] = False
    assert D.frame_labels(cfg, [_video("01", 5)]) == {}
    cfg = _cfg(tmp_path)
    del cfg["dataset"]["gt"]
    with pytest.raises(VadError, match="gt"):
        D.frame_labels(cfg, [_video("01", 5)])


# --------------------------------------------------------------------------- folders and frames


def _write_video(root: Path, split: str, name: str, n: int, value: int = 100) -> Path:
    d = root / D.SPLIT_DIRS[split] / "frames" / name
    d.mkdir(parents=True)
    for t in range(n):
        cv2.imwrite(str(d / f"{t:03d}.png"), np.full((12, 16, 3), value + t, np.uint8))
    return d


def test_missing_dataset_root_names_the_folder(tmp_path):
    root = tmp_path / "no_such_dataset"
    with pytest.raises(VadError, match="no_such_dataset") as exc:
        D.video_names(_cfg(root), "test")
    assert "mine" in str(exc.value)  # the dataset's name, to find the config entry


def test_missing_split_folder(tmp_path):
    _write_video(tmp_path, "train", "01", 2)
    with pytest.raises(VadError, match="testing"):
        D.video_names(_cfg(tmp_path), "test")


def test_video_names_sorted_and_frames_listed(tmp_path):
    for name in ("10", "02", "01"):
        _write_video(tmp_path, "test", name, 3)
    (tmp_path / "testing" / "frames" / "notes.txt").write_text("not a video")
    cfg = _cfg(tmp_path)
    assert D.video_names(cfg, "test") == ["01", "02", "10"]
    (tmp_path / "testing" / "frames" / "02" / "readme.txt").write_text("not a frame")
    v = D.get_video(cfg, "test", "02")
    assert v.n_frames == 3 and [p.name for p in v.frames] == ["000.png", "001.png", "002.png"]
    frames = list(D.iter_frames(v))
    assert [f.shape for f in frames] == [(12, 16, 3)] * 3
    assert [int(f[0, 0, 0]) for f in frames] == [100, 101, 102]
    assert list(D.iter_frames(v, gray=True))[0].shape == (12, 16)


def test_split_without_videos(tmp_path):
    (tmp_path / "testing" / "frames").mkdir(parents=True)
    with pytest.raises(VadError, match="no video folders"):
        D.video_names(_cfg(tmp_path), "test")


def test_empty_video_folder(tmp_path):
    d = tmp_path / "testing" / "frames" / "07"
    d.mkdir(parents=True)
    with pytest.raises(VadError, match="empty video") as exc:
        D.get_video(_cfg(tmp_path), "test", "07")
    assert str(d) in str(exc.value)


def test_missing_video_folder(tmp_path):
    _write_video(tmp_path, "test", "01", 2)
    with pytest.raises(VadError, match="08"):
        D.get_video(_cfg(tmp_path), "test", "08")


def test_unknown_split(tmp_path):
    with pytest.raises(VadError, match="split"):
        D.get_video(_cfg(tmp_path), "val", "01")


def test_unreadable_frame_named_when_iterated(tmp_path):
    d = _write_video(tmp_path, "test", "01", 3)
    bad = d / "001.jpg"
    (d / "001.png").unlink()
    bad.write_bytes(b"\x00garbage, not a JPEG" * 10)
    v = D.get_video(_cfg(tmp_path), "test", "01")  # listing does not read the frames
    assert bad in v.frames
    it = D.iter_frames(v)
    next(it)
    with pytest.raises(VadError, match="001.jpg") as exc:
        next(it)
    assert "unreadable" in str(exc.value)


def test_frame_of_another_size_raises(tmp_path):
    d = _write_video(tmp_path, "test", "01", 2)
    cv2.imwrite(str(d / "002.png"), np.zeros((8, 8, 3), np.uint8))
    v = D.get_video(_cfg(tmp_path), "test", "01")
    with pytest.raises(VadError, match="002.png"):
        list(D.iter_frames(v))


def test_demo_video_names_known_before_generation(tiny_resolved):
    assert D.video_names(tiny_resolved, "train") == ["01", "02"]
    assert D.video_names(tiny_resolved, "test") == ["01", "02"]


# --------------------------------------------------------------------------- demo


def test_demo_generate_is_deterministic(tiny_resolved, tmp_path):
    dcfg = copy.deepcopy(tiny_resolved["demo"])
    generate(dcfg, tmp_path / "a")
    generate(dcfg, tmp_path / "b")
    names = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    for rel in ("training/frames/01/000.png", "training/frames/02/017.png",
                "testing/frames/01/025.png", "testing/frames/02/039.png"):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    a, b = (scipy.io.loadmat(tmp_path / x / "demo.mat")["gt"] for x in ("a", "b"))
    for ea, eb in zip(a.ravel(), b.ravel(), strict=True):
        np.testing.assert_array_equal(ea, eb)
    # and another seed gives another scene
    dcfg["seed"] += 1
    generate(dcfg, tmp_path / "c")
    rel = "testing/frames/01/025.png"
    assert (tmp_path / "a" / rel).read_bytes() != (tmp_path / "c" / rel).read_bytes()


def test_demo_layout_and_masks_agree_with_labels(tiny_demo):
    cfg = tiny_demo
    d = cfg["demo"]
    videos = [D.get_video(cfg, "test", n) for n in D.video_names(cfg, "test")]
    train = [D.get_video(cfg, "train", n) for n in D.video_names(cfg, "train")]
    assert len(videos) == d["n_test"] and len(train) == d["n_train"]
    assert all(v.n_frames == d["n_frames"] for v in videos + train)
    first = next(D.iter_frames(videos[0]))
    assert first.shape == (d["height"], d["width"], 3)
    labels = D.frame_labels(cfg, videos)
    for v in videos:
        masks = D.pixel_masks(cfg, v.name)
        assert masks is not None and masks.dtype == bool
        assert masks.shape == (v.n_frames, d["height"], d["width"])
        lab = labels[v.name]
        assert lab.any() and not lab.all()  # every test video holds an anomaly and normal frames
        area = masks.reshape(len(masks), -1).sum(1)
        assert (area[lab] > 0).all()        # abnormal frames show the anomalous object
        # frames labelled normal show at most a small part of it (< 30 % of its full size)
        assert (area[~lab] < 0.3 * area.max()).all()
    with pytest.raises(VadError, match="99"):
        D.pixel_masks(cfg, "99")
