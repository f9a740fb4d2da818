"""Every dataset layout (vad_pipeline.datasets.layouts) on fixtures written in the official
archives' arrangement from the tiny demo: same frames and labels back, and one test per error."""

from __future__ import annotations

import copy
import json
import logging
import pickle
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

from vad_pipeline import config as C
from vad_pipeline import datasets as D
from vad_pipeline.datasets import groundtruth as G
from vad_pipeline.datasets.export import export, write_video_file
from vad_pipeline.io import VadError

LAYOUTS = ("frames", "ucsd", "avenue", "shanghaitech", "videos")
# names the official archives give the first test/train video, in the order of the demo's
FIRST = {"frames": ("01", "01"), "ucsd": ("Train001", "Test001"), "avenue": ("01", "01"),
         "shanghaitech": ("01_001", "01_0001"), "videos": ("01", "01")}
# mean absolute grey-level error allowed by the layout's encoding (JPEG q100, mp4v, TIFF, FFV1)
TOLERANCE = {"frames": 3.0, "ucsd": 0.0, "avenue": 0.0, "shanghaitech": 3.0, "videos": 6.0}


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> dict:
    """The tiny demo (3 test videos), read through the demo adapter."""
    from tests.conftest import tiny_overlay
    from vad_pipeline.demo import generate

    root = tmp_path_factory.mktemp("layouts")
    cfg = C.load(Path(__file__).resolve().parents[1] / "config.yaml")
    cfg["demo"] = C.deep_merge(cfg["demo"], {**tiny_overlay()["demo"], "n_test": 3, "n_frames": 30})
    cfg["datasets"]["demo"]["root"] = str(root / "demo")
    res = C.resolve(cfg, "demo")
    generate(res["demo"], res["dataset"]["root"])
    train = [D.get_video(res, "train", n) for n in D.video_names(res, "train")]
    test = [D.get_video(res, "test", n) for n in D.video_names(res, "test")]
    labels = D.frame_labels(res, test)
    return {"cfg": cfg, "root": root, "train": train, "test": test, "labels": labels,
            "masks": {v.name: D.pixel_masks(res, v) for v in test}}


def _resolve(source: dict, section: dict, name: str = "mine") -> dict:
    cfg = copy.deepcopy(source["cfg"])
    cfg["datasets"][name] = section
    return C.resolve(cfg, name)


@pytest.fixture(scope="module")
def exported(source) -> dict[str, dict]:
    """The dataset section of every layout, written once under the module's folder."""
    s = source
    return {layout: export(s["train"], s["test"], s["labels"], s["masks"], layout, s["root"] / layout)
            for layout in LAYOUTS}


def _fresh(source, exported, layout, tmp_path) -> tuple[dict, Path]:
    """A private copy of one layout's fixture, to break without harming the others."""
    root = tmp_path / layout
    shutil.copytree(exported[layout]["root"], root)
    return _resolve(source, {**exported[layout], "root": str(root)}), root


def _stack(video: D.Video, gray: bool = False) -> np.ndarray:
    return np.stack(list(D.iter_frames(video, gray=gray))).astype(np.int16)


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("layout", LAYOUTS)
def test_layout_round_trip_gives_the_same_frames_and_labels(source, exported, layout):
    cfg = _resolve(source, exported[layout])
    train_names, test_names = D.video_names(cfg, "train"), D.video_names(cfg, "test")
    assert (train_names[0], test_names[0]) == FIRST[layout]
    assert len(train_names) == len(source["train"]) and len(test_names) == len(source["test"])
    test = [D.get_video(cfg, "test", n) for n in test_names]
    train = [D.get_video(cfg, "train", n) for n in train_names]
    for got, want in zip(test + train, source["test"] + source["train"], strict=True):
        assert got.n_frames == want.n_frames
        a, b = _stack(got, gray=True), _stack(want, gray=True)
        assert a.shape == b.shape
        assert np.abs(a - b).mean() <= TOLERANCE[layout] + 0.5, (layout, got.name)
    labels = D.frame_labels(cfg, test)
    assert list(labels) == test_names
    for got, want in zip(test, source["test"]):
        np.testing.assert_array_equal(labels[got.name], source["labels"][want.name])


