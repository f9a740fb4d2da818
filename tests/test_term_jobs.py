"""The weight-free terms in several jobs (issue 28): S_c and S_m one job per camera where their
reference is per camera, S_c also one per band of rows of windows (cells.jobs), and a gather that
writes the very files one job writes; the nearest-neighbour queries on the job's threads."""

from __future__ import annotations

import filecmp
import json
import logging
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from tests import smk
from tests.conftest import REPO, tiny_overlay, write_config
from vad_pipeline import cli
from vad_pipeline import config as C
from vad_pipeline import object_motion as M
from vad_pipeline import windows as W
from vad_pipeline.datasets import cameras as K
from vad_pipeline.io import VadError
from vad_pipeline.reference import Reference, _mean_knn, _mean_knn_self, leave_out


@pytest.fixture(scope="module")
def two_cameras(tmp_path_factory) -> dict:
    """A tiny frames-layout set of two generated cameras, videos named 01_xx and 02_xx."""
    from vad_pipeline.camera_set import build

    out = tmp_path_factory.mktemp("two_cameras")
    return build(out, "frames", (48, 64), 2, n_frames=10, n_train=2, n_test=1, height=48, width=64)["joint"]


def _workdir(tmp_path: Path, section: dict, cameras: dict, cells: dict | None = None) -> Path:
    wd = tmp_path / "run"
    wd.mkdir(exist_ok=True)
    cfg = C.deep_merge(C.load(REPO / "config.yaml"), {k: v for k, v in tiny_overlay().items() if k != "demo"})
    cfg["datasets"]["two"] = {**section, "cameras": cameras, **({"cells": cells} if cells else {})}
    write_config(cfg, wd / "config.yaml")
    return wd


TARGETS = ("results/two/cells/train.csv", "results/two/motion/train.csv")


def planned_jobs(workdir: Path) -> tuple[dict[str, int], str]:
    """{rule: jobs} of a dry run of TARGETS, and its text."""
    return smk.planned_jobs(workdir, *TARGETS)


def test_one_term_job_per_camera_in_the_dag(two_cameras, tmp_path):
    per_camera = {"assign": "prefix", "cells": "camera", "motion": "camera"}
    jobs, text = planned_jobs(_workdir(tmp_path, two_cameras, per_camera))
    assert jobs["cell_terms"] == 2 and jobs["motion_terms"] == 2
    assert jobs["gather_cell_terms"] == 1 and jobs["gather_motion_terms"] == 1
    for cam in ("01", "02"):
        assert f"results/two/cells/terms/{cam}/1of1/train.csv" in text
        assert f"results/two/motion/terms/{cam}/train.csv" in text
    # pooled references: S_m one job; S_c one per band of rows (cells.jobs)
    pooled = {"assign": "prefix", "cells": "pooled", "motion": "pooled"}
    jobs, text = planned_jobs(_workdir(tmp_path, two_cameras, pooled, {"jobs": 3}))
    assert jobs["cell_terms"] == 3 and jobs["motion_terms"] == 1
    assert "results/two/cells/terms/all/3of3/test.csv" in text and "results/two/motion/terms/all/test.csv" in text


def test_camera_names_need_no_frame_counts(two_cameras, tmp_path):
    cfg = {"dataset": {**two_cameras}, "cameras": {"assign": "prefix"}, "validation": {"videos": 0}}
    assert K.video_cameras(cfg, "train") == {"01_01": "01", "01_02": "01", "02_01": "02", "02_02": "02"}
    assert K.camera_names(cfg, "test") == ["01", "02"]
    assert K.camera_names({**cfg, "cameras": {"assign": "one"}}, "train") == [K.ONE]
    root = tmp_path / "root"   # the same videos with a camera list
    root.mkdir()
    for split in ("training", "testing"):
        (root / split).symlink_to(Path(two_cameras["root"]) / split, target_is_directory=True)
    (root / "cameras.csv").write_text("video,camera\n01_01,hall\n01_02,hall\n02_01,yard\n01_01,hall\n")
    listed = {"dataset": {**two_cameras, "root": str(root)}, "cameras": {"assign": "file"}, "validation": {"videos": 0}}
    assert K.camera_names(listed, "test") == ["hall", "yard"]
    with pytest.raises(VadError, match="no camera for train video 02_02"):
        K.video_cameras(listed, "train")


