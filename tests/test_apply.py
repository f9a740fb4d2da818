"""Applying a trained dataset to batches of new footage (vad_pipeline.apply, vad_pipeline.bundle,
workflow/rules/apply.smk): the same scores as the dataset's own run, per-video reruns, a bundle
that travels, and errors before any work."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import REPO, copy_run, tiny_overlay, write_config
from tests.smk import planned_jobs, snakemake
from vad_pipeline import apply as AP
from vad_pipeline import bundle as B
from vad_pipeline import config as C
from vad_pipeline.io import VadError

COLUMNS = ["score", "score_f", "score_p", "score_m", "score_c"]
APPLY_RULES = {"apply_video", "apply_scores", "apply_top_anomalies", "apply_pictures", "apply_evaluate"}


# --- camera assignment, frame sizes, bundles: units -------------------------------------------------------


def _info(cameras=("01", "02"), assign="file", size=(240, 360)):
    return {"dataset": "d", "camera_assign": assign,
            "cameras": {c: {"frame_size": list(size), "train_videos": 3} for c in cameras}}


def test_cameras_come_from_the_batch_file_then_the_prefix_then_the_single_camera(tmp_path):
    names = ["01_007", "02_001"]
    assert AP.assign(_info(assign="prefix"), names, tmp_path, {}) == {"01_007": "01", "02_001": "02"}
    assert AP.assign(_info(cameras=("all",), assign="one"), names, tmp_path, {}) == dict.fromkeys(names, "all")
    (tmp_path / "cameras.csv").write_text("video,camera\n01_007,02\n02_001,02\nother,01\n")
    assert AP.assign(_info(assign="prefix"), names, tmp_path, {}) == {"01_007": "02", "02_001": "02"}


@pytest.mark.parametrize("rows, message", [
    (None, "the model knows several cameras (01, 02)"),
    ("a,01\n", "no camera for video b"),
    ("a,01\nb,07\n", "video b is from camera 07, which the model of dataset d was not trained on (its cameras: 01, 02)"),
    ("a,02\nb,02\n", "video a has the name of a training video of camera 01 but is assigned camera 02"),
])
def test_a_video_without_a_trained_camera_is_an_error_naming_it(tmp_path, rows, message):
    if rows is not None:
        (tmp_path / "cameras.csv").write_text("video,camera\n" + rows)
    with pytest.raises(VadError, match=message.replace("(", r"\(").replace(")", r"\)")):
        AP.assign(_info(), ["a", "b"], tmp_path, {"a": "01"})
    with pytest.raises(VadError, match=message.replace("(", r"\(").replace(")", r"\)")):
        AP.assign(_info(), ["a", "b"], tmp_path, {"a+0-209": "01"})   # a training part (time block) of video a


def test_a_frame_size_the_cameras_windows_cannot_serve_is_an_error(tmp_path):
    import cv2

    from vad_pipeline.datasets.video import image_folder

    folder = tmp_path / "v"
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.zeros((480, 720, 3), np.uint8))
    video = image_folder("v", "test", folder)
    AP.check_size(_info(), video, "01", 240)   # 480x720 works at 240x360: the camera's size
    with pytest.raises(VadError, match=r"v: frames of 480x720 .* camera 02 was trained on 240x427"):
        AP.check_size(_info(size=(240, 427)), video, "02", 240)


def _bundle(tmp_path: Path) -> Path:
    """A bundle folder with small stand-in files (what the manifest checks, not a model)."""
    folder = tmp_path / "bundle"
    folder.mkdir()
    files = {}
    for name in [*B.FILES, B.SETTINGS]:
        (folder / name).write_text(f"{name}\n")
        files[name] = {"bytes": (folder / name).stat().st_size, "sha256": B.checksum(folder / name)}
    (folder / B.MANIFEST).write_text(json.dumps({"format": B.FORMAT, "vad_pipeline": "0.1.0", "dataset": "d",
                                                 "files": files}))
    return folder


def test_a_bundle_of_another_format_is_refused_naming_both_versions(tmp_path):
    folder = _bundle(tmp_path)
    assert B.manifest(folder)["dataset"] == "d"
    info = json.loads((folder / B.MANIFEST).read_text())
    (folder / B.MANIFEST).write_text(json.dumps({**info, "format": B.FORMAT + 1, "vad_pipeline": "9.0"}))
    with pytest.raises(VadError, match=rf"bundle format {B.FORMAT + 1}, written by vad-pipeline 9.0; this "
                                       rf"vad-pipeline \(.*\) reads format {B.FORMAT} only"):
        B.manifest(folder)


@pytest.mark.parametrize("damage, message", [
    (lambda f: (f / "model.pt").unlink(), "the bundle has no model.pt"),
    (lambda f: (f / "layout.json").write_text("{}"), "layout.json is 2 bytes, the manifest says 12"),
    (lambda f: (f / B.MANIFEST).unlink(), "not a bundle"),
    (lambda f: shutil.rmtree(f), "bundle not found"),
])
def test_a_missing_or_incomplete_bundle_is_an_error_naming_what_is_wrong(tmp_path, damage, message):
    folder = _bundle(tmp_path)
    damage(folder)
    with pytest.raises(VadError, match=message):
        B.manifest(folder)


def test_an_archive_round_trips_and_a_damaged_or_foreign_one_is_refused(tmp_path):
    folder = _bundle(tmp_path)
    B.pack(str(folder), str(tmp_path / "b.tar.gz"))
    B.unpack(str(tmp_path / "b.tar.gz"), str(tmp_path / "out"))
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == \
        {p.name: p.read_bytes() for p in folder.iterdir()}
    (folder / "model.pt").write_text("model.pX\n")   # same size, other bytes
    with pytest.raises(VadError, match="model.pt does not match its checksum"):
        B.unpack(str(folder), str(tmp_path / "out2"))
    assert not (tmp_path / "out2").exists()   # nothing half-written
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        for p in folder.iterdir():
            tar.add(p, arcname=p.name)
        tar.add(folder / "model.pt", arcname="../escape.txt")
    with pytest.raises(VadError, match="unexpected archive member '../escape.txt'"):
        B.unpack(str(evil), str(tmp_path / "out3"))
    assert not (tmp_path / "escape.txt").exists()


def test_batches_and_bundles_are_not_settings_of_the_dataset_stages(base_config):
    cfg = C.resolve(base_config, "demo")
    with_batch = C.resolve(C.deep_merge(base_config, {"datasets": {"demo": {"apply": {"x": {"root": "b"}}}}}), "demo")
    assert C.stage_params(cfg, *C.SECTIONS) == C.stage_params(with_batch, *C.SECTIONS)


# --- the workflow: a batch of the demo's own test videos ---------------------------------------------------


def _batch_of_tests(wd: Path, folder: str = "batch") -> Path:
    """A batch folder holding the demo's test videos (links) and their labels as labels.csv."""
    batch = wd / folder
    batch.mkdir()
    for v in sorted((wd / "resources" / "demo" / "testing" / "frames").iterdir()):
        (batch / v.name).symlink_to(v.resolve(), target_is_directory=True)
    labels = pd.read_csv(wd / "results" / "demo" / "labels.csv", dtype={"video": str})
    rows = []
    for v, g in labels.groupby("video"):
        lab = np.r_[0, g.sort_values("frame")["label"].to_numpy(), 0]
        starts, ends = np.flatnonzero(np.diff(lab) == 1), np.flatnonzero(np.diff(lab) == -1) - 1
        rows += [(v, int(a), int(b)) for a, b in zip(starts, ends)]
    pd.DataFrame(rows, columns=["video", "start_frame", "end_frame"]).to_csv(batch / "labels.csv", index=False)
    return batch


