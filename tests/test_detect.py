"""Detection (vad_pipeline.detect: the registry, the motion and mmdet backends)."""

from __future__ import annotations

import copy

import cv2
import numpy as np
import pandas as pd
import pytest

from tests.reference import boxes_by_frame
from vad_pipeline import detect as Det
from vad_pipeline.datasets import Video, get_video, video_names
from vad_pipeline.detect import mmdet as MM
from vad_pipeline.detect import motion as Mo
from vad_pipeline.io import VadError


def _boxes(*rows) -> np.ndarray:
    return np.array([(*r, 1.0) for r in rows], dtype=np.float64).reshape(-1, 5)


# --------------------------------------------------------------------------- filter_overlaps


def test_box_mostly_inside_a_larger_one_is_dropped():
    boxes = _boxes((5, 5, 9, 9), (0, 0, 10, 10), (20, 20, 25, 25))  # small one listed first
    kept = Mo.filter_overlaps(boxes, 0.6)
    np.testing.assert_array_equal(kept[:, :4], [[0, 0, 10, 10], [20, 20, 25, 25]])


def test_disjoint_boxes_are_all_kept_in_input_order():
    boxes = _boxes((30, 0, 40, 10), (0, 0, 10, 10), (0, 20, 5, 30), (12, 12, 14, 14))
    kept = Mo.filter_overlaps(boxes, 0.0)
    np.testing.assert_array_equal(kept, boxes)


def test_overlap_threshold_boundary():
    # (8, 0, 12, 4) has area 16, of which 2 x 4 = 8 (exactly half) lies inside (0, 0, 10, 10)
    boxes = _boxes((0, 0, 10, 10), (8, 0, 12, 4))
    assert len(Mo.filter_overlaps(boxes, 0.5)) == 2      # covered == max_overlap: kept
    assert len(Mo.filter_overlaps(boxes, 0.49)) == 1     # more than allowed: dropped
    np.testing.assert_array_equal(Mo.filter_overlaps(boxes, 0.49)[:, :4], [[0, 0, 10, 10]])
    assert len(Mo.filter_overlaps(boxes, 1.0)) == 2      # 1.0 keeps everything


def test_only_kept_boxes_suppress():
    # B lies 70 % inside A and is dropped; C lies 83 % inside B but only 33 % inside A: it stays
    a, b, c = (0, 0, 20, 20), (13, 0, 23, 10), (18, 0, 24, 4)
    kept = Mo.filter_overlaps(_boxes(a, b, c), 0.6)
    np.testing.assert_array_equal(kept[:, :4], [a, c])


def test_filter_overlaps_empty():
    assert Mo.filter_overlaps(np.zeros((0, 5)), 0.5).shape == (0, 5)


# --------------------------------------------------------------------------- boxes_from_mask


P = {"min_area": 5, "max_area_frac": 0.5, "pad": 0, "split_valley": 0.0}


def test_boxes_from_mask_area_filter_and_fill():
    fg = np.zeros((20, 30), np.uint8)
    fg[3:7, 2:5] = 1          # 4 x 3 = 12 px, full rectangle
    fg[10:12, 10:12] = 1      # 4 px: below min_area
    fg[12:16, 20:24] = 1      # L shape: 4x4 box with a 2x2 corner missing = 12 px
    fg[12:14, 22:24] = 0
    boxes = Mo.boxes_from_mask(fg, P)
    assert boxes.shape == (2, 5)
    got = {tuple(b[:4].astype(int)): b[4] for b in boxes}
    assert got == {(2, 3, 5, 7): pytest.approx(1.0), (20, 12, 24, 16): pytest.approx(12 / 16)}


def _walkers() -> np.ndarray:
    """Two walkers (upright ellipses 13 x 31 px) side by side whose silhouettes touch: one blob."""
    fg = np.zeros((60, 80), np.uint8)
    cv2.ellipse(fg, (26, 25), (6, 15), 0, 0, 360, 1, -1)
    cv2.ellipse(fg, (38, 29), (6, 15), 0, 0, 360, 1, -1)
    return fg