@pytest.mark.parametrize("layout", ["ucsd", "avenue", "shanghaitech"])
def test_pixel_masks_come_back_as_bool_frame_size_stacks(source, exported, layout):
    cfg = _resolve(source, exported[layout])
    test = [D.get_video(cfg, "test", n) for n in D.video_names(cfg, "test")]
    for got, want in zip(test, source["test"]):
        masks = D.pixel_masks(cfg, got)
        assert masks.dtype == bool and masks.shape == source["masks"][want.name].shape
        expected = source["masks"][want.name]
        if layout == "avenue":  # Avenue's labels are "any mask pixel": masks only on abnormal frames
            expected = expected & source["labels"][want.name][:, None, None]
        np.testing.assert_array_equal(masks, expected)


def test_a_transposed_pixel_mask_is_an_error_naming_it(source, exported, tmp_path):
    """Masks stored width x height are not resized into the frame (that would move every region):
    an error names the file and says what is wrong; masks at another resolution of the same
    shape are resized."""
    cfg, root = _fresh(source, exported, "shanghaitech", tmp_path)
    video = D.get_video(cfg, "test", D.video_names(cfg, "test")[0])
    path = root / "testing" / "test_pixel_mask" / f"{video.name}.npy"
    masks = np.load(path)
    np.save(path, masks.transpose(0, 2, 1))
    with pytest.raises(VadError, match=rf"{video.name}\.npy.*transposed"):
        D.pixel_masks(cfg, video)
    np.save(path, masks.repeat(2, axis=1).repeat(2, axis=2))   # twice the resolution: resized back
    np.testing.assert_array_equal(D.pixel_masks(cfg, video), masks > 0)


def test_video_files_report_count_size_and_fps(source, exported):
    cfg = _resolve(source, exported["avenue"])
    v = D.get_video(cfg, "test", "02")
    h, w = source["cfg"]["demo"]["height"], source["cfg"]["demo"]["width"]
    assert v.file is not None and v.file.name == "02.avi"
    assert (v.n_frames, v.size, v.fps) == (30, (h, w), 10.0)
    assert D.video_source(cfg, "test", "02") == v.file


def test_shanghaitech_trains_on_videos_and_tests_on_frames(source, exported):
    cfg = _resolve(source, exported["shanghaitech"])
    assert D.get_video(cfg, "train", "01_002").file.suffix == ".avi"
    assert D.get_video(cfg, "test", "01_0002").file is None


def test_gt_summary_counts(source, exported):
    cfg = _resolve(source, exported["ucsd"])
    test = [D.get_video(cfg, "test", n) for n in D.video_names(cfg, "test")]
    s = D.gt_summary(cfg, test, D.frame_labels(cfg, test))
    assert s["videos"] == 3 and s["frames"] == 90 and s["labelled"]
    assert s["abnormal_frames"] == sum(int(v.sum()) for v in source["labels"].values())
    assert s["frames_with_pixel_masks"] == 90
    assert s["frames_with_abnormal_pixels"] == sum(int(m.reshape(30, -1).any(1).sum()) for m in source["masks"].values())
    json.dumps(s)  # plain JSON types only


# --------------------------------------------------------------------------- own footage


def test_videos_without_labels_csv_are_unlabelled(source, exported, tmp_path):
    cfg, root = _fresh(source, exported, "videos", tmp_path)
    (root / "labels.csv").unlink()
    test = [D.get_video(cfg, "test", n) for n in D.video_names(cfg, "test")]
    assert D.frame_labels(cfg, test) == {}
    assert D.gt_summary(cfg, test, {})["abnormal_frames"] is None


def test_videos_mixed_resolutions_keep_their_own_size(source, exported, tmp_path):
    cfg, root = _fresh(source, exported, "videos", tmp_path)
    small = [cv2.resize(f, (64, 48)) for f in D.iter_frames(source["test"][0])]
    (root / "test" / "01.avi").unlink()
    write_video_file(root / "test" / "01.avi", small, 10)
    a, b = (D.get_video(cfg, "test", n) for n in ("01", "02"))
    assert D.frame_size(a) == (48, 64) and next(D.iter_frames(a)).shape == (48, 64, 3)
    assert D.frame_size(b) == (source["cfg"]["demo"]["height"], source["cfg"]["demo"]["width"])