def _add_batch(wd: Path, dataset: str, batch: str, root: str) -> None:
    path = wd / "config.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg["datasets"][dataset].setdefault("apply", {})[batch] = {"root": root}
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


def _same_frame_scores(a: Path, b: Path, labelled: bool = True) -> None:
    x = pd.read_csv(a, dtype={"video": str})
    y = pd.read_csv(b, dtype={"video": str})
    assert len(x) == len(y)
    m = x.merge(y, on=["video", "frame"], suffixes=("_own", "_batch"))
    assert len(m) == len(x)
    assert (m["label_own"] == m["label_batch"]).all() if labelled else (m["label_batch"] == -1).all()
    for c in COLUMNS:
        np.testing.assert_allclose(m[f"{c}_batch"], m[f"{c}_own"], rtol=0, atol=1e-6, err_msg=c)


@pytest.fixture(scope="module")
def applied(demo_run, tmp_path_factory) -> Path:
    """The demo run with a batch 'own' of its test videos, applied (bundle archive written too)."""
    wd = copy_run(demo_run, tmp_path_factory.mktemp("apply") / "run")
    _batch_of_tests(wd)
    _add_batch(wd, "demo", "own", "batch")
    snakemake(wd, "results/demo/apply/own/auc.json", "results/demo/bundle.tar.gz")
    return wd


