"""Shared fixtures: a tiny demo configuration and its generated dataset."""

from __future__ import annotations

import atexit
import copy
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml

from vad_pipeline import config as C

REPO = Path(__file__).resolve().parents[1]
PED2_ROOT = Path(os.environ.get("VAD_PED2_ROOT", REPO.parent / "shared" / "datasets" / "ped2"))

CONFIGS = Path(__file__).with_name("configs")


def tiny_overlay() -> dict:
    """tests/configs/tiny.yaml: what the tiny demo changes in config.yaml."""
    return yaml.safe_load((CONFIGS / "tiny.yaml").read_text())


@pytest.fixture(scope="session")
def base_config() -> dict:
    """config.yaml as shipped, validated (defaults filled)."""
    return C.load(REPO / "config.yaml")


@pytest.fixture()
def tiny_config(base_config, tmp_path) -> dict:
    """The shipped config with the demo shrunk (tests/configs/tiny.yaml) and written under ``tmp_path``."""
    cfg = copy.deepcopy(base_config)
    cfg["datasets"]["demo"]["root"] = str(tmp_path / "resources" / "demo")
    cfg["datasets"]["demo"].pop("presets", None)  # the demo's 8 epochs: the tiny preset's instead
    return C.deep_merge(cfg, tiny_overlay())


@pytest.fixture()
def tiny_resolved(tiny_config) -> dict:
    return C.resolve(tiny_config, "demo")


@pytest.fixture(scope="session")
def demo_source(base_config, tmp_path_factory) -> dict:
    """The tiny demo dataset, generated once for the session (read it, never write into it)."""
    from vad_pipeline.demo import generate

    cfg = copy.deepcopy(base_config)
    cfg["datasets"]["demo"]["root"] = str(tmp_path_factory.mktemp("demo_source") / "demo")
    cfg["datasets"]["demo"].pop("presets", None)
    resolved = C.resolve(C.deep_merge(cfg, tiny_overlay()), "demo")
    generate(resolved["demo"], resolved["dataset"]["root"])
    return resolved


@pytest.fixture()
def tiny_demo(demo_source) -> dict:
    """The resolved tiny demo config pointing at the session's generated dataset (a copy each test
    may change; the dataset's files are shared: a test that changes them makes its own)."""
    return copy.deepcopy(demo_source)


@pytest.fixture(scope="session")
def demo_run(base_config, tmp_path_factory) -> Path:
    """The tiny demo with 3 training videos (leave-one-video-out, as Ped2, Avenue and the full
    demo take) run once through auc.json, benchmark.json and the HTML report. Tests read it;
    a test that changes it works on :func:`copy_run` of it."""
    from tests.smk import snakemake

    wd = tmp_path_factory.mktemp("demo_run")
    cfg = copy.deepcopy(base_config)
    cfg["datasets"]["demo"]["root"] = "resources/demo"
    cfg["datasets"]["demo"].pop("presets", None)
    cfg = C.deep_merge(cfg, {**tiny_overlay(), "demo": {**tiny_overlay()["demo"], "n_train": 3}})
    write_config(cfg, wd / "config.yaml")
    snakemake(wd, "results/demo/auc.json", "results/demo/benchmark.json")
    snakemake(wd, "--report", "results/demo/report.html", "results/demo/auc.json")
    return wd


@pytest.fixture(scope="session")
def validation_run(base_config, tmp_path_factory) -> Path:
    """The tiny demo with 3 training videos of 240 frames: fewer than validation.min_videos, so
    the last half of 2 of them is held out as time blocks (01+120-239, 03+120-239), validated,
    weights chosen (score.weights: auto), run through auc.json."""
    from tests.smk import snakemake

    wd = tmp_path_factory.mktemp("validation_run")
    cfg = copy.deepcopy(base_config)
    cfg["datasets"]["demo"]["root"] = "resources/demo"
    cfg["datasets"]["demo"].pop("presets", None)
    cfg = C.deep_merge(cfg, {**tiny_overlay(), "demo": {**tiny_overlay()["demo"], "n_train": 3, "n_frames": 240},
                                     "validation": {"block": 0.5}})
    write_config(cfg, wd / "config.yaml")
    snakemake(wd, "results/demo/auc.json")
    return wd


def copy_run(src: Path, dst: Path) -> Path:
    """A copy of a finished run (times kept, so Snakemake sees it as finished) to change freely."""
    shutil.copytree(src, dst, symlinks=True)
    return dst


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


_BUILT = Path(tempfile.mkdtemp(prefix="vad-tests-stc-"))   # build_stcs' results, once per input
atexit.register(shutil.rmtree, _BUILT, True)