def test_bands_and_parts():
    assert W.parse_band("2of4") == (2, 4)
    for bad in ("0of2", "3of2", "2/4", "of", "x"):
        with pytest.raises(VadError, match="IofN"):
            W.parse_band(bad)
    layout = {"rows": [0, 0, 1, 1, 2, 3, 3, 4]}
    for n in (1, 2, 3, 5, 7):   # every row in exactly one band, in order; more bands than rows: empty ones
        bands = [W.band_rows(layout, f"{i}of{n}") for i in range(1, n + 1)]
        assert np.concatenate(bands).tolist() == [0, 1, 2, 3, 4]
    cams = {f"{c}_{i:03d}": c for c in ("01", "02") for i in range(30)}
    cfg = {"cameras": {"cells": "camera", "motion": "camera"}, "cells": {"jobs": "auto"}}
    assert W.jobs(cfg, cams) == [("01", "1of1"), ("02", "1of1")]
    assert M.jobs(cfg, cams) == ["01", "02"]
    pooled = {"cameras": {"cells": "pooled", "motion": "pooled"}, "cells": {"jobs": "auto"}}
    assert W.jobs(pooled, cams) == [(K.ONE, "1of2"), (K.ONE, "2of2")]   # 60 videos: a band per 50
    assert W.jobs({**pooled, "cells": {"jobs": 1}}, cams) == [(K.ONE, "1of1")] and M.jobs(pooled, cams) == [K.ONE]
    one = {v: "01" for v in cams}   # one camera: one part, whatever the reference
    assert W.jobs({**cfg, "cells": {"jobs": 1}}, one) == [(K.ONE, "1of1")] and M.jobs(cfg, one) == [K.ONE]


# The gathered files against one job's, on inputs small enough to make by hand.


def _layout(height: int, width: int, size: int, stride: int) -> dict:
    boxes, rows, steps = W.grid_windows(height, width, size, stride)
    return {"windows": "grid", "frame_size": [height, width], "perspective": None,
            "boxes": (boxes / [width, height, width, height]).round(6).tolist(), "rows": rows.tolist(),
            "steps": (steps / width).round(6).tolist()}


VIDEOS = {"train": {"01_a": 24, "01_b": 18, "02_a": 30}, "test": {"01_t": 12, "02_t": 14}}   # 02: one training video


def _stats_files(tmp_path: Path, per_camera: bool) -> list[str]:
    """split_stats files of VIDEOS: random statistics, with frames standing still (all zero) in
    every video, so that every window of such a frame scores the same (a tie across bands)."""
    layouts = ({"01": _layout(40, 60, 20, 10), "02": _layout(30, 50, 10, 10)} if per_camera
               else {K.ONE: _layout(40, 60, 20, 10)})
    rng = np.random.default_rng(0)
    paths = []
    for split, videos in VIDEOS.items():
        paths.append(str(tmp_path / f"stats_{split}.h5"))
        with h5py.File(paths[-1], "w") as h:
            h.create_dataset("layout", data=json.dumps({"cameras": layouts}, sort_keys=True), dtype=h5py.string_dtype())
            for v, n in videos.items():
                layout = layouts[v[:2] if per_camera else K.ONE]
                x = rng.gamma(2.0, 1.0, (n, len(layout["rows"]), len(W.STATS))).astype(np.float32)
                x[::4] = 0.0
                h.create_dataset(f"stats/{v}", data=x)
                h.create_dataset(f"boxes/{v}", data=W.pixel_boxes(layout, 240, 320))
    return paths


def _camera_lists(tmp_path: Path) -> list[str]:
    paths = []
    for split, videos in VIDEOS.items():
        paths.append(str(tmp_path / f"cameras_{split}.csv"))
        pd.DataFrame([(split, v, v[:2], n) for v, n in videos.items()], columns=K.COLUMNS).to_csv(paths[-1], index=False)
    return paths


