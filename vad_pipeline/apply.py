"""A trained dataset applied to a batch of new footage: each video scored on its own against the
dataset's bundle (:mod:`vad_pipeline.bundle`), the batch's small gathers after.

A batch is a folder of video files or frame folders (``datasets.<name>.apply.<batch>.root``),
optionally with ``labels.csv`` (``video,start_frame,end_frame``) and ``cameras.csv``
(``video,camera``). :func:`assign` gives each video one of the trained cameras before any work;
:func:`video_terms` (rule apply_video) runs one video through detection, flow, cubes, the model's
S_f and S_p and the test side of S_m and S_c, exactly as the dataset's own test videos are run,
with the bundle's settings, model, references and layouts; :func:`gather` (rule apply_scores)
z-scores and fuses the batch's objects with the bundle's training statistics and weights, and
pools them into frame scores. Nothing of the training side runs again.
"""

from __future__ import annotations

import copy
import json
import logging
import tempfile
import time
from pathlib import Path

import pandas as pd

from vad_pipeline.io import VadError, read_csv, write_csv, write_json

log = logging.getLogger(__name__)

CAMERAS_CSV = "cameras.csv"
LABELS_CSV = "labels.csv"
PIECES = ("infer.csv", "motion.csv", "cells.csv")   # what one video's job writes
TIMING = "stage seconds:"   # the log line of each video's stage times
SIZE_TOLERANCE = 0.02   # a working frame size this close to the camera's layout is that size


def batch_config(settings: dict, dataset: str, batch: str, spec: dict, report: dict | None = None,
                 device: str | None = None) -> dict:
    """The settings a batch is scored with: the bundle's (``settings``), its footage read from the
    batch's root (``spec``: ``datasets.<dataset>.apply.<batch>``) as test videos of the internal
    ``batch`` layout; ``report`` and ``device`` (the current config's) where given."""
    cfg = copy.deepcopy(settings)
    ds = settings["dataset"]
    cfg["dataset"] = {"layout": "batch", "root": str(spec["root"]), "gt": None, "labelled": True,   # gt: LABELS_CSV if there
                      "allow_pickle": False, "fingerprint": spec.get("fingerprint", "content"), "frame_size": None,
                      "fps": spec.get("fps") or ds.get("fps"), "work_height": ds["work_height"]}
    cfg["name"] = f"{dataset}/apply/{batch}"
    if report is not None:
        cfg["report"] = copy.deepcopy(report)
    if device is not None:
        cfg["device"] = device
    return cfg


def sources(root: str | Path) -> dict[str, Path]:
    """{video: its file or frame folder} of a batch folder, in natural name order."""
    from vad_pipeline.datasets.layouts import videos_in
    from vad_pipeline.datasets.video import natural_key

    found = videos_in(Path(root), "videos of the batch")
    return {n: found[n] for n in sorted(found, key=natural_key)}


def assign(info: dict, names: list[str], root: str | Path, train_cameras: dict[str, str]) -> dict[str, str]:
    """{video: camera} of a batch's videos: from the batch's ``cameras.csv`` (rows of other videos
    ignored), else by the name's prefix where the dataset's cameras were, else the one camera the
    model has. ``info``: the bundle's manifest (its ``cameras``, ``camera_assign``);
    ``train_cameras``: {training video: camera}. A camera the model was not trained on, a video
    without one, or a video named as a training video of another camera is an error naming it."""
    from vad_pipeline.datasets.cameras import read_list
    from vad_pipeline.datasets.holdout import source_name

    trained = sorted(info["cameras"])
    train_cameras = {source_name(v): c for v, c in train_cameras.items()}   # a time block's video: its own name
    path = Path(root) / CAMERAS_CSV
    if path.is_file():
        listed = read_list(path)
        if missing := [n for n in names if n not in listed]:
            raise VadError(f"{path}: no camera for video {missing[0]} (list every video of the batch, video,camera)")
        out = {n: listed[n] for n in names}
    elif info["camera_assign"] == "prefix":
        out = {n: n.split("_", 1)[0] for n in names}
    elif len(trained) == 1:
        out = dict.fromkeys(names, trained[0])
    else:
        raise VadError(f"{root}: no {CAMERAS_CSV}, and the model knows several cameras ({', '.join(trained)}): "
                       f"list each video's camera in {path} (video,camera)")
    for video, cam in out.items():
        if cam not in info["cameras"]:
            raise VadError(f"{root}: video {video} is from camera {cam}, which the model of dataset {info['dataset']} "
                           f"was not trained on (its cameras: {', '.join(trained)})")
        if train_cameras.get(video, cam) != cam:
            raise VadError(f"{root}: video {video} has the name of a training video of camera {train_cameras[video]} "
                           f"but is assigned camera {cam}: rename it")
    return out