def test_touching_moving_blobs_are_split():
    """Two walkers whose silhouettes touch are one connected blob: one box without splitting,
    two boxes, each around one walker, with split_valley."""
    fg = _walkers()
    assert cv2.connectedComponents(fg)[0] == 2   # background + one blob
    merged = Mo.boxes_from_mask(fg, P)
    assert [tuple(b[:4].astype(int)) for b in merged] == [(20, 10, 45, 45)]
    split = sorted(tuple(b[:4].astype(int)) for b in Mo.boxes_from_mask(fg, {**P, "split_valley": 0.5}))
    assert len(split) == 2
    (l1, t1, r1, b1), (l2, t2, r2, b2) = split
    assert (l1, t1, b1) == (20, 10, 41) and (t2, r2, b2) == (14, 45, 45)   # each walker's own extent
    assert 30 <= r1 <= 33 and r1 == l2    # cut where they touch
    # one walker alone, and a blob without a narrowing, stay whole
    one = np.zeros((60, 80), np.uint8)
    cv2.ellipse(one, (26, 25), (6, 15), 0, 0, 360, 1, -1)
    assert len(Mo.boxes_from_mask(one, {**P, "split_valley": 0.5})) == 1
    wide = np.zeros((60, 80), np.uint8)
    wide[10:40, 10:70] = 1   # a cart: wide, but full everywhere
    assert len(Mo.boxes_from_mask(wide, {**P, "split_valley": 0.5})) == 1


def test_split_blob_stacked_and_off():
    comp = np.zeros((40, 12), np.uint8)
    comp[0:18, :] = 1
    comp[18:20, 5:7] = 1     # a thin neck: one walker behind (above) the other
    comp[20:40, :] = 1
    assert Mo.split_blob(comp, 0.5, 5) == [(0, 0, 12, 18), (0, 18, 12, 40)] or \
        Mo.split_blob(comp, 0.5, 5) == [(0, 0, 12, 20), (0, 20, 12, 40)]
    assert Mo.split_blob(comp, 0.0, 5) == [(0, 0, 12, 40)]


def test_boxes_from_mask_min_area_is_inclusive():
    fg = np.zeros((10, 10), np.uint8)
    fg[2:4, 2:4] = 1  # 4 px
    assert len(Mo.boxes_from_mask(fg, {**P, "min_area": 4})) == 1
    assert len(Mo.boxes_from_mask(fg, {**P, "min_area": 4.5})) == 0


def test_boxes_from_mask_drops_huge_blobs():
    fg = np.zeros((10, 10), np.uint8)
    fg[:, :6] = 1  # 60 % of the frame
    assert len(Mo.boxes_from_mask(fg, {**P, "max_area_frac": 0.5})) == 0
    assert len(Mo.boxes_from_mask(fg, {**P, "max_area_frac": 0.7})) == 1


def test_boxes_from_mask_padding_and_clipping():
    fg = np.zeros((20, 30), np.uint8)
    fg[5:9, 10:13] = 1       # inside: padded on every side
    fg[0:3, 27:30] = 1       # top-right corner: padding clipped to the frame
    boxes = Mo.boxes_from_mask(fg, {**P, "pad": 2, "min_area": 1})
    got = sorted(tuple(b[:4].astype(int)) for b in boxes)
    assert got == [(8, 3, 15, 11), (25, 0, 30, 5)]
    assert (boxes[:, 4] == 1.0).all()  # the fill ratio is of the unpadded blob


def test_boxes_from_mask_diagonal_pixels_connect():
    fg = np.zeros((10, 10), np.uint8)
    fg[2:4, 2:4] = 1
    fg[4:6, 4:6] = 1  # touches the first square at a corner only
    boxes = Mo.boxes_from_mask(fg, {**P, "min_area": 1})
    np.testing.assert_array_equal(boxes[:, :4], [[2, 2, 6, 6]])


def test_boxes_from_empty_mask():
    assert Mo.boxes_from_mask(np.zeros((8, 8), np.uint8), P).shape == (0, 5)


# --------------------------------------------------------------------------- detect_video


