"""Detection backend ``mmdet`` (the papers' path, GPU when present): an MMDetection 3 detector
(default Cascade R-CNN R101-FPN, COCO) from a local config and checkpoint, batched; detections are
filtered by score, area and overlap as the seeds' reference methods do, then united with the
foreground boxes of blurred frame differences that no detection covers.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch

from vad_pipeline.accel import Batcher, load_state, pick_device
from vad_pipeline.datasets import Video, iter_frames
from vad_pipeline.detect import COLUMNS
from vad_pipeline.detect.motion import _prep, box_area, difference_boxes, filter_overlaps, uncovered
from vad_pipeline.io import VadError
from vad_pipeline.progress import Progress


def filter_detections(det: np.ndarray, p: dict) -> np.ndarray:
    """Detections (N, 6: x1, y1, x2, y2, score, label) -> those with score >= score_threshold and
    area >= min_area, then, by decreasing score, without boxes covered more than max_overlap by
    a kept one."""
    det = det[(det[:, 4] >= p["score_threshold"]) & (box_area(det) >= p["min_area"])]
    return filter_overlaps(det, p["max_overlap"], priority=det[:, 4])


MMDET_DEFAULT_CONFIG = "configs/cascade_rcnn/cascade-rcnn_r101_fpn_1x_coco.py"


def mmdet_config_path(config: str) -> str:
    """A config file path; empty means mmdet's own Cascade R-CNN R101-FPN COCO config."""
    if config:
        if not Path(config).is_file():
            raise VadError(f"config detect.mmdet.config: no file at {config!r}")
        return config
    import mmdet

    path = Path(mmdet.__file__).parent / ".mim" / MMDET_DEFAULT_CONFIG
    if not path.is_file():
        raise VadError(f"mmdet {mmdet.__version__} does not ship {MMDET_DEFAULT_CONFIG}; set detect.mmdet.config")
    return str(path)


class MMDetector:
    """An MMDetection 3 detector on batches of BGR frames -> (N, 6) arrays per frame."""

    def __init__(self, p: dict):
        try:
            from mmcv.transforms import Compose
            from mmdet.apis import init_detector
            from mmdet.utils import get_test_pipeline_cfg
        except ImportError as e:
            raise VadError(
                f"detect.backend mmdet needs MMDetection 3 and mmcv 2 (pip install -e '.[mmdet]', "
                f"README 'Reproduce the papers'): {e}"
            ) from e
        device = pick_device(p["device"])
        cfg_path = mmdet_config_path(p["config"])
        try:
            # no checkpoint here: init_detector would load it with a full unpickler (and warn
            # that it falls back to COCO class names); load_state below reads it weights-only
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="checkpoint is None")
                model = init_detector(cfg_path, checkpoint=None, device="cpu")
        except Exception as e:  # noqa: BLE001 - a config that mmdet cannot build, whatever the reason
            raise VadError(f"{cfg_path}: mmdet cannot build a detector from this config: {e}") from e
        meta: dict = {}
        self.model = load_state(model, p["checkpoint"], "MMDetection detector", "detect.mmdet.checkpoint", meta)
        self.model.to(device).eval()
        steps = [dict(t) for t in get_test_pipeline_cfg(model.cfg) if t["type"].split(".")[-1] != "LoadAnnotations"]
        steps[0]["type"] = "mmdet.LoadImageFromNDArray"
        self.pipeline = Compose(steps)
        # class names: the checkpoint's (mmdet 3: dataset_meta, mmdet 2: CLASSES), else the config's
        names = meta.get("dataset_meta", {}).get("classes") or meta.get("CLASSES")
        self.classes = tuple(names or (model.dataset_meta or {}).get("classes", ()))

    def class_name(self, label: int) -> str:
        return self.classes[label] if 0 <= label < len(self.classes) else str(label)

    @torch.inference_mode()
    def __call__(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        from mmengine.dataset import pseudo_collate

        batch = pseudo_collate([self.pipeline({"img": f, "img_id": i}) for i, f in enumerate(frames)])
        out = []
        for res in self.model.test_step(batch):
            inst = res.pred_instances
            out.append(np.concatenate([
                inst.bboxes.float().cpu().numpy().reshape(-1, 4),
                inst.scores.float().cpu().numpy().reshape(-1, 1),
                inst.labels.cpu().numpy().reshape(-1, 1).astype(np.float64),
            ], axis=1).astype(np.float64))
        return out


def _batches(video: Video, n: int):
    batch: list[tuple[int, np.ndarray]] = []
    for t, frame in enumerate(iter_frames(video)):
        batch.append((t, frame))
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


def detect_mmdet(video: Video, p: dict, detector: MMDetector | None = None) -> pd.DataFrame:
    detector = detector or MMDetector(p)
    batcher = Batcher(p["batch_size"], f"detect {video.source}")
    fg_p = {**p["foreground"], "max_area_frac": 0.5}
    rows, prev = [], None
    progress = Progress(f"detect {video.split}/{video.name}", video.n_frames, "frames")
    for batch in _batches(video, max(1, p["batch_size"])):
        dets = batcher(detector, [f for _, f in batch])
        for (t, frame), det in zip(batch, dets):
            h, w = frame.shape[:2]
            det = filter_detections(det, p)
            det[:, [0, 2]] = det[:, [0, 2]].clip(0, w)
            det[:, [1, 3]] = det[:, [1, 3]].clip(0, h)
            rows += [(t, *np.round(d[:4]).astype(int), round(float(d[4]), 4), detector.class_name(int(d[5])))
                     for d in det]
            if p["foreground"]["enabled"]:
                cur = _prep(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), p["foreground"]["blur"])
                extra = uncovered(difference_boxes(cur, prev, fg_p), det, p["max_overlap"])
                rows += [(t, *b[:4].astype(int), round(float(b[4]), 4), "foreground") for b in extra]
                prev = cur
        progress.update(len(batch))
    df = pd.DataFrame(rows, columns=COLUMNS)
    return df[(df.x2 > df.x1) & (df.y2 > df.y1)].reset_index(drop=True)