def check_size(info: dict, video, camera: str, work_height: int) -> None:
    """A video whose working frame size is not the one its camera's windows were laid out on
    (within :data:`SIZE_TOLERANCE`) is an error naming both: S_c's windows, references and the
    pixel settings are of that size."""
    from vad_pipeline.datasets.video import frame_size, work_size

    h, w = frame_size(video)
    wh, ww = work_size(h, w, work_height)
    lh, lw = info["cameras"][camera]["frame_size"]
    if abs(wh - lh) > SIZE_TOLERANCE * lh or abs(ww - lw) > SIZE_TOLERANCE * lw:
        raise VadError(f"{video.source}: frames of {h}x{w} (height x width; {wh}x{ww} at the working height "
                       f"{work_height}), but camera {camera} was trained on {lh}x{lw} working frames: another view "
                       "or aspect ratio than its windows and references; resize the footage or train on it")


def _part(groups: list[str], camera: str) -> str | None:
    """The reference a video of ``camera`` is scored against (one of the term's ``groups``)."""
    from vad_pipeline.datasets.cameras import ONE

    return None if groups == [ONE] else camera


def video_terms(bundle: str, cfg: dict, video: str, camera: str, out: str, threads: int = 1) -> None:
    """One batch video's raw terms into the folder ``out`` (``PIECES``): the model's S_f and S_p per
    object (infer.csv), S_m per object (motion.csv), S_c per frame (cells.csv), each the test side
    of the term against the bundle's training references, as the dataset's own test videos get
    them. Detections, flow and cubes stay in a scratch folder."""
    from vad_pipeline import bundle as B
    from vad_pipeline import object_motion as M
    from vad_pipeline import windows as W
    from vad_pipeline.datasets import get_video
    from vad_pipeline.detect import detect_video
    from vad_pipeline.flow import flow_video
    from vad_pipeline.infer import infer
    from vad_pipeline.stc import build_split

    info = B.manifest(bundle)
    pv = get_video(cfg, "test", video)
    check_size(info, pv, camera, int(cfg["dataset"]["work_height"]))
    cameras = {**B.train_cameras(bundle), video: camera}
    folder, b = Path(out), Path(bundle)
    folder.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}

    def timed(stage, fn, *args, **kwargs):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        seconds[stage] = round(time.perf_counter() - start, 3)
        return result

    with tempfile.TemporaryDirectory(prefix="vad-apply-") as work:
        work = Path(work)
        det, flow, cubes = work / f"{video}.csv", work / f"{video}.h5", work / "stc.h5"
        timed("detect", detect_video, pv, cfg, str(det))
        scratch = copy.deepcopy(cfg)
        scratch["flow"]["compression"] = 0   # a scratch file read once: the same values, not compressed
        timed("flow", flow_video, pv, scratch, str(flow))
        timed("stc", build_split, [pv], [str(det)], [str(flow)], cfg, str(cubes), part=True)
        n_cubes = len(timed("infer", infer, str(b / "model.pt"), str(cubes), str(folder / "infer.csv"), cfg, threads))
        features = timed("motion_features", M.object_features, str(flow), str(det), video, cfg["motion"])
        write_csv(work / "features.csv", features)
        _, s_m = timed("S_m", M.TERM.parts, str(b / "features_train.csv"), str(work / "features.csv"), cfg, cameras,
                       camera=_part(M.jobs(cfg, cameras), camera), threads=threads, training=False)
        write_csv(folder / "motion.csv", M.TERM.combine([s_m]))
        timed("cell_stats", W.split_stats, [str(flow)], str(b / "layout.json"), str(work / "cells.h5"), cfg["cells"],
              cameras)
        layouts = list(W.read_layout(str(b / "layout.json"))["cameras"])   # [ONE]: one layout for every camera
        _, s_c = timed("S_c", W.TERM.parts, str(b / "cell_stats_train.h5"), str(work / "cells.h5"), cfg, cameras,
                       camera=_part(layouts, camera), threads=threads, training=False)
        write_csv(folder / "cells.csv", W.TERM.combine([s_c]))
    # one line a benchmark reads (benchmarks/bench_apply.py): where a video's time goes
    log.info("%s %s", TIMING, json.dumps({"video": video, "frames": pv.n_frames, "cubes": n_cubes, "seconds": seconds}))
    log.info("%s: video %s of camera %s scored", out, video, camera)


