"""Pictures of the top anomalies (vad_pipeline.pictures) and reading only the frames they show."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vad_pipeline import datasets as D
from vad_pipeline import pictures as Pic
from vad_pipeline.evaluate import top_anomalies


def test_strip_frames_centred_on_the_peak_and_inside_the_video():
    assert Pic.strip_frames(10, 14, 12, 100, 5, 1) == [10, 11, 12, 13, 14]
    assert Pic.strip_frames(10, 30, 20, 100, 5, 0) == [10, 15, 20, 25, 30]   # spread over the segment
    assert Pic.strip_frames(0, 3, 1, 100, 5, 2) == [0, 2, 4, 6, 8]           # shifted at the start
    assert Pic.strip_frames(95, 99, 99, 100, 5, 1) == [95, 96, 97, 98, 99]   # ... and at the end
    assert Pic.strip_frames(0, 1, 0, 3, 5, 1) == [0, 1, 2]                   # short video


def test_read_frames_decodes_a_video_file_only_up_to_the_last_frame_asked(tiny_demo, tmp_path, capture_calls):
    from vad_pipeline.datasets import video as V
    from vad_pipeline.datasets.export import write_video_file

    demo = D.get_video(tiny_demo, "test", "01")
    write_video_file(tmp_path / "01.avi", D.iter_frames(demo), 10)   # FFV1: lossless
    vid = V.video_file("01", "test", tmp_path / "01.avi")
    capture_calls.update(dict.fromkeys(capture_calls, 0))   # its header's read not counted
    got = D.read_frames(vid, [7, 3])
    assert sorted(got) == [3, 7] and capture_calls == {"open": 1, "grab": 6, "read": 2}   # 0..7 decoded, 2 converted
    ref = dict(enumerate(D.iter_frames(demo)))
    np.testing.assert_array_equal(got[7], ref[7])
    small = V.working(vid, 48)   # gray and at a working size: as iter_frames gives them
    ref = dict(enumerate(D.iter_frames(small, gray=True)))
    for t, img in D.read_frames(small, [0, 5, 9], gray=True).items():
        np.testing.assert_array_equal(img, ref[t])
    with pytest.raises(Exception, match="asked for"):
        D.read_frames(vid, [vid.n_frames])


def _fake_run(cfg):
    """Frame scores with a bump in each test video and one object per frame around it."""
    rows, objs = [], []
    for name in D.video_names(cfg, "test"):
        n = D.get_video(cfg, "test", name).n_frames
        s = np.exp(-0.5 * ((np.arange(n) - n // 2) / 3.0) ** 2)
        rows.append(pd.DataFrame({"video": name, "frame": np.arange(n), "score": s, "label": -1,
                                  "excluded": np.arange(n) < 4}))
        objs.append(pd.DataFrame({"video": name, "frame": np.arange(4, n), "x1": 10, "y1": 20, "x2": 40,
                                  "y2": 60, "score": s[4:]}))
    return pd.concat(rows, ignore_index=True), pd.concat(objs, ignore_index=True)


def test_pictures_of_own_footage_without_labels(tiny_demo, tmp_path):
    """The videos layout (video files and frame folders), no labels.csv: a picture per segment
    and a contact sheet, and no ground truth drawn."""
    from vad_pipeline.datasets.export import export

    train = [D.get_video(tiny_demo, "train", n) for n in D.video_names(tiny_demo, "train")]
    test = [D.get_video(tiny_demo, "test", n) for n in D.video_names(tiny_demo, "test")]
    labels = D.frame_labels(tiny_demo, test)
    section = export(train, test, labels, {}, "videos", tmp_path / "mycam")
    (tmp_path / "mycam" / "labels.csv").unlink()
    cfg = {**tiny_demo, "name": "mycam", "dataset": {**section, "labelled": True},
           "report": {**tiny_demo["report"], "pictures": 8, "strip": 3, "strip_step": 0}}
    frames, objects = _fake_run(cfg)
    top = top_anomalies(frames, {}, cfg["report"])
    assert len(top) == 2 and top["label_overlap"].isna().all()
    paths = Pic.pictures(top, objects, frames, cfg, str(tmp_path / "pics"))
    names = sorted(p.name for p in paths)
    assert names == sorted([Pic.file_name(r) for r in top.itertuples()] + [Pic.CONTACT_SHEET])
    for p in paths:
        assert p.read_bytes()[:4] == b"\x89PNG"


def test_pictures_count_is_capped_by_config(tiny_demo, tmp_path):
    """The labelled demo (pixel masks outlined): only report.pictures segments are drawn."""
    cfg = {**tiny_demo, "report": {**tiny_demo["report"], "pictures": 1, "strip": 2, "strip_step": 1}}
    frames, objects = _fake_run(cfg)
    frames["label"] = 0
    top = top_anomalies(frames, {}, cfg["report"])
    paths = Pic.pictures(top, objects, frames, cfg, str(tmp_path / "pics"))
    assert [p.name for p in paths] == [Pic.file_name(next(top.itertuples())), Pic.CONTACT_SHEET]


def test_pictures_draw_the_cell_terms_window(tiny_demo, tmp_path, monkeypatch):
    """Given the cell stage's frame table, every shown frame gets its highest S_c window beside
    its top object (the contact sheet too); without it, none."""
    cfg = {**tiny_demo, "report": {**tiny_demo["report"], "pictures": 1, "strip": 3, "strip_step": 1}}
    frames, objects = _fake_run(cfg)
    top = top_anomalies(frames, {}, cfg["report"])
    cells = frames[["video", "frame"]].assign(s_c=1.0, x1=3, y1=4, x2=13, y2=24)
    drawn = []
    show = Pic._show
    monkeypatch.setattr(Pic, "_show", lambda *a, **k: (drawn.append(a[7] if len(a) > 7 else None), show(*a, **k)))
    Pic.pictures(top, objects, frames, cfg, str(tmp_path / "with"), cells)
    assert len(drawn) == 3 + 1 and all(d == ((3, 4, 13, 24), 1.0) for d in drawn)   # strip + contact sheet
    drawn.clear()
    Pic.pictures(top, objects, frames, cfg, str(tmp_path / "without"))
    assert drawn == [None] * 4


def _rgb(fig) -> np.ndarray:
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(int)


def _is(rgb: np.ndarray, colour: tuple[int, int, int], tol: int = 60) -> np.ndarray:
    return (np.abs(rgb - np.array(colour)) <= tol).all(axis=-1)


def test_the_drawn_box_lies_where_the_object_is():
    """The object's box is drawn red on its four edges, the window's cyan on its own, and the
    inside of the box keeps the frame's pixels (a box drawn elsewhere, or not at all, fails)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img = np.full((120, 160), 128, np.uint8)
    fig, ax = plt.subplots(figsize=(4, 3), dpi=100)
    obj, cell = ((40, 30, 100, 90), 2.5), ((120, 10, 150, 40), 1.0)
    Pic._show(ax, img, obj, None, "t", False, False, cell)
    rgb = _rgb(fig)
    red, cyan = _is(rgb, (255, 0, 0)), _is(rgb, (0, 255, 255))
    height = rgb.shape[0]

    def at(x: float, y: float) -> tuple[int, int]:   # image pixel -> (row, col) of the rendered figure
        dx, dy = ax.transData.transform((x - 0.5, y - 0.5))
        return int(round(height - dy)), int(round(dx))

    def near(mask: np.ndarray, x: float, y: float, r: int = 2) -> bool:
        row, col = at(x, y)
        return bool(mask[row - r:row + r + 1, col - r:col + r + 1].any())

    x1, y1, x2, y2 = obj[0]
    for x, y in (((x1 + x2) / 2, y1), ((x1 + x2) / 2, y2), (x1, (y1 + y2) / 2), (x2, (y1 + y2) / 2)):
        assert near(red, x, y), (x, y)                      # each edge of the object's box
    assert not near(red, (x1 + x2) / 2, (y1 + y2) / 2, 4)    # its inside is the frame
    assert not near(red, 10, 110, 4) and not near(cyan, 10, 110, 4)   # far from both: the frame
    cx1, cy1, cx2, cy2 = cell[0]
    assert near(cyan, cx1, (cy1 + cy2) / 2) and near(cyan, (cx1 + cx2) / 2, cy2)
    assert not near(cyan, x1, (y1 + y2) / 2)
    plt.close(fig)


def test_contact_sheet_holds_a_red_box_only_where_an_object_is(tiny_demo, tmp_path):
    import cv2

    cfg = {**tiny_demo, "report": {**tiny_demo["report"], "pictures": 1, "strip": 2, "strip_step": 1}}
    frames, objects = _fake_run(cfg)
    top = top_anomalies(frames, {}, cfg["report"])
    Pic.pictures(top, objects, frames, cfg, str(tmp_path / "with"))
    Pic.pictures(top, objects.iloc[:0], frames, cfg, str(tmp_path / "without"))

    def red_pixels(path) -> int:
        bgr = cv2.imread(str(path)).astype(int)
        return int(_is(bgr[..., ::-1], (255, 0, 0), 40).sum())

    with_box = red_pixels(tmp_path / "with" / Pic.CONTACT_SHEET)
    assert with_box > 100 and red_pixels(tmp_path / "without" / Pic.CONTACT_SHEET) < with_box / 10
