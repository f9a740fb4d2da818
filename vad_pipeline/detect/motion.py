"""Object detection per video, written as a CSV table: frame, x1, y1, x2, y2, score, class
(x2/y2 exclusive).

Backend ``motion`` (weight-free, CPU): foreground = (|frame - median background| >
diff_threshold) OR (|frame - previous| > frame_diff_threshold), cleaned by morphology; each
connected component large enough is a box.

Backend ``mmdet`` (the papers' path, GPU when present): an MMDetection 3 detector (default
Cascade R-CNN R101-FPN, COCO) from a local config and checkpoint, batched; detections are
filtered by score, area and overlap as the seeds' reference methods do, then united with the
foreground boxes of blurred frame differences that no detection covers.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from vad_pipeline.accel import Batcher, load_state, pick_device
from vad_pipeline.datasets import Video, iter_frames, read_frame
from vad_pipeline.io import VadError, write_csv

COLUMNS = ["frame", "x1", "y1", "x2", "y2", "score", "class"]


def median_background(video: Video, n: int, blur: int) -> np.ndarray:
    """Per-pixel median of ``n`` frames spread over the video (grey, float32)."""
    idx = set(np.linspace(0, video.n_frames - 1, min(n, video.n_frames)).astype(int).tolist())
    if video.file is None:  # image files: read only the sampled ones
        frames = (read_frame(video.frames[i], gray=True) for i in sorted(idx))
    else:  # a container is decoded as a stream; keep the sampled frames
        frames = (g for t, g in enumerate(iter_frames(video, gray=True)) if t in idx)
    return np.median(np.stack([_prep(g, blur) for g in frames]), axis=0)


def _prep(gray: np.ndarray, blur: int) -> np.ndarray:
    g = gray.astype(np.float32)
    return cv2.GaussianBlur(g, (blur, blur), 0) if blur > 1 else g


def _kernel(k: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))


def foreground_mask(frame: np.ndarray, prev: np.ndarray | None, bg: np.ndarray, p: dict) -> np.ndarray:
    """Binary foreground (uint8 0/1) of one preprocessed grey frame."""
    fg = np.abs(frame - bg) > p["diff_threshold"]
    if prev is not None and p["frame_diff_threshold"] > 0:
        fg |= np.abs(frame - prev) > p["frame_diff_threshold"]
    fg = fg.astype(np.uint8)
    if p["open_kernel"] > 1:
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, _kernel(p["open_kernel"]))
    if p["close_kernel"] > 1:
        fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, _kernel(p["close_kernel"]))
    if p["dilate"] > 0:
        fg = cv2.dilate(fg, _kernel(2 * p["dilate"] + 1))
    return fg


def boxes_from_mask(fg: np.ndarray, p: dict) -> np.ndarray:
    """Connected components -> (N, 5) array x1, y1, x2, y2, fill ratio, area-filtered and padded."""
    h, w = fg.shape
    n, _, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    out = []
    for x, y, bw, bh, area in stats[1:n]:
        if area < p["min_area"] or area > p["max_area_frac"] * h * w:
            continue
        pad = p["pad"]
        out.append((max(0, x - pad), max(0, y - pad), min(w, x + bw + pad), min(h, y + bh + pad), area / (bw * bh)))
    return np.asarray(out, dtype=np.float64).reshape(-1, 5)


def box_area(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def covered_fraction(box: np.ndarray, others: np.ndarray) -> float:
    """The largest fraction of ``box`` that lies inside any one of ``others`` (0 if none)."""
    if len(others) == 0:
        return 0.0
    iw = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    ih = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    return float((iw * ih).max() / max((box[2] - box[0]) * (box[3] - box[1]), 1e-9))


def filter_overlaps(boxes: np.ndarray, max_overlap: float, priority: np.ndarray | None = None) -> np.ndarray:
    """Visit boxes by decreasing ``priority`` (default: area) and drop one when more than
    ``max_overlap`` of it lies inside an already kept box; the kept rows stay in input order."""
    if len(boxes) == 0:
        return boxes
    priority = box_area(boxes) if priority is None else priority
    kept: list[int] = []
    for i in np.argsort(-priority, kind="stable"):
        if covered_fraction(boxes[i], boxes[kept]) <= max_overlap:
            kept.append(int(i))
    return boxes[sorted(kept)]


def detect_motion(video: Video, p: dict) -> pd.DataFrame:
    bg = median_background(video, p["background_frames"], p["blur"])
    rows, prev = [], None
    for t, gray in enumerate(tqdm(iter_frames(video, gray=True), total=video.n_frames,
                                  desc=f"detect {video.split}/{video.name}", leave=False)):
        cur = _prep(gray, p["blur"])
        boxes = filter_overlaps(boxes_from_mask(foreground_mask(cur, prev, bg, p), p), p["max_overlap"])
        rows += [(t, *b[:4].astype(int), round(float(b[4]), 4), "motion") for b in boxes]
        prev = cur
    return pd.DataFrame(rows, columns=COLUMNS)


def filter_detections(det: np.ndarray, p: dict) -> np.ndarray:
    """Detections (N, 6: x1, y1, x2, y2, score, label) -> those with score >= score_threshold and
    area >= min_area, then, by decreasing score, without boxes covered more than max_overlap by
    a kept one."""
    det = det[(det[:, 4] >= p["score_threshold"]) & (box_area(det) >= p["min_area"])]
    return filter_overlaps(det, p["max_overlap"], priority=det[:, 4])


def difference_boxes(cur: np.ndarray, prev: np.ndarray | None, p: dict) -> np.ndarray:
    """Foreground boxes (N, 5) of |cur - prev| > diff_threshold on blurred grey frames."""
    if prev is None:
        return np.zeros((0, 5))
    fg = (np.abs(cur - prev) > p["diff_threshold"]).astype(np.uint8)
    return boxes_from_mask(fg, {"min_area": p["min_area"], "max_area_frac": p["max_area_frac"], "pad": 0})


def uncovered(fg: np.ndarray, det: np.ndarray, max_overlap: float) -> np.ndarray:
    """The foreground boxes that no detection covers by more than ``max_overlap``."""
    keep = [covered_fraction(b, det) <= max_overlap for b in fg]
    return fg[np.asarray(keep, bool)] if len(fg) else fg


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
    bar = tqdm(total=video.n_frames, desc=f"detect {video.split}/{video.name}", leave=False)
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
        bar.update(len(batch))
    bar.close()
    df = pd.DataFrame(rows, columns=COLUMNS)
    return df[(df.x2 > df.x1) & (df.y2 > df.y1)].reset_index(drop=True)


BACKENDS: dict[str, Callable[[Video, dict], pd.DataFrame]] = {
    "motion": lambda v, cfg: detect_motion(v, cfg["motion"]),
    "mmdet": lambda v, cfg: detect_mmdet(v, cfg["mmdet"]),
}


def detect_video(video: Video, cfg: dict, out: str) -> pd.DataFrame:
    """Run the configured backend on one video and write its box table atomically."""
    backend = cfg["detect"]["backend"]
    if backend not in BACKENDS:
        raise VadError(f"config: detect.backend {backend!r} is not available (have {sorted(BACKENDS)})")
    df = BACKENDS[backend](video, cfg["detect"])
    if df.empty and not cfg["detect"]["allow_empty"]:
        raise VadError(
            f"{video.source}: no object detected in any of the {video.n_frames} frames; "
            "lower detect.motion thresholds or set detect.allow_empty: true"
        )
    write_csv(out, df)
    return df


def boxes_by_frame(df: pd.DataFrame) -> dict[int, np.ndarray]:
    return {int(t): g[["x1", "y1", "x2", "y2"]].to_numpy(int) for t, g in df.groupby("frame")}