def test_detect_video_on_the_demo(tiny_demo, tmp_path):
    cfg = tiny_demo
    video = get_video(cfg, "test", video_names(cfg, "test")[0])
    out = tmp_path / "boxes" / "01.csv"
    df = Det.detect_video(video, cfg, str(out))
    assert list(df.columns) == Det.COLUMNS
    assert len(df) > video.n_frames // 2  # the scene is busy: several boxes in most frames
    back = pd.read_csv(out)
    assert list(back.columns) == Det.COLUMNS and len(back) == len(df)
    h, w = cfg["demo"]["height"], cfg["demo"]["width"]
    assert df["frame"].between(0, video.n_frames - 1).all()
    assert (df["x1"] >= 0).all() and (df["y1"] >= 0).all()
    assert (df["x2"] <= w).all() and (df["y2"] <= h).all()
    assert (df["x2"] > df["x1"]).all() and (df["y2"] > df["y1"]).all()
    # the score is the blob's fill of its box: the demo's walkers are filled ellipses, pi/4 of their
    # box (measured: 0.69-0.92, median 0.81); a constant or random score misses this
    assert df["score"].between(0.5, 1).all() and abs(df["score"].median() - np.pi / 4) < 0.1
    assert (df["class"] == "motion").all()
    # no kept box lies mostly inside another one of the same frame
    limit = cfg["detect"]["motion"]["max_overlap"]
    for _, g in df.groupby("frame"):
        b = g[["x1", "y1", "x2", "y2"]].to_numpy(float)
        boxes = np.c_[b, np.ones(len(b))]
        assert len(Mo.filter_overlaps(boxes, limit)) == len(b)


def test_detections_cover_the_anomalous_object(tiny_demo, tmp_path):
    from vad_pipeline.datasets import frame_labels, pixel_masks

    cfg = tiny_demo
    videos = [get_video(cfg, "test", n) for n in video_names(cfg, "test")]
    labels = frame_labels(cfg, videos)
    for v in videos:
        df = Det.detect_video(v, cfg, str(tmp_path / f"{v.name}.csv"))
        masks = pixel_masks(cfg, v.name)
        hit = 0
        abnormal = np.flatnonzero(labels[v.name])
        for t in abnormal:
            ys, xs = np.nonzero(masks[t])
            cy, cx = ys.mean(), xs.mean()
            g = df[df["frame"] == t]
            hit += bool(((g.x1 <= cx) & (cx < g.x2) & (g.y1 <= cy) & (cy < g.y2)).any())
        assert hit >= 0.8 * len(abnormal), v.name


def _blank_video(tmp_path, n=6, split="test") -> Video:
    d = tmp_path / "blank" / "testing" / "frames" / "03"
    d.mkdir(parents=True)
    frame = np.full((48, 64, 3), 90, np.uint8)
    for t in range(n):
        cv2.imwrite(str(d / f"{t:03d}.png"), frame)
    return Video(name="03", split=split, frames=tuple(sorted(d.iterdir())))


def test_training_video_without_detection_raises_naming_the_folder(tiny_resolved, tmp_path):
    video = _blank_video(tmp_path, split="train")
    out = tmp_path / "out" / "03.csv"
    with pytest.raises(VadError, match="allow_empty") as exc:
        Det.detect_video(video, tiny_resolved, str(out))
    assert str(video.frames[0].parent) in str(exc.value)
    assert not out.exists()


def test_video_without_detection_allowed(tiny_resolved, tmp_path):
    cfg = copy.deepcopy(tiny_resolved)
    cfg["detect"]["allow_empty"] = True
    out = tmp_path / "out" / "03.csv"
    df = Det.detect_video(_blank_video(tmp_path), cfg, str(out))
    assert df.empty
    back = pd.read_csv(out)
    assert list(back.columns) == Det.COLUMNS and len(back) == 0


def test_quiet_test_video_is_kept_with_a_warning(tiny_resolved, tmp_path, caplog):
    """A test video in which nothing moves (frozen camera, empty corridor) is normal footage."""
    out = tmp_path / "out" / "03.csv"
    video = _blank_video(tmp_path, split="test")
    df = Det.detect_video(video, tiny_resolved, str(out))
    assert df.empty and len(pd.read_csv(out)) == 0
    assert str(video.source) in caplog.text and "no object detected" in caplog.text


def test_moving_square_is_detected(tiny_resolved, tmp_path):
    d = tmp_path / "sq"
    d.mkdir()
    for t in range(8):
        img = np.full((48, 64, 3), 90, np.uint8)
        img[20:32, 4 + 5 * t : 16 + 5 * t] = 220
        cv2.imwrite(str(d / f"{t:03d}.png"), img)
    video = Video(name="sq", split="test", frames=tuple(sorted(d.iterdir())))
    cfg = copy.deepcopy(tiny_resolved)
    cfg["detect"]["motion"].update(min_area=20, pad=0, dilate=0, blur=1, frame_diff_threshold=0)
    df = Det.detect_video(video, cfg, str(tmp_path / "sq.csv"))
    assert sorted(df["frame"].unique()) == list(range(8))
    for t, g in df.groupby("frame"):
        assert len(g) == 1
        row = g.iloc[0]
        assert (row.x1, row.y1, row.x2, row.y2) == (4 + 5 * t, 20, 16 + 5 * t, 32)


