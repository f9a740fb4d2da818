"""Cluster safety, locally: a killed Snakemake run resumes without redoing finished jobs, and jobs
write nothing but their declared outputs (no caches in $HOME, nothing left in $TMPDIR)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests import smk
from tests.conftest import write_config
from tests.smk import ran_rules

pytestmark = pytest.mark.slow

TARGET = "results/demo/auc.json"


def snakemake_cmd(*args: str) -> list[str]:
    """The local profile, and the rules' own threads: training runs alone, after the other jobs."""
    return smk.snakemake_cmd(*args, profile="local", max_threads=None)


@pytest.fixture()
def isolated(tiny_config, tmp_path) -> tuple[Path, dict]:
    """A working directory with the tiny demo config, and an environment whose HOME and TMPDIR are
    empty folders of their own (and no cache variables), to see what jobs write there."""
    wd = tmp_path / "run"
    wd.mkdir()
    tiny_config["datasets"]["demo"]["root"] = "resources/demo"
    write_config(tiny_config, wd / "config.yaml")
    for d in ("home", "tmp"):
        (tmp_path / d).mkdir()
    drop = ("XDG_", "MPLCONFIGDIR", "TORCH_HOME", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(HOME=str(tmp_path / "home"), TMPDIR=str(tmp_path / "tmp"), PYTHONUNBUFFERED="1")
    return wd, env


def test_killed_run_resumes_without_redoing_finished_jobs(isolated, tmp_path):
    wd, env = isolated
    res = wd / "results" / "demo"
    first_log = tmp_path / "first.log"
    with first_log.open("w") as out:
        # its own session: the kill takes Snakemake and every job process it started, like a crash
        proc = subprocess.Popen(snakemake_cmd(TARGET), cwd=wd, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            # train's log appears when the train job starts: every per-video job and the
            # training cubes are finished by then, the model is not
            deadline = time.monotonic() + 600
            while not (wd / "results" / "logs" / "demo" / "train.log").exists():
                assert proc.poll() is None, f"snakemake ended before training:\n{first_log.read_text()[-3000:]}"
                assert time.monotonic() < deadline, "training did not start within 10 minutes"
                time.sleep(0.05)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert not (res / "train" / "model.pt").exists(), "killed too late: training had finished"

    finished = [*sorted((res / "detect").rglob("*.csv")), *sorted((res / "flow").rglob("*.h5")),
                res / "stc" / "train.h5", res / "labels.csv", res / "gt_summary.json"]
    assert len(finished) == 2 * 4 + 3  # detect and flow of 2 train and 2 test videos, 3 more
    mtimes = {p: p.stat().st_mtime_ns for p in finished}

    # the killed run's lock stays: --unlock, then the same command again; the local profile sets
    # rerun-incomplete, so the killed train job is redone
    locked = subprocess.run(snakemake_cmd(TARGET), cwd=wd, env=env, capture_output=True, text=True)
    assert locked.returncode != 0 and "cannot be locked" in locked.stdout + locked.stderr
    subprocess.run(snakemake_cmd("--unlock", TARGET), cwd=wd, env=env, capture_output=True, check=True)
    rerun = subprocess.run(snakemake_cmd(TARGET), cwd=wd, env=env, capture_output=True, text=True)
    text = rerun.stdout + rerun.stderr
    assert rerun.returncode == 0, text[-5000:]
    assert {p: p.stat().st_mtime_ns for p in finished} == mtimes
    ran = ran_rules(text)
    assert "train" in ran and not ran & {"make_demo", "labels", "detect", "flow"}, ran
    assert (res / "auc.json").is_file()

    # jobs wrote nothing to $HOME (Snakemake keeps its own source cache there), and left nothing in
    # $TMPDIR but the scratch folder of the killed job, whose exit trap never ran (and Snakemake's
    # own temporary folders of the killed run)
    home = sorted(str(p.relative_to(tmp_path / "home")) for p in (tmp_path / "home").rglob("*"))
    assert all(p == ".cache" or p.startswith(".cache/snakemake") for p in home), home
    left = [p.name for p in (tmp_path / "tmp").iterdir() if not p.name.startswith("snakemake")]
    assert len(left) <= 1 and all(n.startswith("vad-job.") for n in left), left

    # every file in the working directory is an output or log Snakemake recorded (or lies in an
    # output folder), a benchmark, train's resume state (train/ckpt/), or where the dataset lives
    # (dataset_root.txt, written by Snakemake's own process with a job's params: common.smk root_file)
    summary = subprocess.run(snakemake_cmd("--detailed-summary", TARGET), cwd=wd, env=env,
                             capture_output=True, text=True, check=True).stdout
    known = set()
    for line in summary.splitlines()[1:]:  # output_file, date, rule, log-file(s), ...
        cols = line.split("\t")
        known.add(cols[0])
        known.update(cols[3].split(","))
    files = [p.relative_to(wd) for p in wd.rglob("*") if p.is_file()]
    unknown = [
        str(f) for f in files
        if f.parts[0] not in (".snakemake", "config.yaml") and f.parts[:2] != ("results", "benchmarks")
        and not any(str(parent) in known for parent in (f, *f.parents))
    ]
    assert unknown and all(f.startswith("results/demo/train/ckpt/") or f == "results/demo/dataset_root.txt"
                           for f in unknown), unknown
