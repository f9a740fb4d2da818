"""Spatio-temporal cubes (vad_pipeline.stc)."""

from __future__ import annotations

import copy

import cv2
import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from tests.conftest import build_stcs
from vad_pipeline import stc as S
from vad_pipeline.cubes import STCDataset
from vad_pipeline.datasets import get_video, read_frame
from vad_pipeline.detect import detect_video
from vad_pipeline.flow import flow_video, quantize
from vad_pipeline.io import VadError

# --------------------------------------------------------------------------- crop_resize


def _ramp(h=40, w=60) -> np.ndarray:
    """Every pixel holds a unique value: 1000 * y + x."""
    y, x = np.mgrid[0:h, 0:w]
    return (1000 * y + x).astype(np.float32)


def test_crop_resize_exact_region():
    img = _ramp()
    crop = S.crop_resize(img, (10, 5, 18, 13), 8)  # an 8x8 box resized to 8x8: a plain crop
    np.testing.assert_array_equal(crop, img[5:13, 10:18])


def test_crop_resize_resizes_the_box_only():
    img = np.zeros((40, 60, 3), np.uint8)
    img[10:20, 30:50] = (200, 100, 50)
    crop = S.crop_resize(img, (30, 10, 50, 20), 16)
    assert crop.shape == (16, 16, 3) and crop.dtype == np.uint8
    assert (crop == (200, 100, 50)).all()
    gray = S.crop_resize(img[..., 0], (30, 10, 50, 20), 12)
    assert gray.shape == (12, 12) and (gray == 200).all()


def test_crop_resize_clips_at_the_border():
    img = _ramp()
    # a box partly outside gives the part that is inside
    crop = S.crop_resize(img, (56, 36, 64, 44), 4)
    np.testing.assert_array_equal(crop, img[36:40, 56:60])
    crop = S.crop_resize(img, (-4, -4, 4, 4), 4)
    np.testing.assert_array_equal(crop, img[0:4, 0:4])


@pytest.mark.parametrize("box, pixel", [
    ((100, 100, 120, 120), (39, 59)),   # wholly beyond the bottom-right: the corner pixel
    ((-20, -20, -10, -10), (0, 0)),     # wholly before the top-left
    ((7, 9, 7, 9), (9, 7)),             # empty box: one pixel at its corner
])
def test_crop_resize_at_least_one_pixel(box, pixel):
    img = _ramp()
    crop = S.crop_resize(img, box, 5)
    assert crop.shape == (5, 5)
    assert (crop == img[pixel]).all()


def test_crop_resize_scale_picks_the_same_region():
    small = _ramp(20, 30)
    full = np.kron(small, np.ones((2, 2), np.float32))  # the same image at twice the resolution
    box = (4, 6, 20, 22)                                 # 16x16 in full pixels, 8x8 in small ones
    np.testing.assert_array_equal(S.crop_resize(full, box, 16), full[6:22, 4:20])
    np.testing.assert_array_equal(S.crop_resize(small, box, 8, scale=2), small[3:11, 2:10])
    np.testing.assert_array_equal(
        np.kron(S.crop_resize(small, box, 8, scale=2), np.ones((2, 2))), S.crop_resize(full, box, 16)
    )
    # odd coordinates round outwards, so the downscaled crop covers the whole box
    np.testing.assert_array_equal(S.crop_resize(small, (3, 5, 13, 17), 8, scale=2)[0, 0], small[2, 1])
    assert S.crop_resize(small, (3, 5, 13, 17), 1, scale=2).shape == (1, 1)


def test_crop_resize_flow_field():
    field = np.zeros((20, 30, 2), np.float32)
    field[..., 0], field[..., 1] = 3.0, -1.5
    crop = S.crop_resize(field, (4, 4, 20, 20), 8, scale=2)
    assert crop.shape == (8, 8, 2)
    np.testing.assert_allclose(crop[..., 0], 3.0)
    np.testing.assert_allclose(crop[..., 1], -1.5)


# --------------------------------------------------------------------------- build_split