def _gathered_equals_one_job(tmp_path: Path, command: str, inputs: list[str], params: dict, parts: list[list[str]]):
    """Run ``command`` once (every camera, every row) and once per part (``parts``: each part's
    extra arguments), gather the parts (gather-terms), and compare the files byte for byte."""
    cams = _camera_lists(tmp_path)
    common = [command, "--params", json.dumps(params), "--train", inputs[0], "--test", inputs[1], "--cameras", *cams]
    one = [str(tmp_path / "one_train.csv"), str(tmp_path / "one_test.csv")]
    assert cli.main([*common, "--train-out", one[0], "--test-out", one[1]]) == 0
    outs = []
    for i, extra in enumerate(parts):
        outs.append([str(tmp_path / f"part{i}_train.csv"), str(tmp_path / f"part{i}_test.csv")])
        assert cli.main([*common, *extra, "--threads", "2", "--train-out", outs[-1][0], "--test-out", outs[-1][1]]) == 0
    got = [str(tmp_path / "gathered_train.csv"), str(tmp_path / "gathered_test.csv")]
    folder = {"cell-terms": "cells", "motion-terms": "motion"}[command]
    assert cli.main(["gather-terms", "--term", folder, "--train", *[o[0] for o in outs], "--test",
                     *[o[1] for o in outs], "--train-out", got[0], "--test-out", got[1]]) == 0
    for a, b in zip(one, got):
        assert filecmp.cmp(a, b, shallow=False), f"{b} differs from the one job's {a}"
    return pd.read_csv(one[0], dtype={"video": str}), pd.read_csv(one[1], dtype={"video": str})


@pytest.mark.parametrize("reference", ["camera", "pooled"])
def test_gathered_cell_terms_are_the_one_jobs(tmp_path, caplog, reference):
    caplog.set_level(logging.INFO)
    per_camera = reference == "camera"
    stats = _stats_files(tmp_path, per_camera)
    cells = {**C.defaults()["cells"], "k": 3, "frames": 2, "jobs": 3,
             # pooled: each window against its neighbours in the rows either side (the other neighbourhoods)
             **({} if per_camera else {"rows": 1, "cols": 1})}
    params = {"cells": cells, "cameras": {"blocks": 3, "margin": 2, "cells": reference}}
    cams = {v: v[:2] for videos in VIDEOS.values() for v in videos}
    parts = W.jobs(params, cams)
    assert len(parts) == (6 if per_camera else 3)
    train, test = _gathered_equals_one_job(tmp_path, "cell-terms", stats, params,
                                           [["--camera", c, "--band", b] for c, b in parts])
    assert train["video"].tolist() == [v for v, n in VIDEOS["train"].items() for _ in range(n)]
    assert test["frame"].tolist() == [f for n in VIDEOS["test"].values() for f in range(n)]
    standing = test[test["frame"] % 4 == 0]   # every window ties: the layout's first, in the first band
    assert (standing[["x1", "y1"]] == 0).all().all()
    assert (test["x2"] > test["x1"]).all() and (train["s_c"] > 0).any()
    assert any("neighbourhoods (100 %)" in r.getMessage() for r in caplog.records)   # progress in the log


def test_reference_frames_bound_the_reference_and_the_training_frames_scored(tmp_path):
    stats = _stats_files(tmp_path, per_camera=True)
    cams = {v: v[:2] for videos in VIDEOS.values() for v in videos}
    cells = {**C.defaults()["cells"], "k": 3, "frames": 2}
    cfg = {"cells": cells, "cameras": {**C.defaults()["cameras"], "blocks": 3, "margin": 2}}
    full = W.term_parts(*stats, cfg, cams)
    assert W.reference_step(42, 16000) == 1 and W.reference_step(42, 20) == 3
    # camera 01 has 42 training frames: at most 20 keeps every third; camera 02 (30) every second
    tr, te = W.term_parts(*stats, {**cfg, "cells": {**cells, "reference_frames": 20}}, cams)
    for v, n in VIDEOS["train"].items():
        step = 3 if v.startswith("01") else 2
        assert tr.loc[tr["video"] == v, "frame"].tolist() == list(range(0, n, step))   # real frame numbers
    assert te[["video", "frame"]].equals(full[1][["video", "frame"]])   # every test frame is scored
    assert not np.allclose(te["s_c"], full[1]["s_c"])                   # against the thinner reference
    # a bound above the footage changes nothing
    same = W.term_parts(*stats, {**cfg, "cells": {**cells, "reference_frames": 100}}, cams)
    pd.testing.assert_frame_equal(same[0], full[0])
    pd.testing.assert_frame_equal(same[1], full[1])