def test_unknown_detect_backend(tiny_resolved, tmp_path):
    cfg = copy.deepcopy(tiny_resolved)
    cfg["detect"]["backend"] = "yolo"
    with pytest.raises(VadError, match="yolo"):
        Det.detect_video(_blank_video(tmp_path), cfg, str(tmp_path / "x.csv"))


def test_boxes_by_frame():
    df = pd.DataFrame([(0, 1, 2, 3, 4, 0.5, "motion"), (0, 5, 6, 7, 8, 0.5, "motion"),
                       (3, 0, 0, 2, 2, 1.0, "motion")], columns=Det.COLUMNS)
    by = boxes_by_frame(df)
    assert set(by) == {0, 3}
    np.testing.assert_array_equal(by[0], [[1, 2, 3, 4], [5, 6, 7, 8]])


# --------------------------------------------------------------------------- mmdet backend logic


def _det(*rows) -> np.ndarray:
    """Detections x1, y1, x2, y2, score, label."""
    return np.array(rows, dtype=np.float64).reshape(-1, 6)


MM_PARAMS = {"score_threshold": 0.5, "min_area": 100, "max_overlap": 0.6}


def test_filter_detections_score_and_area_thresholds_are_inclusive():
    det = _det((0, 0, 10, 10, 0.5, 0), (20, 0, 30, 10, 0.49, 0), (40, 0, 49, 10, 0.9, 0), (60, 0, 70, 10, 0.7, 3))
    kept = MM.filter_detections(det, MM_PARAMS)
    # 0.49 is below the threshold; the 9 x 10 box is below 100 px
    np.testing.assert_array_equal(kept[:, [0, 4, 5]], [[0, 0.5, 0], [60, 0.7, 3]])


def test_filter_detections_prefers_the_higher_score_not_the_larger_box():
    big_weak = (0, 0, 40, 40, 0.6, 0)
    small_strong = (0, 0, 20, 20, 0.95, 0)  # lies entirely inside big_weak
    inside_big = (30, 30, 40, 40, 0.8, 0)
    kept = MM.filter_detections(_det(big_weak, small_strong, inside_big), MM_PARAMS)
    # big_weak is visited last: 1/4 of it lies inside small_strong, so it stays too
    assert len(kept) == 3
    kept = MM.filter_detections(_det(big_weak, small_strong), {**MM_PARAMS, "max_overlap": 0.2})
    np.testing.assert_array_equal(kept[:, 4], [0.95])


def test_difference_boxes_and_the_uncovered_ones():
    prev = np.full((40, 60), 100, np.float32)
    cur = prev.copy()
    cur[5:15, 5:15] = 150    # changed region A (100 px)
    cur[20:30, 40:52] = 160  # changed region B (120 px)
    p = {"diff_threshold": 18, "min_area": 50, "max_area_frac": 0.5}
    fg = MM.difference_boxes(cur, prev, p)
    assert sorted(map(tuple, fg[:, :4].astype(int))) == [(5, 5, 15, 15), (40, 20, 52, 30)]
    assert len(MM.difference_boxes(cur, None, p)) == 0
    det = _det((0, 0, 16, 16, 0.9, 0))  # covers A entirely, B not at all
    np.testing.assert_array_equal(MM.uncovered(fg, det, 0.6)[:, :4], [[40, 20, 52, 30]])
    assert len(MM.uncovered(fg, _det(), 0.6)) == 2


class FakeDetector:
    """Stands in for MMDetector: one fixed detection per frame, records the batch sizes."""

    def __init__(self):
        self.calls = []

    def __call__(self, frames):
        self.calls.append(len(frames))
        return [_det((-5, 2, 30, 70, 0.9, 0), (1, 1, 5, 5, 0.99, 2)) for _ in frames]

    def class_name(self, label):
        return ("person", "bicycle", "car")[label]