def _concat(parts: list[str], name: str, columns: list[str]) -> pd.DataFrame:
    frames = [read_csv(Path(p) / name, columns) for p in parts]
    return pd.concat(frames, ignore_index=True).astype({"video": str})


def gather(bundle: str, cfg: dict, parts: list[str], cameras: dict[str, str], out: dict[str, str]) -> pd.DataFrame:
    """The batch's gathers from its videos' ``parts`` (folders of :func:`video_terms`, in the
    batch's order): ``out`` names the files: ``labels`` (one row per frame, -1 without ground
    truth), ``summary`` (gt_summary.json: frames, fps, sizes), ``cells`` (S_c of every frame),
    ``objects`` (object_scores.csv: z-scored with the bundle's training statistics and fused with
    its weights), ``frames`` (frame_scores.csv) and ``settings`` (the batch's settings, for the
    report rules). Returns the frame scores."""
    from vad_pipeline import bundle as B
    from vad_pipeline.datasets import frame_labels, get_video, gt_summary
    from vad_pipeline.evaluate import labels_table, write_frame_scores
    from vad_pipeline.fusion import fuse
    from vad_pipeline.object_motion import TERM as S_M
    from vad_pipeline.stc import INDEX
    from vad_pipeline.windows import COLUMNS

    names = [Path(p).name for p in parts]
    videos = [get_video(cfg, "test", n) for n in names]
    labels = frame_labels(cfg, videos)
    write_csv(out["labels"], labels_table(videos, labels))
    write_json(out["summary"], gt_summary(cfg, videos, labels))
    write_csv(out["cells"], _concat(parts, "cells.csv", COLUMNS))
    cams = {**B.train_cameras(bundle), **cameras}
    weights = B.weights_path(bundle)
    b = Path(bundle)
    with tempfile.TemporaryDirectory(prefix="vad-apply-") as work:
        infer_csv, motion_csv = Path(work) / "infer.csv", Path(work) / "motion.csv"
        write_csv(infer_csv, _concat(parts, "infer.csv", INDEX + ["s_f", "s_p"]))
        write_csv(motion_csv, _concat(parts, "motion.csv", list(S_M.columns)))
        fuse(str(b / "infer_train.csv"), str(infer_csv), out["objects"], cfg, out.get("stats"),
             motion=(str(b / "motion_train.csv"), str(motion_csv)), cameras=cams, weights=weights)
    frames = write_frame_scores(out["objects"], out["labels"], out["frames"], cfg,
                                (str(b / "cells_train.csv"), out["cells"]), cams, weights)
    write_json(out["settings"], cfg)
    log.info("%s: %d videos, %d frames scored with the bundle %s", cfg["name"], len(names), len(frames), bundle)
    return frames