def test_a_batch_of_the_datasets_test_videos_scores_as_its_own_run(applied):
    res = applied / "results" / "demo"
    _same_frame_scores(res / "frame_scores.csv", res / "apply" / "own" / "frame_scores.csv")
    own, batch = json.loads((res / "auc.json").read_text()), json.loads((res / "apply" / "own" / "auc.json").read_text())
    assert batch["auc_micro"] == pytest.approx(own["auc_micro"], abs=1e-9) and batch["auc_micro"] > 0.7
    out = res / "apply" / "own"
    assert (out / "top_anomalies.csv").is_file() and (out / "top_anomalies" / "contact_sheet.png").is_file()
    assert "AUC" in (out / "summary.html").read_text()
    # the batch ran nothing of the dataset's own (its settings hold no batch)
    assert planned_jobs(applied, "results/demo/auc.json")[0] == {}


def test_a_video_added_to_a_batch_runs_its_own_job_and_the_gathers_only(applied, tmp_path):
    wd = copy_run(applied, tmp_path / "run")
    shutil.copytree(wd / "resources" / "demo" / "testing" / "frames" / "01", wd / "batch" / "03")
    jobs, text = planned_jobs(wd, "results/demo/apply/own/auc.json")
    assert jobs == {"apply_video": 1, **{r: 1 for r in APPLY_RULES - {"apply_video"}}}, text
    assert "video=03" in text and "video=01" not in text and "video=02" not in text


def test_a_bundle_copied_elsewhere_scores_an_unlabelled_batch_the_same(applied, tmp_path):
    wd = tmp_path / "elsewhere"
    wd.mkdir()
    shutil.copy(applied / "results" / "demo" / "bundle.tar.gz", tmp_path / "demo-bundle.tar.gz")
    batch = tmp_path / "monday"
    shutil.copytree(applied / "batch", batch, symlinks=True)
    (batch / "labels.csv").unlink()
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["datasets"]["site"] = {"bundle": str(tmp_path / "demo-bundle.tar.gz"), "apply": {"monday": {"root": str(batch)}}}
    write_config(cfg, wd / "config.yaml")
    snakemake(wd, "results/site/apply/monday/auc.json")
    out = wd / "results" / "site" / "apply" / "monday"
    _same_frame_scores(applied / "results" / "demo" / "frame_scores.csv", out / "frame_scores.csv", labelled=False)
    assert json.loads((out / "auc.json").read_text())["auc_micro"] is None
    assert len(pd.read_csv(out / "top_anomalies.csv")) > 0


def _refused(wd: Path, target: str, message: str) -> None:
    out = snakemake(wd, target, check=False)
    assert out.returncode != 0
    assert message in out.stdout + out.stderr, (out.stdout + out.stderr)[-3000:]