def test_videos_two_with_one_name_is_an_error(source, exported, tmp_path):
    cfg, root = _fresh(source, exported, "videos", tmp_path)
    shutil.copy(root / "test" / "01.avi", root / "test" / "01.mp4")
    with pytest.raises(VadError, match="two videos named '01'"):
        D.video_names(cfg, "test")


@pytest.mark.parametrize("row, message", [
    ("99,1,2", "'99' is not a test video"),
    ("02,5,30", r"\[5, 30\] of video 02 does not fit its 30 frames"),
    ("02,7,3", r"\[7, 3\]"),
])
def test_labels_csv_errors_name_the_line(source, exported, tmp_path, row, message):
    cfg, root = _fresh(source, exported, "videos", tmp_path)
    (root / "labels.csv").write_text(f"video,start_frame,end_frame\n01,0,3\n{row}\n")
    test = [D.get_video(cfg, "test", n) for n in D.video_names(cfg, "test")]
    with pytest.raises(VadError, match=message) as exc:
        D.frame_labels(cfg, test)
    assert "labels.csv:3" in str(exc.value)


def test_labels_csv_several_rows_per_video_zero_based(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("video,start_frame,end_frame\na,0,1\na,5,5\nb,2,3\n")
    labels = G.labels_from_csv(path, {"a": 7, "b": 4, "c": 3})
    assert labels["a"].astype(int).tolist() == [1, 1, 0, 0, 0, 1, 0]
    assert labels["b"].astype(int).tolist() == [0, 0, 1, 1]
    assert not labels["c"].any()


# --------------------------------------------------------------------------- decoding errors


def test_corrupt_video_is_named(source, exported, tmp_path):
    cfg, root = _fresh(source, exported, "avenue", tmp_path)
    bad = root / "testing_videos" / "02.avi"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00AVI garbage" * 50)
    with pytest.raises(VadError, match="02.avi") as exc:
        D.get_video(cfg, "test", "02")
    assert "corrupt" in str(exc.value)


def test_truncated_video_is_named(source, exported, tmp_path):
    cfg, root = _fresh(source, exported, "avenue", tmp_path)
    path = root / "testing_videos" / "03.avi"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(VadError, match="03.avi") as exc:  # when opened or when decoded
        v = D.get_video(cfg, "test", "03")
        list(D.iter_frames(v))
    assert "truncated" in str(exc.value)


def test_header_count_checked_while_decoding(source, exported):
    cfg = _resolve(source, exported["avenue"])
    v = D.get_video(cfg, "test", "01")
    short = D.Video(name=v.name, split="test", file=v.file, count=v.count + 5, size=v.size)
    with pytest.raises(VadError, match=r"decoded 30 of the 35 frames"):
        list(D.iter_frames(short))
    long = D.Video(name=v.name, split="test", file=v.file, count=v.count - 5, size=v.size)
    with pytest.raises(VadError, match="more frames than the 25"):
        list(D.iter_frames(long))


# --------------------------------------------------------------------------- ground-truth errors


def test_gt_length_differs_from_frame_count_names_video_and_counts(source, exported, tmp_path):
    cfg, root = _fresh(source, exported, "shanghaitech", tmp_path)
    np.save(root / "testing" / "test_frame_mask" / "01_0002.npy", np.zeros(28, np.int64))
    test = [D.get_video(cfg, "test", n) for n in D.video_names(cfg, "test")]
    with pytest.raises(VadError, match="01_0002.npy") as exc:
        D.frame_labels(cfg, test)
    assert "01_0002 has 28 frames but the video has 30" in str(exc.value)


def test_avenue_label_count_differs(source, exported, tmp_path):
    cfg, root = _fresh(source, exported, "avenue", tmp_path)
    vol = np.empty((1, 31), dtype=object)
    for t in range(31):
        vol[0, t] = np.zeros((4, 4), np.uint8)
    scipy.io.savemat(root / "ground_truth_demo" / "testing_label_mask" / "3_label.mat", {"volLabel": vol})
    test = [D.get_video(cfg, "test", n) for n in D.video_names(cfg, "test")]
    with pytest.raises(VadError, match="3_label.mat.*03 has 31 frames but the video has 30"):
        D.frame_labels(cfg, test)


@pytest.mark.parametrize("layout, missing", [
    ("shanghaitech", "testing/test_frame_mask/01_0003.npy"),
    ("avenue", "ground_truth_demo/testing_label_mask/2_label.mat"),
    ("ucsd", "Test/UCSDped_fixture.m"),
])
def test_missing_gt_is_an_error_unless_unlabelled(source, exported, tmp_path, layout, missing):
    cfg, root = _fresh(source, exported, layout, tmp_path)
    (root / missing).unlink()
    test = [D.get_video(cfg, "test", n) for n in D.video_names(cfg, "test")]
    with pytest.raises(VadError, match=Path(missing).name):
        D.frame_labels(cfg, test)
    cfg["dataset"]["labelled"] = False
    assert D.frame_labels(cfg, test) == {}
    assert D.pixel_masks(cfg, test[0]) is None


def test_ucsd_m_file_is_parsed_as_text_never_run(tmp_path):
    path = tmp_path / "UCSDped1.m"
    path.write_text(
        "TestVideoFile = {};\n"
        "% a comment: TestVideoFile{end+1}.gt_frame = [1:2];\n"
        "TestVideoFile{end+1}.gt_frame = [60:152];\n"
        "TestVideoFile{end+1}.gt_frame = [5:90, 140:200];\n"
        "TestVideoFile{end+1}.gt_frame = [7];  system('rm -rf /');\n"
    )
    ranges = G.ranges_from_ucsd_m(path)
    assert [r.T.tolist() for r in ranges] == [[[60, 152]], [[5, 90], [140, 200]], [[7, 7]]]
    path.write_text("TestVideoFile{end+1}.gt_frame = [1:x];\n")
    with pytest.raises(VadError, match=r"UCSDped1.m:1: cannot parse '1:x'"):
        G.ranges_from_ucsd_m(path)


def test_ucsd_m_with_other_video_count(source, exported, tmp_path):
    cfg, root = _fresh(source, exported, "ucsd", tmp_path)
    m = root / "Test" / "UCSDped_fixture.m"
    m.write_text("\n".join(m.read_text().splitlines()[:-1]) + "\n")  # drop the last video's line
    test = [D.get_video(cfg, "test", n) for n in D.video_names(cfg, "test")]
    with pytest.raises(VadError, match="2 test videos listed but 3 found"):
        D.frame_labels(cfg, test)


def test_pickled_gt_label_json_needs_allow_pickle(source, exported, tmp_path, caplog):
    cfg, root = _fresh(source, exported, "frames", tmp_path)
    lists = [source["labels"][v.name].astype(int).tolist() for v in source["test"]]
    (root / "gt_label.json").write_bytes(pickle.dumps(lists))
    cfg["dataset"]["gt"] = "gt_label.json"
    test = [D.get_video(cfg, "test", n) for n in D.video_names(cfg, "test")]
    with pytest.raises(VadError, match="gt_label.json: not JSON.*allow_pickle"):
        D.frame_labels(cfg, test)
    cfg["dataset"]["allow_pickle"] = True
    with caplog.at_level(logging.WARNING):
        labels = D.frame_labels(cfg, test)
    assert "unpickling" in caplog.text
    for v in test:
        np.testing.assert_array_equal(labels[v.name], source["labels"][v.name])
    # a real JSON file needs no permission
    (root / "gt_label.json").write_text(json.dumps(lists))
    cfg["dataset"]["allow_pickle"] = False
    assert D.frame_labels(cfg, test)["02"].tolist() == source["labels"]["02"].tolist()


def test_unknown_layout_is_a_config_error(source):
    with pytest.raises(VadError, match="layout"):
        _resolve(source, {"layout": "tarball", "root": "x"})


def test_frame_size_in_config_is_checked(source, exported):
    cfg = _resolve(source, {**exported["avenue"], "frame_size": [240, 360]})
    with pytest.raises(VadError, match=r"01.avi: frames are 96x128 .*frame_size is 240x360"):
        D.get_video(cfg, "test", "01")
