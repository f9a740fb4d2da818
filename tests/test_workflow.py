"""End-to-end: the Snakemake workflow on a tiny generated dataset, reruns and bad input."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, write_config

pytestmark = pytest.mark.slow


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--cores", "2", *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def planned_rules(workdir: Path, *args: str) -> set[str]:
    """Rules a dry run would execute (empty when everything is up to date)."""
    out = snakemake(workdir, "-n", *args)
    text = out.stdout + out.stderr
    if "Nothing to be done" in text:
        return set()
    return set(re.findall(r"^\s*rule (\w+):", text, flags=re.M)) | set(
        re.findall(r"^(\w+)\s+\d+\s*$", text, flags=re.M)
    ) - {"total", "job", "count"}


@pytest.fixture()
def workdir(tiny_config, tmp_path) -> Path:
    wd = tmp_path / "run"
    wd.mkdir()
    tiny_config["datasets"]["demo"]["root"] = "resources/demo"
    write_config(tiny_config, wd / "config.yaml")
    return wd


def test_demo_end_to_end_rerun_and_partial_rerun(workdir):
    snakemake(workdir, "results/demo/auc.json", "results/demo/benchmark.json")
    res = workdir / "results" / "demo"
    auc = json.loads((res / "auc.json").read_text())
    for key in ("dataset", "auc_micro", "auc_macro", "ap", "eer", "n_frames", "n_abnormal", "protocol", "versions"):
        assert key in auc
    assert auc["dataset"] == "demo" and 0.0 <= auc["auc_micro"] <= 1.0
    assert auc["protocol"]["frame_scores"]["exclude_first"] == 4
    assert auc["protocol"]["model"]["fusion"] == "gated"
    for png in ("roc.png", "scores.png", "train/loss.png"):
        assert (res / png).read_bytes()[:4] == b"\x89PNG"
    bench = json.loads((res / "benchmark.json").read_text())
    assert bench["stages"]["flow"]["frames_per_s"] > 0 and bench["stages"]["train"]["samples_per_s"] > 0

    # a second run has nothing to do
    assert planned_rules(workdir, "results/demo/auc.json") == set()

    # new fusion weights: only scoring and what follows reruns, never training or inference
    (workdir / "weights.yaml").write_text("score: {w_f: 0.5, w_p: 2.0}\n")
    rules = planned_rules(workdir, "results/demo/auc.json", "--configfile", "config.yaml", "weights.yaml")
    assert {"score", "frame_scores", "evaluate"} <= rules
    assert not rules & {"train", "infer", "stc", "detect", "flow"}

    # changing one video's boxes reruns the test cubes and everything downstream of them only
    # (Snakemake ignores a bare touch of a small file whose checksum is unchanged)
    boxes = res / "detect" / "test" / "01.csv"
    lines = boxes.read_text().splitlines(keepends=True)
    boxes.write_text("".join(lines[:-1]))
    rules = planned_rules(workdir, "results/demo/auc.json")
    assert {"stc", "infer", "score", "frame_scores", "evaluate"} <= rules
    assert not rules & {"train", "detect", "flow", "make_demo"}


def test_dry_run_lists_every_stage(workdir):
    rules = planned_rules(workdir, "results/demo/auc.json")
    assert {"make_demo", "labels", "detect", "flow", "stc", "train", "infer", "score", "frame_scores", "evaluate"} <= rules


def test_missing_dataset_folder_is_named(workdir, tiny_config):
    tiny_config["datasets"]["ped2"]["root"] = str(workdir / "no_such_ped2")
    write_config(tiny_config, workdir / "config.yaml")
    out = snakemake(workdir, "-n", "results/ped2/auc.json", check=False)
    assert out.returncode != 0
    assert "no_such_ped2: dataset folder not found" in out.stdout + out.stderr


def test_config_value_of_wrong_type_is_named(workdir, tiny_config):
    tiny_config["train"]["epochs"] = "ten"
    write_config(tiny_config, workdir / "config.yaml")
    out = snakemake(workdir, "-n", "results/demo/auc.json", check=False)
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "epochs" in text and "'ten'" in text