def test_unknown_cameras_missing_models_and_old_bundles_are_errors_before_any_work(applied, tmp_path):
    wd = tmp_path / "errors"
    wd.mkdir()
    bundle = applied / "results" / "demo" / "bundle"
    batch = tmp_path / "batch"
    shutil.copytree(applied / "batch", batch, symlinks=True)
    (batch / "cameras.csv").write_text("video,camera\n01,all\n02,07\n")
    no_model, old = tmp_path / "no_model", tmp_path / "old"
    for copy in (no_model, old):
        shutil.copytree(bundle, copy)
    (no_model / "model.pt").unlink()
    info = json.loads((old / "bundle.json").read_text())
    (old / "bundle.json").write_text(json.dumps({**info, "format": 0, "vad_pipeline": "0.0.1"}))
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["datasets"].update({name: {"bundle": str(path), "apply": {"b": {"root": str(root)}}} for name, path, root in (
        ("cams", bundle, batch), ("nomodel", no_model, applied / "batch"), ("old", old, applied / "batch"))})
    write_config(cfg, wd / "config.yaml")
    _refused(wd, "results/cams/apply/b/auc.json", "video 02 is from camera 07, which the model of dataset demo "
                                                  "was not trained on (its cameras: all)")
    _refused(wd, "results/nomodel/apply/b/auc.json", "the bundle has no model.pt (the trained model)")
    _refused(wd, "results/old/apply/b/auc.json", "bundle format 0, written by vad-pipeline 0.0.1")
    assert not (wd / "results" / "cams" / "bundle").exists() and not (wd / "results" / "cams" / "apply" / "b" / "videos").exists()


# --- two cameras of own footage, one of them with a single training clip ----------------------------------


def test_two_cameras_of_own_footage_one_with_a_single_training_clip_score_as_their_own_run(tmp_path):
    from vad_pipeline import cli

    wd = tmp_path / "run"
    wd.mkdir()
    assert cli.main(["make-camera-set", "--out", str(wd / "data"), "--layout", "videos", "--cameras", "2",
                     "--size", "96x128", "--train-clips", "2,1", "--demo",
                     json.dumps({"n_frames": 30, "n_test": 2, "n_walkers": 3})]) == 0
    batch = wd / "batch"
    batch.mkdir()
    for v in (wd / "data" / "test").iterdir():
        (batch / v.name).symlink_to(v.resolve(), target_is_directory=v.is_dir())
    for name in ("cameras.csv", "labels.csv"):
        shutil.copy(wd / "data" / name, batch / name)
    cfg = C.deep_merge(yaml.safe_load((REPO / "config.yaml").read_text()), tiny_overlay())
    cfg["datasets"]["own"] = {"layout": "videos", "root": "data", "fps": 10.0, "cameras": {"assign": "file", "cells": "camera"},
                              "detect": {"motion": {"min_area": 40, "diff_threshold": 22}}, "stc": {"color": "rgb"},
                              "apply": {"new": {"root": "batch"}}}
    write_config(cfg, wd / "config.yaml")
    snakemake(wd, "results/own/frame_scores.csv", "results/own/apply/new/frame_scores.csv")
    info = json.loads((wd / "results" / "own" / "bundle" / "bundle.json").read_text())
    assert {c: v["train_videos"] for c, v in info["cameras"].items()} == {"01": 2, "02": 1}
    _same_frame_scores(wd / "results" / "own" / "frame_scores.csv", wd / "results" / "own" / "apply" / "new" / "frame_scores.csv")


def test_a_batch_takes_the_weights_the_validation_chose(validation_run, tmp_path):
    wd = copy_run(validation_run, tmp_path / "run")
    chosen = json.loads((wd / "results" / "demo" / "validation" / "weights.json").read_text())["default"]
    assert chosen != dict.fromkeys(chosen, 1.0)   # else a batch ignoring them would score the same
    _batch_of_tests(wd)
    _add_batch(wd, "demo", "own", "batch")
    snakemake(wd, "results/demo/apply/own/frame_scores.csv")
    assert (wd / "results" / "demo" / "bundle" / "weights.json").is_file()
    _same_frame_scores(wd / "results" / "demo" / "frame_scores.csv",
                       wd / "results" / "demo" / "apply" / "own" / "frame_scores.csv")