def test_window_statistics_per_video_gather_into_the_splits_file(tmp_path):
    flows, layout_path = [], tmp_path / "layout.json"
    rng = np.random.default_rng(3)
    for v, n in (("01", 7), ("02", 0), ("03", 5)):   # 02: a video without frames
        flows.append(str(tmp_path / f"{v}.h5"))
        with h5py.File(flows[-1], "w") as h:
            h.create_dataset("flow", data=rng.normal(size=(n, 40, 60, 2)).astype(np.float16))
            h.attrs.update(height=80, width=120, work_height=40, work_width=60)
    W.write_json(str(layout_path), {"cameras": {K.ONE: _layout(40, 60, 20, 10)}})
    p = C.defaults()["cells"]
    whole = str(tmp_path / "whole.h5")
    W.split_stats(flows, str(layout_path), whole, p)
    parts = []
    for fp in flows:
        parts.append(str(tmp_path / "parts" / f"{Path(fp).stem}.h5"))
        Path(parts[-1]).parent.mkdir(exist_ok=True)
        W.split_stats([fp], str(layout_path), parts[-1], p)
    gathered = str(tmp_path / "gathered" / "stats_train.h5")
    Path(gathered).parent.mkdir()
    assert cli.main(["cell-stats-gather", "--parts", *parts, "--out", gathered]) == 0
    assert W.stats_index(gathered) == W.stats_index(whole)
    a, b = W.read_stats(whole)[1], W.read_stats(gathered)[1]
    for v in ("01", "02", "03"):
        np.testing.assert_array_equal(a[v][0], b[v][0])
        np.testing.assert_array_equal(a[v][1], b[v][1])
    with h5py.File(gathered, "r") as h:
        assert h["stats/01"].is_virtual    # read from the video's file, not copied
        np.testing.assert_array_equal(h["stats/03"][::2], a["03"][0][::2])
    other = str(tmp_path / "other.h5")   # another layout's statistics
    W.write_json(str(layout_path), {"cameras": {K.ONE: _layout(40, 60, 10, 10)}})
    W.split_stats(flows[:1], str(layout_path), other, p)
    with pytest.raises(VadError, match="another layout"):
        W.gather_stats([parts[0], other], str(tmp_path / "bad.h5"))


def test_a_part_of_a_camera_without_layout_is_an_error(tmp_path):
    stats = _stats_files(tmp_path, per_camera=True)
    cfg = {"cells": {**C.defaults()["cells"], "k": 3}, "cameras": C.defaults()["cameras"]}
    with pytest.raises(VadError, match="no window layout of camera 07"):
        W.term_parts(*stats, cfg, {v: v[:2] for videos in VIDEOS.values() for v in videos}, camera="07")


def _features(tmp_path: Path) -> list[str]:
    rng = np.random.default_rng(2)
    paths = []
    for split, videos in VIDEOS.items():
        rows = []
        for v, n in videos.items():
            f = rng.normal(0, 0.3, (n, len(M.FEATURES)))
            f[:, :2] += 1.0 if v.startswith("01") else 4.0
            f[::5] = 0.0   # standing objects: exact duplicates, ties among the neighbours
            rows.append(pd.DataFrame(f, columns=M.FEATURES).assign(video=v, frame=np.arange(n) // 2, x1=1, y1=2,
                                                                   x2=9, y2=12))
        paths.append(str(tmp_path / f"features_{split}.csv"))
        df = pd.concat(rows, ignore_index=True)
        df.sample(frac=1.0, random_state=0)[M.INDEX + M.FEATURES].to_csv(paths[-1], index=False)   # cameras interleaved
    return paths