def _moving_square_video(tmp_path, n=5) -> Video:
    d = tmp_path / "sq" / "testing" / "frames" / "01"
    d.mkdir(parents=True)
    for t in range(n):
        frame = np.full((48, 64, 3), 90, np.uint8)
        frame[30:40, 40 + t:50 + t] = 220
        cv2.imwrite(str(d / f"{t:03d}.png"), frame)
    return Video(name="01", split="test", frames=tuple(sorted(d.iterdir())))


def test_mmdet_backend_filters_clips_and_adds_uncovered_motion(tiny_resolved, tmp_path):
    p = copy.deepcopy(tiny_resolved["detect"]["mmdet"])
    p.update(batch_size=2, min_area=50, foreground={"enabled": True, "diff_threshold": 18, "blur": 1, "min_area": 5})
    fake = FakeDetector()
    df = MM.detect_mmdet(_moving_square_video(tmp_path), p, detector=fake)
    assert list(df.columns) == Det.COLUMNS
    assert fake.calls == [2, 2, 1]  # batches of batch_size frames
    people = df[df["class"] == "person"]
    assert list(people.frame) == [0, 1, 2, 3, 4]  # the 4 x 4 car is below min_area
    assert (people[["x1", "y1", "x2", "y2"]].to_numpy() == [0, 2, 30, 48]).all()  # clipped to the frame
    moving = df[df["class"] == "foreground"]
    assert set(moving.frame) == {1, 2, 3, 4}  # no previous frame at t = 0
    assert (moving.x1 >= 40).all() and (moving.x2 <= 55).all() and (moving.y1 >= 30).all()
    p["foreground"]["enabled"] = False
    df = MM.detect_mmdet(_moving_square_video(tmp_path / "b"), p, detector=FakeDetector())
    assert set(df["class"]) == {"person"}


def test_mmdet_backend_without_mmdet_or_weights_says_what_to_do(tiny_resolved):
    p = tiny_resolved["detect"]["mmdet"]
    try:
        import mmdet  # noqa: F401
    except ImportError:
        with pytest.raises(VadError, match=r"pip install -e '\.\[mmdet\]'"):
            MM.MMDetector(p)
        return
    with pytest.raises(VadError, match="detect.mmdet.checkpoint is not set.*Cascade R-CNN R101-FPN.*model zoo.*Reproduce the papers"):
        MM.MMDetector(p)


def test_mmdet_detector_from_local_config_and_weights(tiny_resolved, tmp_path, mmdet_small):
    import torch

    config, ckpt = mmdet_small
    cfg = copy.deepcopy(tiny_resolved)
    cfg["detect"]["backend"] = "mmdet"
    cfg["detect"]["mmdet"].update(config=str(config), checkpoint=str(ckpt), device="cpu", batch_size=2,
                                  score_threshold=0.0, min_area=0, max_overlap=1.0)
    out = tmp_path / "det" / "01.csv"
    df = Det.detect_video(_moving_square_video(tmp_path), cfg, str(out))
    assert list(pd.read_csv(out).columns) == Det.COLUMNS
    dets = df[df["class"] != "foreground"]
    assert set(dets.frame) == set(range(5)) and dets.groupby("frame").size().max() <= 5  # config's max_per_img
    assert dets["class"].map(type).eq(str).all() and "person" in MM.MMDetector(cfg["detect"]["mmdet"]).classes
    assert ((dets.x1 >= 0) & (dets.x2 <= 64) & (dets.y1 >= 0) & (dets.y2 <= 48) & (dets.x2 > dets.x1)).all()
    # weights of another architecture are refused, naming the file
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    state.pop(next(iter(state)))
    torch.save({"state_dict": state}, tmp_path / "other.pth")
    cfg["detect"]["mmdet"]["checkpoint"] = str(tmp_path / "other.pth")
    with pytest.raises(VadError, match="other.pth: not a MMDetection detector checkpoint: 1 missing"):
        Det.detect_video(_moving_square_video(tmp_path / "b"), cfg, str(tmp_path / "x.csv"))
    cfg["detect"]["mmdet"]["config"] = str(tmp_path / "nope.py")
    with pytest.raises(VadError, match="detect.mmdet.config: no file at .*nope.py"):
        Det.detect_video(_moving_square_video(tmp_path / "c"), cfg, str(tmp_path / "x.csv"))
