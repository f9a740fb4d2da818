"""Label-free validation: which videos are held out, the weight grid and its rule, the table's
figures, and the chosen weights applied per camera by the score and frame-score stages."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest

from vad_pipeline import datasets as D
from vad_pipeline import validation as V
from vad_pipeline.datasets.holdout import blocks, evenly, held_out, keys, part_name, split_part
from vad_pipeline.io import VadError


def _cfg(videos=2, least=6):
    return {"validation": {"videos": videos, "min_videos": least}}


def test_held_out_videos_are_evenly_spread_per_camera_and_only_where_a_camera_has_enough():
    cams = {**{f"a_{i:02d}": "a" for i in range(1, 17)}, **{f"b_{i}": "b" for i in range(1, 5)}}
    out = held_out(_cfg(), cams)
    assert out == ["a_05", "a_13"]            # camera b has 4 < 6 training videos: none of it
    assert held_out(_cfg(videos=0), cams) == []
    assert held_out(_cfg(least=4), cams) == ["a_05", "a_13", "b_2", "b_4"]
    assert evenly([str(i) for i in range(10, 0, -1)], 3) == ["2", "6", "9"]   # natural order, middle of each third


def test_held_out_videos_leave_the_training_split_and_form_the_holdout_split(tiny_demo):
    cfg = copy.deepcopy(tiny_demo)
    cfg["demo"]["n_train"] = 6
    train, hold = D.video_names(cfg, "train"), D.video_names(cfg, "holdout")
    assert hold == ["02", "05"] and not set(train) & set(hold) and len(train) == 4
    cfg["validation"]["videos"] = 0
    assert len(D.video_names(cfg, "train")) == 6 and D.video_names(cfg, "holdout") == []


def test_grid_holds_each_ranking_once_with_the_largest_weight_one():
    combos = V.grid([0.0, 0.5, 1.0])
    assert len(combos) == 3 ** 4 - 2 ** 4   # every combination with at least one weight at the top
    assert all(max(w.values()) == 1.0 for w in combos)
    assert V.grid([0, 2]) == V.grid([0, 1])   # scaled to a largest weight of 1


def test_pick_takes_the_best_and_breaks_near_ties_towards_equal_weights():
    eq = dict.fromkeys(V.WEIGHTS, 1.0)
    only_c = {"w_f": 0.0, "w_p": 0.0, "w_m": 0.0, "w_c": 1.0}
    assert V.pick([(eq, 0.90), (only_c, 0.95)], 0.002) == only_c
    assert V.pick([(eq, 0.949), (only_c, 0.95)], 0.002) == eq
    assert V.pick([(only_c, float("nan")), (eq, 0.5)], 0.0) == eq
    with pytest.raises(VadError, match="no weight combination"):
        V.pick([(eq, float("nan"))], 0.0)


def _frames():
    """Two videos: normal frames, a skip segment, guard frames after it."""
    rows = []
    for v, shift in (("a", 0.0), ("b", 0.0)):
        for f in range(30):
            label, kind = (1, "skip") if 10 <= f < 18 else (-1, "") if 18 <= f < 22 else (0, "")
            rows.append({"video": v, "frame": f, "label": label, "kind": kind, "excluded": False,
                         "hit": 5.0 * (label == 1) + 0.01 * f + shift, "guard_high": 9.0 * (label == -1) + 0.01 * f})
    return pd.DataFrame(rows)


def test_kind_auc_compares_the_kinds_frames_with_normal_ones_and_ignores_guard_frames():
    df = _frames()
    aucs = V.kind_aucs(df[df["label"] >= 0], "hit", ["skip", "reverse"])
    assert aucs["skip"] == 1.0 and np.isnan(aucs["reverse"]) and aucs["mean"] == 1.0
    # guard frames scoring highest do not count as normal frames
    assert V.kind_aucs(df[df["label"] >= 0], "guard_high", ["skip"])["skip"] > 0.5


def test_normal_level_spread_grows_with_a_shift_between_videos():
    df = _frames()
    assert V.level_spread(df, "hit") < 0.1
    shifted = df.assign(hit=df["hit"] + np.where(df["video"] == "b", 5.0, 0.0))
    assert V.level_spread(shifted, "hit") > 10


def test_weights_for_reads_the_validation_choice_only_with_auto(tmp_path, tiny_resolved):
    path = tmp_path / "weights.json"
    path.write_text(json.dumps({"default": {"w_f": 0.0, "w_p": 0.0, "w_m": 1.0, "w_c": 1.0},
                                "cameras": {"x": {"w_f": 1.0, "w_p": 0.0, "w_m": 0.0, "w_c": 0.0}}}))
    cfg = copy.deepcopy(tiny_resolved)
    default, cams = V.weights_for(cfg, str(path))
    assert default["w_m"] == 1.0 and cams["x"]["w_f"] == 1.0
    cfg["score"]["weights"] = "fixed"
    assert V.weights_for(cfg, str(path)) == (V.fixed(cfg), {})
    cfg["score"]["weights"] = "auto"
    path.write_text("{}")
    with pytest.raises(VadError, match="weights.json: not a validation's weights file"):
        V.weights_for(cfg, str(path))


def test_fuse_and_frame_scores_apply_each_cameras_chosen_weights(tmp_path, tiny_resolved):
    from vad_pipeline.evaluate import frame_scores
    from vad_pipeline.fusion import fuse

    rng = np.random.default_rng(0)
    idx = lambda v, n: pd.DataFrame({"video": v, "frame": np.arange(n), "x1": 0, "y1": 0, "x2": 4, "y2": 4})  # noqa: E731
    train = pd.concat([idx("t1", 50), idx("t2", 50)]).assign(s_f=rng.normal(size=100), s_p=rng.normal(size=100))
    test = pd.concat([idx("c1", 20), idx("c2", 20)]).assign(s_f=rng.normal(size=40), s_p=rng.normal(size=40))
    motion_tr, motion_te = train.assign(s_m=rng.normal(size=100)), test.assign(s_m=rng.normal(size=40))
    for name, df in (("tr", train), ("te", test), ("mtr", motion_tr), ("mte", motion_te)):
        df.to_csv(tmp_path / f"{name}.csv", index=False)
    cameras = {"t1": "A", "t2": "B", "c1": "A", "c2": "B"}
    weights = tmp_path / "weights.json"
    weights.write_text(json.dumps({"default": {"w_f": 1.0, "w_p": 0.0, "w_m": 0.0, "w_c": 0.0},
                                   "cameras": {"B": {"w_f": 0.0, "w_p": 0.0, "w_m": 1.0, "w_c": 0.5}}}))
    cfg = copy.deepcopy(tiny_resolved)
    out = fuse(str(tmp_path / "tr.csv"), str(tmp_path / "te.csv"), str(tmp_path / "o.csv"), cfg,
               motion=(str(tmp_path / "mtr.csv"), str(tmp_path / "mte.csv")), cameras=cameras, weights=str(weights))
    a, b = out["video"] == "c1", out["video"] == "c2"
    assert np.allclose(out.loc[a, "score"], out.loc[a, "z_f"]) and np.allclose(out.loc[b, "score"], out.loc[b, "z_m"])
    labels = out[["video", "frame"]].assign(label=0)
    cells_train = pd.concat([idx("t1", 50), idx("t2", 50)]).assign(s_c=rng.normal(size=100))
    cells_test = out[["video", "frame", "x1", "y1", "x2", "y2"]].assign(s_c=rng.normal(size=40))
    fr = frame_scores(out, labels, cfg, (cells_train, cells_test), cameras, weights=str(weights))
    fa, fb = fr[fr["video"] == "c1"], fr[fr["video"] == "c2"]
    assert np.allclose(fa["score"], fa["score_f"])                         # camera A: w_c 0
    assert np.allclose(fb["score"], fb["score_m"] + 0.5 * fb["score_c"])   # camera B: its own w_m, w_c


def test_held_out_videos_train_nothing(validation_run):
    import h5py

    from vad_pipeline.stc import video_list

    res = validation_run / "results" / "demo"
    chosen = json.loads((res / "validation" / "weights.json").read_text())
    assert chosen["held_out"] == ["01+120-239", "03+120-239"]      # time blocks: 3 < min_videos videos
    cams = pd.read_csv(res / "cameras" / "train.csv", dtype={"video": str}).set_index("video")
    assert set(cams.index) == {"01+0-119", "02", "03+0-119"}
    assert cams.loc["01+0-119", "frames"] == 120 and cams.loc["02", "frames"] == 240
    assert pd.read_csv(res / "detect" / "train" / "01+0-119.csv")["frame"].max() <= 119
    with h5py.File(res / "stc" / "train.h5", "r") as h:   # "video": each cube's index into video_list
        trained = {video_list(h)[i] for i in np.unique(h["video"][:])}
    assert trained == {"01+0-119", "02", "03+0-119"}
    pieces = pd.read_csv(res / "validation" / "frames.csv", dtype={"video": str})
    assert set(pieces["video"]) == {"01+120-239", "03+120-239"} and pieces.groupby("video")["source_frame"].max().max() <= 119


def test_the_choice_is_no_worse_than_any_single_term_and_detects_the_pseudo_anomalies(validation_run):
    table = pd.read_csv(validation_run / "results" / "demo" / "validation" / "table.csv")
    table = table[table["camera"] == "all"].set_index("term")
    best_single = table.loc[["S_f", "S_p", "S_m", "S_c"], "mean"].max()
    assert table.loc["fused (chosen)", "mean"] >= best_single - 0.002 - 1e-4   # every single term is on the grid
    assert table.loc["fused (chosen)", "mean"] >= table.loc["fused (fixed)", "mean"] - 0.002 - 1e-4
    assert table.loc["fused (chosen)", "mean"] >= 0.7   # measured 0.84 (a random score: 0.5)
    assert (table["abnormal_frames"] > 0).all() and (table["normal_frames"] > 0).all()


def test_test_scores_use_the_chosen_weights_and_auc_json_shows_them(validation_run):
    res = validation_run / "results" / "demo"
    chosen = json.loads((res / "validation" / "weights.json").read_text())["default"]
    objects = pd.read_csv(res / "object_scores.csv")
    expect = chosen["w_f"] * objects["z_f"] + chosen["w_p"] * objects["z_p"] + chosen["w_m"] * objects["z_m"]
    assert np.allclose(objects["score"], expect)
    auc = json.loads((res / "auc.json").read_text())
    assert auc["validation"]["weights_used"] == "chosen" and auc["validation"]["default"] == chosen
    assert "Label-free validation" in (res / "summary.html").read_text()


def test_a_new_weight_rule_reruns_the_choice_and_scoring_but_no_training(validation_run, tmp_path):
    from tests.conftest import copy_run
    from tests.smk import planned_rules

    wd = copy_run(validation_run, tmp_path / "run")
    import yaml

    cfg = yaml.safe_load((wd / "config.yaml").read_text())
    cfg["validation"] = {**cfg.get("validation", {}), "grid": [0.0, 1.0]}
    (wd / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    rules = planned_rules(wd, "results/demo/auc.json")
    assert "validation" in rules and "score" in rules and "frame_scores" in rules
    assert not rules & {"train", "infer", "validation_video", "detect", "flow", "cell_terms", "motion_terms"}


def test_causal_per_video_baseline_reads_only_the_past(tiny_resolved):
    from vad_pipeline.evaluate import causal_baseline, frame_scores

    s = np.r_[np.zeros(50), np.full(10, 8.0), np.zeros(40)]
    base = causal_baseline(s, 20)
    assert base[49] == 0 and base[55] == 0       # a short burst does not lift its own baseline
    changed = s.copy()
    changed[80:] = 100.0                         # a change later in the video ...
    assert np.array_equal(causal_baseline(changed, 20)[:80], base[:80])   # ... leaves every earlier baseline
    cfg = copy.deepcopy(tiny_resolved)
    cfg["frame_scores"].update(per_video="causal", causal_frames=20, exclude_first=0)
    objects = pd.DataFrame({"video": np.repeat(["a", "b"], 30), "frame": np.tile(np.arange(30), 2),
                            "score": np.r_[np.full(30, 1.0), np.full(30, 25.0)], "z_f": 0.0, "z_p": 0.0})
    out = frame_scores(objects, objects[["video", "frame"]].assign(label=0), cfg)
    assert np.allclose(out["score"], 0.0)        # two normal levels 25x apart: both at 0


# --- time blocks: cameras with too few training videos to hold one out whole ---------------------------------


def _block_cfg(videos=2, least=6, block=0.3, min_block=120):
    return {"validation": {"videos": videos, "min_videos": least, "block": block, "min_block": min_block}}


def test_a_small_camera_holds_out_the_last_part_of_its_videos_where_long_enough():
    cams = {**{f"a_{i:02d}": "a" for i in range(1, 17)}, "b_1": "b", "b_2": "b", "c_1": "c"}
    frames = {"b_1": 400, "b_2": 200, "c_1": 1000}
    asked = []

    def n_frames(v):
        asked.append(v)
        return frames[v]

    assert blocks(_block_cfg(), cams, n_frames) == {"b_1": (280, 400), "c_1": (700, 1000)}
    assert sorted(asked) == ["b_1", "b_2", "c_1"]        # camera a holds out whole videos: none of it read
    assert blocks(_block_cfg(min_block=60), cams, frames.get)["b_2"] == (140, 200)
    assert blocks(_block_cfg(block=0), cams, frames.get) == {} == blocks(_block_cfg(videos=0), cams, frames.get)
    assert blocks(_block_cfg(videos=1), {"b_1": "b", "b_2": "b", "b_3": "b"}, lambda v: 400) == {"b_2": (280, 400)}
    # the block settings are tracked only where a camera is that small (elsewhere a change reruns nothing),
    # and a stage given only the other two lists such a split as well
    big = {f"a_{i:02d}": "a" for i in range(1, 17)}
    assert keys(_block_cfg(), big) == ("videos", "min_videos")
    assert blocks({"validation": {"videos": 2, "min_videos": 6}}, big, n_frames) == {}
    assert keys(_block_cfg(), cams) == ("videos", "min_videos", "block", "min_block")
    assert part_name("b_1", 0, 280) == "b_1+0-279" and split_part("b_1+0-279") == ("b_1", (0, 280))
    assert split_part("b_1+280-399") == ("b_1", (280, 400)) and split_part("b+1") == ("b+1", None)


def _videos_dataset(root, lengths: dict[str, int]) -> dict:
    from vad_pipeline import config as C
    from vad_pipeline.datasets.export import write_video_file

    for name, n in lengths.items():
        write_video_file(root / "train" / f"{name}.avi",
                         (np.full((16, 24, 3), t % 250, np.uint8) for t in range(n)), 10)
    (root / "test").mkdir(exist_ok=True)
    write_video_file(root / "test" / "t1.avi", (np.zeros((16, 24, 3), np.uint8) for _ in range(5)), 10)
    cfg = C.resolve({"presets": {"cpu": {}}, "datasets": {"mine": {"layout": "videos", "root": str(root)}}}, "mine")
    cfg["validation"].update(videos=2, block=0.3, min_block=60)
    return cfg


def test_time_blocks_form_the_holdout_split_and_the_training_split_keeps_the_frames_before(tmp_path):
    from vad_pipeline.datasets.cameras import cameras_of

    cfg = _videos_dataset(tmp_path, {"v1": 300, "v2": 100, "v3": 40})
    assert D.video_names(cfg, "holdout") == ["v1+210-299"]            # v2's 30 frames are under min_block
    assert D.video_names(cfg, "train") == ["v1+0-209", "v2", "v3"]
    held, trained = D.get_video(cfg, "holdout", "v1+210-299"), D.get_video(cfg, "train", "v1+0-209")
    assert (held.name, held.n_frames, trained.n_frames) == ("v1+210-299", 90, 210)
    grey = [int(f[0, 0]) for f in D.iter_frames(held, gray=True)]     # frame t is grey level t
    assert abs(grey[0] - 210) <= 2 and abs(grey[-1] - 299 % 250) <= 2 and len(grey) == 90
    assert len(list(D.iter_frames(trained))) == 210                  # stops at the block, no error
    got = D.read_frames(held, [0, 89])
    assert abs(int(got[0][0, 0, 0]) - 210) <= 2 and abs(int(got[89][0, 0, 0]) - 49) <= 2
    assert cameras_of(cfg, ["v1+210-299"], "train") == {"v1+210-299": "all"}
    (tmp_path / "cameras.csv").write_text("video,camera\nv1,east\nv2,east\nv3,east\nt1,east\n")
    assert cameras_of(cfg, ["v1+210-299", "v1+0-209"], "train") == {"v1+210-299": "east", "v1+0-209": "east"}
    assert D.camera_fingerprints(cfg, "train")["v1+0-209"] == ["east"]   # its video's row tracks it
    cfg["validation"]["block"] = 0
    assert D.video_names(cfg, "holdout") == [] and D.video_names(cfg, "train") == ["v1", "v2", "v3"]


def test_a_block_far_into_a_video_file_is_decoded_once_when_read_chunk_by_chunk(tmp_path, capture_calls):
    from vad_pipeline.datasets import video as VV
    from vad_pipeline.datasets.export import write_video_file

    path = tmp_path / "long.avi"   # FFV1: lossless, frame t is grey level t
    write_video_file(path, (np.full((8, 8, 3), t, np.uint8) for t in range(200)), 10)
    block = VV.part(VV.video_file("long", "train", path), 150, 200)
    capture_calls.update(dict.fromkeys(capture_calls, 0))   # its header's read not counted
    chunks = [list(range(0, 20)), list(range(20, 40)), [38, 37, 36], list(range(40, 50))]   # back into the last chunk
    with VV.Reader(block, keep=20) as read:
        got = [read(c) for c in chunks]
    assert [int(g[i][0, 0, 0]) for g, c in zip(got, chunks) for i in c] == [150 + i for c in chunks for i in c]
    assert capture_calls == {"grab": 150, "read": 50, "open": 1}   # read_frames: 4 opens, 150 grabs each
    with VV.Reader(block, keep=5) as read:                      # further back than it keeps: from the start again
        read(list(range(0, 20)))
        assert int(read([2])[2][0, 0, 0]) == 152 and capture_calls["open"] == 3
