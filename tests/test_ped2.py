"""Checks on the real UCSD Ped2 dataset (skipped when it is not there; set VAD_PED2_ROOT)."""

from __future__ import annotations

import copy

import pytest

from tests.conftest import PED2_ROOT
from vad_pipeline import config as C
from vad_pipeline.datasets import frame_labels, get_video, video_names

pytestmark = pytest.mark.skipif(
    not (PED2_ROOT / "ped2.mat").is_file(),
    reason=f"real UCSD Ped2 not found at {PED2_ROOT} (set VAD_PED2_ROOT to run these tests)",
)


@pytest.fixture()
def ped2(base_config) -> dict:
    cfg = copy.deepcopy(base_config)
    cfg["datasets"]["ped2"]["root"] = str(PED2_ROOT)
    return C.resolve(cfg, "ped2")


def test_ped2_videos_and_ground_truth_are_read_as_published(ped2):
    # 05 and 13 are held out for the label-free validation (no training video): 14 + 2
    assert len(video_names(ped2, "train")) == 14 and video_names(ped2, "holdout") == ["05", "13"]
    names = video_names(ped2, "test")
    assert names == [f"{i:02d}" for i in range(1, 13)]
    videos = [get_video(ped2, "test", n) for n in names]
    assert sum(v.n_frames for v in videos) == 2010
    labels = frame_labels(ped2, videos)
    # UCSDped2.m: video 1 is abnormal on frames 61..180 (1-based), video 3 on 1..146 of 150
    assert labels["01"][:60].sum() == 0 and labels["01"][60:].all()
    assert labels["03"][:146].all() and not labels["03"][146:].any()
    assert sum(int(v.sum()) for v in labels.values()) == 1648  # the sum of the 12 ranges in UCSDped2.m


def test_official_ucsd_m_file_agrees_with_ped2_mat(ped2):
    from vad_pipeline.datasets.groundtruth import ranges_from_mat, ranges_from_ucsd_m

    from_m = ranges_from_ucsd_m(PED2_ROOT / "UCSDped2.m")
    from_mat = ranges_from_mat(PED2_ROOT / "ped2.mat", 12)
    assert [r.tolist() for r in from_m] == [r.tolist() for r in from_mat]


def test_ped2_gt_summary(ped2):
    from vad_pipeline.datasets import gt_summary

    videos = [get_video(ped2, "test", n) for n in video_names(ped2, "test")]
    s = gt_summary(ped2, videos, frame_labels(ped2, videos))
    assert (s["videos"], s["frames"], s["abnormal_frames"]) == (12, 2010, 1648)
    assert {(v["height"], v["width"], v["fps"]) for v in s["per_video"].values()} == {(240, 360, 10)}