def build_stcs(cfg: dict, tmp_path: Path, split: str = "train", cached: bool = True
               ) -> tuple[str, list, list[str], list[str]]:
    """Detect, compute flow and build the STC file of one split of the (generated) demo, under
    ``tmp_path`` (boxes/, flow/, stc/). Built once per dataset, split and settings in a session,
    then copied: each caller has files of its own to change (``cached`` False: built afresh, for
    what the building logs)."""
    from vad_pipeline.datasets import get_video, video_names
    from vad_pipeline.detect import detect_video
    from vad_pipeline.flow import flow_video
    from vad_pipeline.stc import build_split

    def build(where: Path) -> None:
        for v in videos:
            detect_video(v, cfg, str(where / "boxes" / split / f"{v.name}.csv"))
            flow_video(v, cfg, str(where / "flow" / split / f"{v.name}.h5"))
        build_split(videos, [str(where / "boxes" / split / f"{v.name}.csv") for v in videos],
                    [str(where / "flow" / split / f"{v.name}.h5") for v in videos], cfg, str(where / "stc" / f"{split}.h5"))

    videos = [get_video(cfg, split, n) for n in video_names(cfg, split)]
    if not cached:
        build(tmp_path)
    else:
        used = {k: cfg.get(k) for k in ("dataset", "demo", "detect", "flow", "stc")}
        built = _BUILT / hashlib.sha1(json.dumps([split, used], sort_keys=True, default=str).encode()).hexdigest()[:16]
        if not built.is_dir():
            work = built.with_name(f"{built.name}.part")
            shutil.rmtree(work, ignore_errors=True)
            build(work)
            work.rename(built)
        shutil.copytree(built, tmp_path, dirs_exist_ok=True)
    boxes = [str(tmp_path / "boxes" / split / f"{v.name}.csv") for v in videos]
    flows = [str(tmp_path / "flow" / split / f"{v.name}.h5") for v in videos]
    return str(tmp_path / "stc" / f"{split}.h5"), videos, boxes, flows


@pytest.fixture(scope="session")
def flownet2_weights(tmp_path_factory) -> Path:
    """Randomly initialised FlowNet2 weights, saved the way NVIDIA's checkpoint is."""
    import torch

    from vad_pipeline.flow.flownet2 import FlowNet2

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("flownet2") / "FlowNet2_checkpoint.pth.tar"
    torch.save({"epoch": 0, "best_EPE": 0.0, "state_dict": FlowNet2().state_dict()}, path)
    return path


@pytest.fixture(scope="session")
def mmdet_small(tmp_path_factory) -> tuple[Path, Path]:
    """(config, checkpoint) of a small, randomly initialised Cascade R-CNN: mmdet's own R50 config
    with a narrow ResNet-18, test images resized to 128 px and no score floor, so that random
    weights still give a few detections per frame."""
    pytest.importorskip("mmdet", reason="the mmdet extra is not installed (pip install -e '.[mmdet]')")
    import mmdet
    import torch
    from mmdet.apis import init_detector
    from mmengine.config import Config

    base = Path(mmdet.__file__).parent / ".mim" / "configs" / "cascade_rcnn" / "cascade-rcnn_r50_fpn_1x_coco.py"
    cfg = Config.fromfile(str(base))
    width = 8
    cfg.model.backbone.update(depth=18, base_channels=width, init_cfg=None)
    cfg.model.neck.update(in_channels=[width, 2 * width, 4 * width, 8 * width], out_channels=16)
    cfg.model.rpn_head.update(in_channels=16, feat_channels=16)
    cfg.model.roi_head.bbox_roi_extractor.out_channels = 16
    for head in cfg.model.roi_head.bbox_head:
        head.update(in_channels=16, fc_out_channels=32)
    cfg.model.test_cfg.rcnn.update(score_thr=0.0, max_per_img=5)
    for step in cfg.test_dataloader.dataset.pipeline:
        if step["type"] == "Resize":
            step["scale"] = (128, 128)
    d = tmp_path_factory.mktemp("mmdet")
    cfg.dump(str(d / "small_cascade_rcnn.py"))
    torch.manual_seed(0)
    model = init_detector(str(d / "small_cascade_rcnn.py"), checkpoint=None, device="cpu")
    meta = {"dataset_meta": {"classes": list(model.dataset_meta["classes"])}, "mmdet_version": mmdet.__version__}
    torch.save({"meta": meta, "state_dict": model.state_dict()}, d / "small_cascade_rcnn.pth")
    return d / "small_cascade_rcnn.py", d / "small_cascade_rcnn.pth"


@pytest.fixture()
def capture_calls(monkeypatch) -> dict:
    """What the video captures opened from here on do, counted: ``open``, ``grab`` (a frame
    decoded and skipped) and ``read`` (a frame decoded and converted): how much a reader decodes."""
    from vad_pipeline.datasets import video as V

    calls = {"open": 0, "grab": 0, "read": 0}
    real = V._open

    class Counting:
        def __init__(self, cap):
            calls["open"] += 1
            self.cap = cap

        def grab(self):
            calls["grab"] += 1
            return self.cap.grab()

        def read(self):
            calls["read"] += 1
            return self.cap.read()

        def __getattr__(self, name):   # get, release, ...: the capture's own
            return getattr(self.cap, name)

    monkeypatch.setattr(V, "_open", lambda path: Counting(real(path)))
    return calls