def test_build_split_shapes_and_index(tiny_demo, tmp_path):
    cfg = tiny_demo
    out, videos, boxes, _ = build_stcs(cfg, tmp_path, "test")
    p = cfg["stc"]
    t, s = p["t_past"], p["size"]
    with h5py.File(out, "r") as f:
        n = f["app"].shape[0]
        assert n > 0
        assert f["app"].shape == (n, t + 1, 3, s, s) and f["app"].dtype == np.uint8
        assert f["flow"].shape == (n, t, 2, s, s) and f["flow"].dtype == np.float16
        assert f["video"].shape == (n,) and f["video"].dtype == np.int32
        assert f["frame"].shape == (n,) and f["frame"].dtype == np.int32
        assert f["box"].shape == (n, 4) and f["box"].dtype == np.int32
        assert S.video_list(f) == [v.name for v in videos]
        assert f.attrs["size"] == s and f.attrs["t_past"] == t and f.attrs["color"] == "rgb"
    idx = S.read_index(out)
    assert list(idx.columns) == S.INDEX and len(idx) == n
    # one sample per detection at a frame with a full past (frame >= t_past), nothing else
    det = pd.concat([pd.read_csv(b).assign(video=v.name) for v, b in zip(videos, boxes, strict=True)])
    det = det[det["frame"] >= t]
    key = ["video", "frame", "x1", "y1", "x2", "y2"]
    ours = idx.sort_values(key).reset_index(drop=True)[key]
    theirs = det.sort_values(key).reset_index(drop=True)[key]
    pd.testing.assert_frame_equal(ours, theirs, check_dtype=False)
    assert idx["video"].tolist()[0] == "01"  # names kept as strings


