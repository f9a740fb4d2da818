"""RBDC, TBDC and pixel AUC (vad_pipeline.localisation) on examples worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vad_pipeline import localisation as Loc

P = {"overlap": 0.1, "track_fraction": 0.1, "max_fpr": 1.0, "min_region_area": 0}


def two_frames():
    """Two 10x10 frames of one video.

    frame 0: mask rows 0-3, cols 0-3 (region r0, box (0,0,4,4)).
             boxes A (0,0,4,4) score .9 (IoU 1 with r0: detects it), B (6,6,10,10) .5 (no overlap: FP)
    frame 1: mask rows 0-3, cols 1-4 (r1, box (1,0,5,4); shares pixels with r0: same track) and
             rows 8-9, cols 8-9 (r2, box (8,8,10,10): a new track).
             boxes C (3,0,7,4) .4 (IoU with r1: 8 / (16 + 16 - 8) = 1/3 >= 0.1: detects r1),
                   D (0,6,4,10) .3 (no overlap: FP). r2 is never detected.
    """
    masks = np.zeros((2, 10, 10), bool)
    masks[0, 0:4, 0:4] = True
    masks[1, 0:4, 1:5] = True
    masks[1, 8:10, 8:10] = True
    objects = pd.DataFrame({
        "video": "01", "frame": [0, 0, 1, 1],
        "x1": [0, 6, 3, 0], "y1": [0, 6, 0, 6], "x2": [4, 10, 7, 4], "y2": [4, 10, 4, 10],
        "score": [0.9, 0.5, 0.4, 0.3]})
    frames = pd.DataFrame({"video": "01", "frame": [0, 1], "excluded": False})
    return objects, frames, {"01": masks}


def test_iou_exclusive_ends():
    assert Loc.iou([[0, 0, 4, 4]], [[0, 0, 4, 4]])[0, 0] == 1.0
    assert Loc.iou([[3, 0, 7, 4]], [[1, 0, 5, 4]])[0, 0] == pytest.approx(1 / 3)
    assert Loc.iou([[0, 0, 4, 4]], [[4, 0, 8, 4]])[0, 0] == 0.0  # touching, no shared pixel


def test_curves_hand_computed():
    # thresholds inf .9 .5 .4 .3; false positives (B .5, D .3): 0 0 1 1 2 over 2 frames;
    # regions detected (r0 at .9, r1 at .4, r2 never) of 3; tracks {r0, r1} (detected once one of
    # its 2 regions is: at .9) and {r2} (never) of 2
    objects, frames, masks = two_frames()
    out, c = Loc.localise(objects, frames, masks, P)
    np.testing.assert_allclose(c["threshold"], [np.inf, 0.9, 0.5, 0.4, 0.3])
    np.testing.assert_allclose(c["fpr"], [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(c["rbdc"], [0, 1 / 3, 1 / 3, 2 / 3, 2 / 3])
    np.testing.assert_allclose(c["tbdc"], [0, 0.5, 0.5, 0.5, 0.5])
    assert (out["n_frames"], out["n_regions"], out["n_tracks"], out["n_detections"]) == (2, 3, 2, 4)


def test_rbdc_tbdc_hand_computed():
    objects, frames, masks = two_frames()
    out, _ = Loc.localise(objects, frames, masks, P)
    # RBDC: 1/3 from fpr 0 to .5 (area 1/6), then 2/3 from .5 to 1 (area 1/3): 1/2
    assert out["rbdc"] == pytest.approx(0.5, abs=1e-12)
    # TBDC: 1/2 from fpr 0 to 1: 1/2
    assert out["tbdc"] == pytest.approx(0.5, abs=1e-12)
    # up to 0.5 false positives per frame: RBDC (1/3 * 0.5) / 0.5 = 1/3
    out, _ = Loc.localise(objects, frames, masks, {**P, "max_fpr": 0.5})
    assert out["rbdc"] == pytest.approx(1 / 3, abs=1e-12)
    # alpha 0.6: track {r0, r1} needs both regions, detected from .4 (fpr .5): TBDC (1 - .5) * 1/2
    out, _ = Loc.localise(objects, frames, masks, {**P, "track_fraction": 0.6})
    assert out["tbdc"] == pytest.approx(0.25, abs=1e-12)
    # overlap 0.5: C no longer detects r1 (IoU 1/3) and is a false positive: fp 0 0 1 2 3
    # (fpr 0 0 .5 1 1.5), RBDC 0 1/3 1/3 1/3 1/3: area 1/3
    out, _ = Loc.localise(objects, frames, masks, {**P, "overlap": 0.5})
    assert out["rbdc"] == pytest.approx(1 / 3, abs=1e-12)


def test_pixel_auc_hand_computed():
    # pixel scores (uncovered: lowest object score - 1 = -0.7):
    #   positives: 16 at .9 (r0 under A), 8 at .4 (r1 under C), 8 + 4 uncovered (rest of r1, r2)
    #   negatives: 16 at .5 (B), 8 at .4 (C outside r1), 16 at .3 (D), 68 + 56 uncovered
    # pairs won: 16 * 164 + 8 * (16 + 124 + 8 / 2) + 12 * 124 / 2 = 4520 of 36 * 164 = 5904
    objects, frames, masks = two_frames()
    out, _ = Loc.localise(objects, frames, masks, P)
    assert out["pixel_auc"] == pytest.approx(4520 / 5904, abs=1e-12)


def test_perfect_detector_scores_one():
    masks = np.zeros((3, 8, 8), bool)
    masks[:, 2:5, 2:5] = True
    objects = pd.DataFrame({"video": "v", "frame": [0, 1, 2], "x1": 2, "y1": 2, "x2": 5, "y2": 5,
                            "score": [3.0, 2.0, 1.0]})
    frames = pd.DataFrame({"video": "v", "frame": [0, 1, 2], "excluded": False})
    out, _ = Loc.localise(objects, frames, {"v": masks}, P)
    assert out["rbdc"] == pytest.approx(1.0) and out["tbdc"] == pytest.approx(1.0)
    assert out["pixel_auc"] == pytest.approx(1.0) and out["n_tracks"] == 1


def test_excluded_frames_and_videos_without_masks_are_left_out():
    objects, frames, masks = two_frames()
    frames = pd.concat([frames.assign(excluded=[True, False]),
                        pd.DataFrame({"video": "02", "frame": [0], "excluded": False})])
    out, c = Loc.localise(objects, frames, {**masks, "02": None}, P)
    # frame 1 only: r1 (detected by C at .4), r2 (never); D is the only false positive
    assert (out["n_frames"], out["n_regions"], out["n_tracks"]) == (1, 2, 2)
    np.testing.assert_allclose(c["fpr"], [0, 0, 1])
    np.testing.assert_allclose(c["rbdc"], [0, 0.5, 0.5])


def test_area_to_stops_at_max_fpr_and_stays_flat_to_it():
    # (0,0) - (.5,.5) - (2,1): the last point within fpr 1 is (.5,.5), flat from there to 1
    area = Loc.area_to(np.array([0, 0.5, 2]), np.array([0, 0.5, 1]), 1.0)
    assert area == pytest.approx(0.5 * 0.5 * 0.5 + 0.5 * 0.5, abs=1e-12)
    # ending below max_fpr: flat from the last point
    assert Loc.area_to(np.array([0, 0, 0.5]), np.array([0, 1, 1]), 2.0) == pytest.approx(1.0, abs=1e-12)


def test_mask_fragments_below_min_region_area_are_not_regions():
    # frame 1's r2 (4 px) is a fragment at min_region_area 5: regions r0, r1 in one track; the
    # pixel AUC still counts its pixels
    objects, frames, masks = two_frames()
    out, c = Loc.localise(objects, frames, masks, {**P, "min_region_area": 5})
    assert (out["n_regions"], out["n_tracks"]) == (2, 1)
    # rates 0 1/2 1/2 1 1 at fpr 0 0 .5 .5 1: area 1/2 * 1/2 + 1 * 1/2 = 3/4
    np.testing.assert_allclose(c["rbdc"], [0, 0.5, 0.5, 1, 1])
    assert out["rbdc"] == pytest.approx(0.75, abs=1e-12)
    assert out["tbdc"] == pytest.approx(1.0, abs=1e-12)
    assert out["pixel_auc"] == pytest.approx(4520 / 5904, abs=1e-12)


def test_ucsd_layout_with_gt_masks_through_the_cli(base_config, tmp_path):
    """The two frames above as a dataset in the official UCSD layout (Test001/*.tif frames,
    Test001_gt/*.bmp masks, UCSDped.m): `vad-pipeline localise` reads the masks and gives the
    hand-computed figures."""
    import copy
    import json

    import cv2

    from tests.conftest import write_config
    from vad_pipeline import config as C
    from vad_pipeline import datasets as D
    from vad_pipeline.cli import main

    objects, frames, masks = two_frames()
    root = tmp_path / "UCSDped_tiny"
    for folder, n in (("Train/Train001", 1), ("Test/Test001", 2)):
        (root / folder).mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(str(root / folder / f"{i + 1:03d}.tif"), np.full((10, 10), 100, np.uint8))
    (root / "Test" / "Test001_gt").mkdir()
    for i, m in enumerate(masks["01"]):
        cv2.imwrite(str(root / "Test" / "Test001_gt" / f"{i + 1:03d}.bmp"), m.astype(np.uint8) * 255)
    (root / "Test" / "UCSDtiny.m").write_text("TestVideoFile = {};\nTestVideoFile{end+1}.gt_frame = [1:2];\n")
    cfg = copy.deepcopy(base_config)
    cfg["datasets"] = {"tiny": {"layout": "ucsd", "root": str(root), "gt": "Test/UCSDtiny.m"}}
    cfg["localisation"]["min_region_area"] = 0
    write_config(cfg, tmp_path / "config.yaml")
    resolved = C.resolve(cfg, "tiny")
    assert D.has_pixel_masks(resolved) and D.video_names(resolved, "test") == ["Test001"]

    objects.assign(video="Test001").to_csv(tmp_path / "objects.csv", index=False)
    frames.assign(video="Test001").to_csv(tmp_path / "frames.csv", index=False)
    out = tmp_path / "localisation.json"
    rc = main(["localise", "--configfile", str(tmp_path / "config.yaml"), "--dataset", "tiny",
               "--objects", str(tmp_path / "objects.csv"), "--frames", str(tmp_path / "frames.csv"),
               "--out", str(out), "--plot", str(tmp_path / "localisation.png")])
    assert rc == 0
    got = json.loads(out.read_text())
    assert got["rbdc"] == pytest.approx(0.5, abs=1e-12) and got["tbdc"] == pytest.approx(0.5, abs=1e-12)
    assert got["pixel_auc"] == pytest.approx(4520 / 5904, abs=1e-12)
    assert got["protocol"]["overlap"] == 0.1 and "Ramachandra" in got["protocol"]["reference"]
    assert (tmp_path / "localisation.png").read_bytes()[:4] == b"\x89PNG"


def test_which_layouts_have_pixel_masks(tiny_demo, tmp_path):
    from vad_pipeline import datasets as D
    from vad_pipeline.datasets.export import export

    train = [D.get_video(tiny_demo, "train", n) for n in D.video_names(tiny_demo, "train")]
    test = [D.get_video(tiny_demo, "test", n) for n in D.video_names(tiny_demo, "test")]
    labels = D.frame_labels(tiny_demo, test)
    masks = {v.name: D.pixel_masks(tiny_demo, v) for v in test}
    assert D.has_pixel_masks(tiny_demo)
    for layout, expected in (("ucsd", True), ("shanghaitech", True), ("frames", False), ("videos", False)):
        section = export(train, test, labels, masks, layout, tmp_path / layout)
        cfg = {**tiny_demo, "dataset": {**section, "labelled": True}}
        assert D.has_pixel_masks(cfg) is expected, layout
    assert not D.has_pixel_masks({**tiny_demo, "dataset": {**tiny_demo["dataset"], "labelled": False}})
