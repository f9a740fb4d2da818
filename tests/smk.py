"""Starting Snakemake from the tests: one command line, one runner, one reading of a dry run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def snakemake_cmd(*args: str, cores: int = 2, profile: str | None = None, max_threads: int | None = 1) -> list[str]:
    """``python -m snakemake`` on the repository's Snakefile (``profile``: a folder of
    workflow/profiles/ given as the workflow profile). ``max_threads`` 1: every job on one thread,
    so that the tiny runs' jobs (most of their time is starting Python) go two at a time on
    2 cores, where a rule asking for all the cores would run alone (None: the rules' own threads)."""
    extra = ["--workflow-profile", str(REPO / "workflow" / "profiles" / profile)] if profile else []
    limit = ["--max-threads", str(max_threads)] if max_threads else []
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), *extra,
            "--cores", str(cores), *limit, *args]


def snakemake(workdir: Path, *args: str, check: bool = True, env: dict | None = None, cores: int = 2,
              profile: str | None = None, max_threads: int | None = 1) -> subprocess.CompletedProcess:
    """Run Snakemake in ``workdir``; ``check``: a failure raises with the tail of its output."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"} if env is None else env
    proc = subprocess.run(snakemake_cmd(*args, cores=cores, profile=profile, max_threads=max_threads), cwd=workdir,
                          capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def planned_jobs(workdir: Path, *args: str, cores: int = 2) -> tuple[dict[str, int], str]:
    """{rule: jobs} a dry run would execute (empty when everything is up to date), and its text."""
    out = snakemake(workdir, "-n", *args, cores=cores)
    text = out.stdout + out.stderr
    if "Nothing to be done" in text or "Job stats:" not in text:
        return {}, text
    stats = text[text.index("Job stats:"):]
    return {r: int(n) for r, n in re.findall(r"^(\w+)\s+(\d+)\s*$", stats, flags=re.M) if r != "total"}, text


def planned_rules(workdir: Path, *args: str) -> set[str]:
    """Rules a dry run would execute (empty when everything is up to date)."""
    return set(planned_jobs(workdir, *args)[0])


def ran_rules(text: str) -> set[str]:
    """Rules a run's log says it started."""
    return set(re.findall(r"^\s*(?:local)?rule (\w+):", text, flags=re.M))
