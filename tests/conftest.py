"""Shared fixtures: a tiny demo configuration and its generated dataset."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml

from vad_pipeline import config as C

REPO = Path(__file__).resolve().parents[1]
PED2_ROOT = Path(os.environ.get("VAD_PED2_ROOT", REPO.parent / "shared" / "datasets" / "ped2"))

# Small enough that the whole workflow runs in well under a minute on 2 cores.
TINY = {
    "demo": {"n_train": 2, "n_test": 2, "n_frames": 40, "height": 96, "width": 128, "n_walkers": 3},
    "model": {"width": 4},
    "train": {"epochs": 2, "batch_size": 32, "block": 256},
    "stc": {"size": 16, "chunk": 32},
}


@pytest.fixture(scope="session")
def base_config() -> dict:
    """config.yaml as shipped, validated (defaults filled)."""
    return C.load(REPO / "config.yaml")


@pytest.fixture()
def tiny_config(base_config, tmp_path) -> dict:
    """The shipped config with the demo shrunk and written under ``tmp_path``."""
    cfg = copy.deepcopy(base_config)
    cfg["datasets"]["demo"]["root"] = str(tmp_path / "resources" / "demo")
    cfg["datasets"]["demo"].pop("train", None)
    cfg["presets"]["cpu"] = C.deep_merge(cfg["presets"]["cpu"], {k: TINY[k] for k in ("model", "train")})
    for k in ("demo", "stc"):
        cfg[k] = C.deep_merge(cfg[k], TINY[k])
    return cfg


@pytest.fixture()
def tiny_resolved(tiny_config) -> dict:
    return C.resolve(tiny_config, "demo")


@pytest.fixture()
def tiny_demo(tiny_resolved) -> dict:
    """Generate the tiny demo dataset; returns the resolved config pointing at it."""
    from vad_pipeline.demo import generate

    generate(tiny_resolved["demo"], tiny_resolved["dataset"]["root"])
    return tiny_resolved


@pytest.fixture()
def workdir(tiny_config, tmp_path) -> Path:
    """A Snakemake working directory holding the tiny config (demo generated under it)."""
    wd = tmp_path / "run"
    wd.mkdir()
    tiny_config["datasets"]["demo"]["root"] = "resources/demo"
    write_config(tiny_config, wd / "config.yaml")
    return wd


@pytest.fixture()
def one_thread():
    """Tiny tensors: one torch thread is fastest, and much faster when other jobs share the cores."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def write_config(cfg: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def build_stcs(cfg: dict, tmp_path: Path, split: str = "train") -> tuple[str, list, list[str], list[str]]:
    """Detect, compute flow and build the STC file of one split of the (generated) demo."""
    from vad_pipeline.datasets import get_video, video_names
    from vad_pipeline.detect import detect_video
    from vad_pipeline.flow import flow_video
    from vad_pipeline.stc import build_split

    videos = [get_video(cfg, split, n) for n in video_names(cfg, split)]
    boxes, flows = [], []
    for v in videos:
        boxes.append(str(tmp_path / "boxes" / split / f"{v.name}.csv"))
        flows.append(str(tmp_path / "flow" / split / f"{v.name}.h5"))
        detect_video(v, cfg, boxes[-1])
        flow_video(v, cfg, flows[-1])
    out = str(tmp_path / "stc" / f"{split}.h5")
    build_split(videos, boxes, flows, cfg, out)
    return out, videos, boxes, flows
