"""Label-free validation: pseudo-anomalies made from held-out training videos, scored by every term
as the workflow scores test videos, and the fusion weights chosen from that table.

The held-out videos (:mod:`vad_pipeline.datasets.holdout`) are no training videos: the model, the
S_m and S_c references and every z-statistic are made without them. :func:`video_terms` (rule
validation_video) turns one of them into a pseudo-anomalous video (:mod:`vad_pipeline.pseudo`: a
segment of each ``validation.kinds``) and runs the stages on it with the dataset's settings, the
trained model and layout: detection, flow, cubes, the model's S_f and S_p, S_m's features and
S_c's window statistics. :func:`choose` (rule validation) scores S_m and S_c against the training
references, z-scores and pools every term with :func:`vad_pipeline.fusion.fuse` and
:func:`vad_pipeline.evaluate.frame_scores`, and writes the table: per camera, term and kind the AUC
of the kind's frames against the normal frames, and how far the normal level moves from video to
video. The weights (``score.weights: auto``) follow a rule fixed in advance: of every combination
of ``validation.grid`` values (largest weight 1), the best mean AUC over the kinds; within
``validation.tolerance`` of it, the closest to equal weights. Per camera where the camera has
held-out videos; the others take the choice over all of them. No test frame or label is read.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from vad_pipeline.io import VadError, read_csv, write_csv, write_json

log = logging.getLogger(__name__)

WEIGHTS = ("w_f", "w_p", "w_m", "w_c")
TERM_OF = {"w_f": "score_f", "w_p": "score_p", "w_m": "score_m", "w_c": "score_c"}   # weight -> frame column
CUBE = 4   # the frames before its own a cube holds
PIECES = ("infer.csv", "features.csv", "cells.h5", "frames.csv")   # what one held-out video's job writes


def guard(cfg: dict) -> int:
    """Frames after a segment that are neither normal nor anomalous: as many as any term looks back
    (a cube's frames, S_m's and S_c's pooling windows), so that no normal frame holds a pseudo-anomaly."""
    return max(CUBE, int(cfg["motion"]["frames"]), int(cfg["cells"]["frames"]))


def fixed(cfg: dict) -> dict[str, float]:
    """The fixed weights of ``score`` (w_f, w_p, w_m, w_c; those a stage is given)."""
    return {w: float(cfg["score"][w]) for w in WEIGHTS if w in cfg["score"]}


def weights_for(cfg: dict, path: str | None) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """(the weights of every camera not named, {camera: its weights}): with a validation's ``path``
    (weights.json, given where ``score.weights`` is auto) its choice, else the fixed weights."""
    if not path or cfg["score"]["weights"] != "auto":
        return fixed(cfg), {}
    try:
        chosen = json.loads(Path(path).read_text())
        return chosen["default"], chosen["cameras"]
    except (OSError, ValueError, KeyError) as exc:
        raise VadError(f"{path}: not a validation's weights file ({exc}); rerun the validation rule") from exc


def per_row(cameras: pd.Series, default: dict, per_camera: dict, key: str) -> np.ndarray:
    """Weight ``key`` of each row, by the row's camera."""
    return cameras.map(lambda c: per_camera.get(str(c), default)[key]).to_numpy(float)


# --- one held-out video (rule validation_video) ---------------------------------------------------------------


def _patch(cfg: dict, boxes: dict[str, str], video: str, seed: int) -> tuple[np.ndarray | None, tuple[int, int]]:
    """A crop of an object of another training video (a box of median area: an ordinary object out
    of its place) and the median object size (h, w) of the training boxes; (None, size) without boxes."""
    from vad_pipeline.datasets import get_video, read_frames

    tables = {v: read_csv(p, ["frame", "x1", "y1", "x2", "y2"]) for v, p in boxes.items() if v != video}
    tables = {v: t for v, t in tables.items() if len(t)}
    if not tables:
        return None, (24, 16)
    every = pd.concat(tables.values())
    h, w = (every["y2"] - every["y1"]).to_numpy(), (every["x2"] - every["x1"]).to_numpy()
    size = (max(8, int(np.median(h))), max(8, int(np.median(w))))
    rng = np.random.default_rng(seed)
    source = sorted(tables)[int(rng.integers(len(tables)))]
    t = tables[source]
    area = ((t["y2"] - t["y1"]) * (t["x2"] - t["x1"])).to_numpy()
    row = t.iloc[int(np.argmin(np.abs(area - np.median(area))))]
    frame = read_frames(get_video(cfg, "train", source), [int(row["frame"])])[int(row["frame"])]
    crop = frame[int(row["y1"]) : int(row["y2"]), int(row["x1"]) : int(row["x2"])]
    return (crop.copy() if crop.size else None), size


def _write_pseudo(cfg: dict, video: str, boxes: dict[str, str], folder: Path) -> pd.DataFrame:
    """The pseudo-anomalous version of held-out ``video`` as PNG frames (lossless: its normal frames
    are the source's) in ``folder``; its frame table (video, frame, label, kind)."""
    from vad_pipeline import pseudo
    from vad_pipeline.datasets import get_video
    from vad_pipeline.datasets.video import Reader
    from vad_pipeline.progress import Progress

    p = cfg["validation"]
    source = get_video(cfg, "holdout", video)
    n = min(source.n_frames, int(p["max_frames"]))
    try:
        src, labels, kinds, segments = pseudo.plan(n, p["kinds"], float(p["segment"]), guard(cfg))
    except ValueError as exc:
        raise VadError(f"{source.source}: held-out video {video} cannot take the pseudo-anomalies ({exc}); use fewer "
                       "validation.kinds, a larger validation.min_block (time blocks), or validation.videos: 0 for "
                       "this dataset") from exc
    seed = int(cfg.get("seed", 0)) * 7919 + sum(map(ord, video))
    patch, size = _patch(cfg, boxes, video, seed)
    folder.mkdir(parents=True, exist_ok=True)
    progress = Progress(f"pseudo-anomalies of {video}", len(src), "frames")
    with Reader(source) as read:   # a long video, or a block far into one, decoded once
        for i, frame in enumerate(pseudo.render(read, src, segments, patch, size, seed)):
            cv2.imwrite(str(folder / f"{i:05d}.png"), frame)   # BGR, as read_frames gives them
            progress.update()
    return pd.DataFrame({"video": video, "frame": np.arange(len(src)), "label": labels.astype(int),
                         "kind": kinds, "source_frame": src})


def video_terms(cfg: dict, video: str, model: str, layout: str, boxes: dict[str, str], out: str,
                threads: int = 1) -> None:
    """The raw terms of held-out ``video`` made pseudo-anomalous, into the folder ``out`` (``PIECES``):
    the model's S_f, S_p per object (infer.csv), S_m's features (features.csv), S_c's window
    statistics (cells.h5) and the frames' labels and kinds (frames.csv). ``boxes``: {training video:
    its detections} (the pasted objects' source); the stages as the workflow runs them on a test video."""
    from vad_pipeline.datasets import get_video
    from vad_pipeline.datasets.cameras import cameras_of
    from vad_pipeline.detect import detect_video
    from vad_pipeline.flow import flow_video
    from vad_pipeline.infer import infer
    from vad_pipeline.object_motion import object_features
    from vad_pipeline.stc import build_split
    from vad_pipeline.windows import split_stats

    camera = cameras_of(cfg, [video], "train")[video]
    tmp_out = Path(out)   # each piece is written atomically (write_csv, split_stats)
    with tempfile.TemporaryDirectory(prefix="vad-validation-") as work:
        work = Path(work)
        frames = _write_pseudo(cfg, video, boxes, work / "testing" / "frames" / video)
        # the pseudo video as a test video of a frames-layout dataset: read as every test video is
        vcfg = copy.deepcopy(cfg)
        vcfg["dataset"].update(layout="frames", root=str(work), gt=None, labelled=False)
        pv = get_video(vcfg, "test", video)
        det, flow, cubes = work / f"{video}.csv", work / f"{video}.h5", work / "stc.h5"
        detect_video(pv, vcfg, str(det))
        flow_video(pv, vcfg, str(flow))
        build_split([pv], [str(det)], [str(flow)], vcfg, str(cubes))
        infer(model, str(cubes), str(tmp_out / "infer.csv"), vcfg, threads)
        write_csv(tmp_out / "features.csv", object_features(str(flow), str(det), video, cfg["motion"]))
        split_stats([str(flow)], layout, str(tmp_out / "cells.h5"), cfg["cells"], {video: camera})
        write_csv(tmp_out / "frames.csv", frames.assign(camera=camera))
    log.info("%s: %d pseudo-anomalous frames of %s (camera %s)", out, int((frames["label"] == 1).sum()),
             ", ".join(cfg["validation"]["kinds"]), camera)


# --- the table and the choice (rule validation) ---------------------------------------------------------------


def _concat(parts: list[str], name: str) -> pd.DataFrame:
    return pd.concat([pd.read_csv(Path(p) / name, dtype={"video": str, "camera": str}) for p in parts],
                     ignore_index=True)


def raw_terms(parts: list[str], cfg: dict, train: dict[str, str], cameras: dict[str, str],
              work: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """(objects with z_f, z_p, z_m as fusion.fuse gives them; S_c of every frame; frames' labels;
    ``cameras`` with the held-out videos')
    of the held-out videos' ``parts``. ``train``: the workflow's training files (infer, motion,
    features, cell_stats, cells)."""
    from vad_pipeline import object_motion as M
    from vad_pipeline import windows as W
    from vad_pipeline.fusion import fuse

    frames = _concat(parts, "frames.csv")
    # the held-out videos' cameras (frames.csv) beside the training ones
    cameras = {**cameras, **dict(zip(frames["video"], frames["camera"]))} if cameras else cameras
    write_csv(work / "infer.csv", _concat(parts, "infer.csv"))
    write_csv(work / "features.csv", _concat(parts, "features.csv"))
    _, s_m = M.TERM.parts(train["features"], str(work / "features.csv"), cfg, cameras, training=False)
    write_csv(work / "motion.csv", M.TERM.combine([s_m]))
    W.gather_stats([str(Path(p) / "cells.h5") for p in parts], str(work / "cells.h5"))
    _, s_c = W.TERM.parts(train["cell_stats"], str(work / "cells.h5"), cfg, cameras, training=False)
    s_c = W.TERM.combine([s_c])
    fixed_cfg = copy.deepcopy(cfg)
    fixed_cfg["score"]["weights"] = "fixed"
    objects = fuse(train["infer"], str(work / "infer.csv"), str(work / "objects.csv"), fixed_cfg,
                   motion=(train["motion"], str(work / "motion.csv")), cameras=cameras)
    return objects, s_c, frames, cameras


def pooled(objects: pd.DataFrame, s_c: pd.DataFrame, frames: pd.DataFrame, cells_train: pd.DataFrame,
           cfg: dict, w: dict[str, float], cameras: dict[str, str]) -> pd.DataFrame:
    """The frame scores (fused with weights ``w``, and each term's) as the workflow pools test frames."""
    from vad_pipeline.evaluate import frame_scores

    c = copy.deepcopy(cfg)
    c["score"].update(w, weights="fixed")
    o = objects.copy()
    o["score"] = w["w_f"] * o["z_f"] + w["w_p"] * o["z_p"] + w["w_m"] * o["z_m"]
    labels = frames[["video", "frame", "label"]]
    return frame_scores(o, labels, c, cells=(cells_train, s_c), cameras=cameras, source="validation objects")


def _auc(normal: np.ndarray, abnormal: np.ndarray) -> float:
    """evaluate's AUC of ``abnormal`` against ``normal`` scores (NaN without one of them)."""
    from vad_pipeline.evaluate import auc

    if not len(normal) or not len(abnormal):
        return float("nan")
    return auc(np.r_[np.zeros(len(normal)), np.ones(len(abnormal))], np.r_[normal, abnormal])


def kind_aucs(df: pd.DataFrame, column: str, kinds: list[str]) -> dict[str, float]:
    """AUC of each kind's frames against the normal frames (``df``: frames kept), and their mean."""
    normal = df.loc[df["label"] == 0, column].to_numpy(float)
    out = {k: _auc(normal, df.loc[(df["label"] == 1) & (df["kind"] == k), column].to_numpy(float)) for k in kinds}
    out["mean"] = float(np.nanmean(list(out.values()))) if any(np.isfinite(list(out.values()))) else float("nan")
    return out


def level_spread(df: pd.DataFrame, column: str) -> float:
    """How far the normal level moves between videos: the spread (std) of each video's mean normal
    frame score over the spread of the normal frames within videos (0: no shift; near 1 and above: the
    video decides as much as the frame)."""
    normal = df[df["label"] == 0]
    if normal["video"].nunique() < 2:
        return float("nan")
    means = normal.groupby("video")[column].mean()
    within = normal.groupby("video")[column].std().mean()
    return float(means.std() / within) if within > 0 else float("nan")


def grid(values: list[float]) -> list[dict[str, float]]:
    """Every combination of ``values`` for the four weights whose largest is 1 (multiples rank alike)."""
    top = max(values)
    return [dict(zip(WEIGHTS, (v / top for v in combo))) for combo in itertools.product(values, repeat=4)
            if max(combo) == top]


def pick(scores: list[tuple[dict[str, float], float]], tolerance: float) -> dict[str, float]:
    """The rule fixed in advance: the best mean AUC; of those within ``tolerance``, the closest to
    equal weights (L1), then the first in grid order."""
    finite = [(w, s) for w, s in scores if np.isfinite(s)]
    if not finite:
        raise VadError("validation: no weight combination has a finite AUC (no pseudo-anomalous or no normal frame)")
    best = max(s for _, s in finite)
    tied = [w for w, s in finite if s >= best - tolerance]
    return min(tied, key=lambda w: sum(abs(1 - w[k]) for k in WEIGHTS))


def _kept(df: pd.DataFrame, frames: pd.DataFrame) -> pd.DataFrame:
    df = df.merge(frames[["video", "frame", "kind"]], on=["video", "frame"], how="left")
    return df[(~df["excluded"]) & (df["label"] >= 0)]


def choose(parts: list[str], cfg: dict, train: dict[str, str], cameras: dict[str, str],
           table_out: str, weights_out: str, frames_out: str | None = None) -> dict:
    """The validation table (``table_out``, CSV) and the chosen weights (``weights_out``, JSON, with
    the rule and each camera's mean AUCs); ``frames_out``: every validation frame's scores (each
    term's, the fused one with the chosen weights), label and kind. Returns what weights_out holds."""
    from vad_pipeline.windows import read_terms

    p, kinds = cfg["validation"], list(cfg["validation"]["kinds"])
    cells_train = read_terms(train["cells"])
    with tempfile.TemporaryDirectory(prefix="vad-validation-") as work:
        objects, s_c, frames, cameras = raw_terms(parts, cfg, train, cameras, Path(work))
    combos = grid(list(p["grid"]))
    eq = dict.fromkeys(WEIGHTS, 1.0)
    runs = {json.dumps(w, sort_keys=True): _kept(pooled(objects, s_c, frames, cells_train, cfg, w, cameras), frames)
            for w in [*combos, fixed(cfg)]}
    val_cams = sorted(frames["camera"].unique())
    scopes = [("all", None)] + ([(c, c) for c in val_cams] if len(val_cams) > 1 else [])

    def of(w, scope):
        df = runs[json.dumps(w, sort_keys=True)]
        return df if scope is None else df[df["camera"] == scope]

    chosen, rows = {}, []
    for name, scope in scopes:
        scored = [(w, kind_aucs(of(w, scope), "score", kinds)["mean"]) for w in combos]
        chosen[name] = pick(scored, float(p["tolerance"]))
        base = of(eq, scope)
        columns = {"fused (chosen)": (of(chosen[name], scope), "score"), "fused (fixed)": (of(fixed(cfg), scope), "score"),
                   **{t: (base, TERM_OF[w]) for w, t in zip(WEIGHTS, ("S_f", "S_p", "S_m", "S_c"))
                      if TERM_OF[w] in base and base[TERM_OF[w]].notna().any()}}
        for term, (df, col) in columns.items():
            aucs = kind_aucs(df, col, kinds)
            rows.append({"camera": name, "term": term, **{k: round(v, 4) for k, v in aucs.items()},
                         "normal_spread": round(level_spread(df, col), 4),
                         "videos": int(df["video"].nunique()), "normal_frames": int((df["label"] == 0).sum()),
                         "abnormal_frames": int((df["label"] == 1).sum())})
    table = pd.DataFrame(rows)
    write_csv(table_out, table)
    if frames_out:
        every = pooled(objects, s_c, frames, cells_train, cfg, chosen["all"], cameras)
        every = every.merge(frames[["video", "frame", "kind", "source_frame"]], on=["video", "frame"], how="left")
        write_csv(frames_out, every)
    out = {"rule": (f"every combination of {list(p['grid'])} for (w_f, w_p, w_m, w_c), largest 1: the best mean "
                    f"validation AUC over the kinds {kinds}; within {p['tolerance']} of it the closest to equal "
                    "weights; per camera with held-out videos, the others the choice over all"),
           "default": chosen["all"], "cameras": {c: chosen[c] for c in val_cams if len(val_cams) > 1},
           "held_out": sorted(frames["video"].unique()), "kinds": kinds,
           "table": table.to_dict(orient="records")}
    write_json(weights_out, out)
    log.info("validation: %d held-out videos, weights %s", len(out["held_out"]), chosen["all"])
    return out


def summary(path: str) -> dict:
    """What auc.json and the report show of a validation: the rule, the weights, the table."""
    return json.loads(Path(path).read_text())