@pytest.mark.parametrize("reference", ["camera", "pooled"])
def test_gathered_motion_terms_are_the_one_jobs(tmp_path, reference):
    feats = _features(tmp_path)
    params = {"motion": {**C.defaults()["motion"], "k": 4}, "cameras": {"motion": reference, "blocks": 3, "margin": 2}}
    parts = M.jobs(params, {v: v[:2] for videos in VIDEOS.values() for v in videos})
    assert parts == (["01", "02"] if reference == "camera" else [K.ONE])
    train, test = _gathered_equals_one_job(tmp_path, "motion-terms", feats, params, [["--camera", c] for c in parts])
    for got, path in ((train, feats[0]), (test, feats[1])):   # the features' rows, in their order
        pd.testing.assert_frame_equal(got[M.INDEX], pd.read_csv(path, dtype={"video": str})[M.INDEX])
        assert got["s_m"].notna().all()


def test_nearest_neighbours_on_threads_are_the_brute_force_ones():
    """The mean distance to the k nearest pool rows, on one thread and on several: every
    distance computed and sorted gives the same (ties included), and so does any thread count."""
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(3)
    pool, query = rng.standard_normal((3000, 5)), rng.standard_normal((500, 5))
    pool[:300], query[:50] = 0.0, 0.0   # duplicates: tied neighbours
    to_pool, within = np.sort(cdist(query, pool), axis=1), np.sort(cdist(pool, pool), axis=1)
    for k in (1, 5):
        one = _mean_knn(pool, query, k, threads=1)
        np.testing.assert_allclose(one, to_pool[:, :k].mean(axis=1), rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(_mean_knn(pool, query, k, threads=3), one)
        # each pool row against the others: its own zero distance left out
        np.testing.assert_allclose(_mean_knn_self(pool, k, threads=2), within[:, 1:k + 1].mean(axis=1),
                                   rtol=1e-12, atol=1e-12)
    videos, frames = np.repeat([0, 1, 2], 1000), np.tile(np.arange(1000), 3)
    leave = leave_out(C.defaults())
    np.testing.assert_array_equal(Reference(pool, videos, 5, frames=frames, threads=2, **leave).score_training(),
                                  Reference(pool, videos, 5, frames=frames, **leave).score_training())


@pytest.mark.slow
def test_part_jobs_end_to_end(two_cameras, tmp_path):
    """Snakemake runs a part job per camera and band and the gathers; their files are those of
    one job on the run's statistics and features, and the jobs log their progress."""
    from tests.smk import snakemake

    cameras = {"assign": "prefix", "cells": "camera", "motion": "camera"}
    wd = _workdir(tmp_path, two_cameras, cameras, {"jobs": 2})
    snakemake(wd, *TARGETS)
    res = wd / "results" / "two"
    assert len(list((res / "cells" / "terms").glob("*/*/train.csv"))) == 4
    cams = [str(res / "cameras" / f"{s}.csv") for s in ("train", "test")]
    resolved = C.resolve(C.load(wd / "config.yaml"), "two")
    for term, command, inputs in (("cells", "cell-terms", [res / "cells" / f"stats_{s}.h5" for s in ("train", "test")]),
                                  ("motion", "motion-terms", [res / "motion" / f"features_{s}.csv" for s in ("train", "test")])):
        one = [str(tmp_path / f"{term}_{s}.csv") for s in ("train", "test")]
        assert cli.main([command, "--params", json.dumps(resolved), "--train", str(inputs[0]), "--test", str(inputs[1]),
                         "--cameras", *cams, "--train-out", one[0], "--test-out", one[1]]) == 0
        for s, path in zip(("train", "test"), one):
            assert filecmp.cmp(res / term / f"{s}.csv", path, shallow=False), f"{term}/{s}.csv is not the one job's"
    logs = wd / "results" / "logs" / "two"
    per_video = sorted((logs / "cells" / "stats" / "train").glob("*.log"))   # cell_stats_video: one job a video
    assert len(per_video) == 4 and all("videos (100 %)" in p.read_text() for p in per_video)
    assert "neighbourhoods (100 %)" in (logs / "cells" / "terms" / "02" / "1of2.log").read_text()
    assert "objects (100 %)" in (logs / "motion" / "terms" / "01.log").read_text()