def test_cube_content_is_the_crops_of_the_past_frames(tiny_demo, tmp_path):
    cfg = tiny_demo
    out, videos, _, flows = build_stcs(cfg, tmp_path, "train")
    s, t = cfg["stc"]["size"], cfg["stc"]["t_past"]
    idx = S.read_index(out)
    with h5py.File(out, "r") as f, h5py.File(flows[1], "r") as ff:
        rows = np.flatnonzero(idx["video"] == "02")
        i = int(rows[len(rows) // 2])
        row = idx.iloc[i]
        box = row[["x1", "y1", "x2", "y2"]].to_numpy(int)
        frame = int(row["frame"])
        video = videos[1]
        for k in range(t + 1):  # app[k] is frame (frame - t + k), RGB, channels first
            rgb = cv2.cvtColor(read_frame(video.frames[frame - t + k]), cv2.COLOR_BGR2RGB)
            np.testing.assert_array_equal(f["app"][i, k], S.crop_resize(rgb, box, s).transpose(2, 0, 1))
        for k in range(t):      # flow[k] is the flow ending at frame (frame - t + 1 + k)
            fl = ff["flow"][frame - t + 1 + k].astype(np.float32)
            quantum = float(ff.attrs["quantum"])  # crops are rounded like the stored flow
            expected = quantize(S.crop_resize(fl, box, s).transpose(2, 0, 1), quantum)
            np.testing.assert_array_equal(f["flow"][i, k], expected)


def test_gray_cubes(tiny_demo, tmp_path):
    cfg = copy.deepcopy(tiny_demo)
    cfg["stc"].update(color="gray", compression=None, t_past=2)
    out, _, boxes, _ = build_stcs(cfg, tmp_path, "train")
    with h5py.File(out, "r") as f:
        assert f["app"].shape[1:] == (3, 1, 16, 16)
        assert f["flow"].shape[1:] == (2, 2, 16, 16)
        assert f.attrs["color"] == "gray"
    assert S.read_index(out)["frame"].min() == 2


def test_flow_of_another_length_raises(tiny_demo, tmp_path):
    cfg = tiny_demo
    videos = [get_video(cfg, "train", "01")]
    box, fl = str(tmp_path / "01.csv"), str(tmp_path / "01.h5")
    detect_video(videos[0], cfg, box)
    with h5py.File(fl, "w") as f:
        f.create_dataset("flow", data=np.zeros((5, 96, 128, 2), np.float16))
        f.attrs["downscale"] = 1
    with pytest.raises(VadError, match="01.h5"):
        S.build_split(videos, [box], [fl], cfg, str(tmp_path / "stc.h5"))
    assert not (tmp_path / "stc.h5").exists()


def test_no_cube_raises(tiny_demo, tmp_path):
    cfg = tiny_demo
    video = get_video(cfg, "train", "01")
    box, fl = str(tmp_path / "01.csv"), str(tmp_path / "01.h5")
    pd.DataFrame([(1, 0, 0, 10, 10, 1.0, "motion")],  # only a detection before t_past
                 columns=["frame", "x1", "y1", "x2", "y2", "score", "class"]).to_csv(box, index=False)
    flow_video(video, cfg, fl)
    with pytest.raises(VadError, match="no cube"):
        S.build_split([video], [box], [fl], cfg, str(tmp_path / "stc.h5"))
    assert not (tmp_path / "stc.h5").exists()


# --------------------------------------------------------------------------- STCDataset


def test_dataset_items(tiny_demo, tmp_path):
    out, _, _, _ = build_stcs(tiny_demo, tmp_path, "train")
    ds = STCDataset(out, flow_scale=5.0)
    with h5py.File(out, "r") as f:
        n = f["app"].shape[0]
        raw_app, raw_flow = f["app"][n - 1], f["flow"][n - 1]
    assert len(ds) == n
    app, flow = ds[n - 1]
    assert app.dtype == torch.float32 and flow.dtype == torch.float32
    assert tuple(app.shape) == raw_app.shape and tuple(flow.shape) == raw_flow.shape
    assert app.min() >= -1.0 and app.max() <= 1.0
    torch.testing.assert_close(app, torch.from_numpy(raw_app.astype(np.float32)) / 127.5 - 1)
    torch.testing.assert_close(flow, torch.from_numpy(raw_flow.astype(np.float32)) / 5.0)
    for i in range(0, n, max(1, n // 10)):
        a, _ = ds[i]
        assert -1.0 <= float(a.min()) and float(a.max()) <= 1.0


def test_blocks_cover_every_sample_once(tiny_demo, tmp_path):
    out, _, _, _ = build_stcs(tiny_demo, tmp_path, "train")
    ds = STCDataset(out)
    n = len(ds)
    block = 50
    assert n > 2 * block
    seen, sizes = [], []
    for idx, app, flow in ds.blocks(block, np.random.default_rng(0)):
        assert len(idx) == len(app) == len(flow) <= block
        sizes.append(len(idx))
        seen.extend(idx.tolist())
        for k in (0, len(idx) - 1):  # each row is the sample its index names
            a, f = ds[int(idx[k])]
            torch.testing.assert_close(app[k], a)
            torch.testing.assert_close(flow[k], f)
    assert sorted(seen) == list(range(n))
    assert seen != list(range(n))  # shuffled
    assert len(sizes) == -(-n // block)
    # without an rng: in order
    plain = np.concatenate([idx for idx, _, _ in ds.blocks(block)])
    np.testing.assert_array_equal(plain, np.arange(n))
    # the order depends on the rng's seed only
    again = np.concatenate([idx for idx, _, _ in ds.blocks(block, np.random.default_rng(0))])
    np.testing.assert_array_equal(again, seen)


def test_dataset_rejects_other_files(tmp_path):
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("flow", data=np.zeros((2, 3)))
    with pytest.raises(VadError, match="not an STC file"):
        STCDataset(str(path))


@pytest.mark.parametrize("box, expected", [
    ((30, 20, 40, 60), (15, 20, 55, 60)),        # tall box: widened around its centre
    ((40, 30, 80, 40), (40, 15, 80, 55)),        # wide box: heightened around its centre
    ((0, 0, 10, 40), (0, 0, 40, 40)),            # at the left/top border: moved inside
    ((90, 10, 100, 30), (80, 10, 100, 30)),      # at the right border
    ((0, 0, 100, 80), (10, 0, 90, 80)),          # longer than the frame is high: capped
])
def test_square_box_keeps_the_aspect_ratio_inside_the_frame(box, expected):
    sq = S.square_box(box, width=100, height=80)
    assert sq == expected
    assert sq[2] - sq[0] == sq[3] - sq[1]
    assert 0 <= sq[0] and 0 <= sq[1] and sq[2] <= 100 and sq[3] <= 80


# --------------------------------------------------------------------------- one file per video, gathered


def _gathered(cfg: dict, tmp_path, split: str, videos, boxes, flows) -> str:
    """What the workflow builds: one part per video (stc_video), then the split's file (stc)."""
    parts = []
    for v, b, f in zip(videos, boxes, flows):
        parts.append(str(tmp_path / "stc" / split / f"{v.name}.h5"))
        S.build_split([v], [b], [f], cfg, parts[-1], part=True)
    out = str(tmp_path / "stc" / f"{split}.h5")
    S.gather_split(parts, out, split)
    return out


def test_gathered_split_holds_the_cubes_index_and_hash_of_the_split_built_whole(tiny_demo, tmp_path):
    from vad_pipeline import train as T

    whole, videos, boxes, flows = build_stcs(tiny_demo, tmp_path / "whole", "train")
    out = _gathered(tiny_demo, tmp_path / "parts", "train", videos, boxes, flows)
    with h5py.File(whole, "r") as a, h5py.File(out, "r") as b:
        assert b["app"].is_virtual and b["flow"].is_virtual   # no cube copied
        for k in ("app", "flow", "video", "frame", "box"):
            assert a[k].dtype == b[k].dtype
            np.testing.assert_array_equal(a[k][:], b[k][:])
        assert S.video_list(a) == S.video_list(b) == [v.name for v in videos]
        assert dict(a.attrs) == dict(b.attrs)   # size, t_past, color and content_sha256
    pd.testing.assert_frame_equal(S.read_index(whole), S.read_index(out))
    assert T.data_fingerprint(whole) == T.data_fingerprint(out)   # a checkpoint resumes on either
    assert T.chunk_rows(out) == tiny_demo["stc"]["chunk"]
    # readers: the model's samples and blocks are the same
    da, db = STCDataset(whole, 5.0), STCDataset(out, 5.0)
    for (ia, aa, fa), (ib, ab, fb) in zip(da.blocks(50, np.random.default_rng(0)), db.blocks(50, np.random.default_rng(0))):
        assert np.array_equal(ia, ib) and torch.equal(aa, ab) and torch.equal(fa, fb)


def test_gathered_split_moves_with_its_folder_and_refuses_a_missing_part(tiny_demo, tmp_path):
    import shutil

    _, videos, boxes, flows = build_stcs(tiny_demo, tmp_path / "whole", "test")
    out = _gathered(tiny_demo, tmp_path / "a", "test", videos, boxes, flows)
    with h5py.File(out, "r") as f:
        app = f["app"][:]
    shutil.move(tmp_path / "a", tmp_path / "b")   # results/ moved: the parts are found beside it
    moved = str(tmp_path / "b" / "stc" / "test.h5")
    with h5py.File(moved, "r") as f:
        np.testing.assert_array_equal(f["app"][:], app)
    assert len(STCDataset(moved)) == len(app)
    (tmp_path / "b" / "stc" / "test" / f"{videos[0].name}.h5").unlink()   # HDF5 would read zeros there
    with pytest.raises(VadError, match="not there.*stc_video"):
        STCDataset(moved)


def test_gathered_split_without_cubes(tiny_demo, tmp_path, caplog):
    """Parts without a cube (a quiet video) are valid; a test split of them is an empty file with
    a warning, a training split an error that leaves no file."""
    from vad_pipeline.infer import infer

    def empty(split: str) -> str:
        videos = [get_video(tiny_demo, split, n) for n in ("01", "02")]
        boxes, flows = [], []
        for v in videos:
            boxes.append(str(tmp_path / split / f"{v.name}.csv"))
            flows.append(str(tmp_path / split / f"{v.name}.h5"))
            (tmp_path / split).mkdir(exist_ok=True)
            pd.DataFrame(columns=["frame", "x1", "y1", "x2", "y2", "score", "class"]).to_csv(boxes[-1], index=False)
            flow_video(v, tiny_demo, flows[-1])
        return _gathered(tiny_demo, tmp_path, split, videos, boxes, flows)

    with caplog.at_level("WARNING"):
        out = empty("test")
    assert "no object was detected in the test split" in caplog.text
    with h5py.File(out, "r") as f:
        s, t = tiny_demo["stc"]["size"], tiny_demo["stc"]["t_past"]
        assert f["app"].shape == (0, t + 1, 3, s, s) and f["flow"].shape == (0, t, 2, s, s)
        assert S.video_list(f) == ["01", "02"]
    infer(str(tmp_path / "no_model.pt"), out, str(tmp_path / "test.csv"), tiny_demo)
    assert pd.read_csv(tmp_path / "test.csv").empty
    with pytest.raises(VadError, match="no cube could be built.*nothing to train on"):
        empty("train")
    assert not (tmp_path / "stc" / "train.h5").exists()
