"""Motion term S_m (rules ``motion_features``, ``motion_terms``): how unusual an object's motion
is for where it is in the image.

Per detected object (one row of the detector's boxes, the same ``INDEX`` as the cubes, so S_m joins
the model's terms), :func:`object_features` summarises the flow inside its box over the last
``motion.frames`` flows ending at its frame: the mean and 95th-percentile flow magnitude (pixels of
the working resolution, ``dataset.work_height``), the fraction of pixels moving more than
``motion.moving_px`` of them, the mean dx and dy, the box's width and height; and where the box is
(centre x, y as fractions of the frame's width and height).

:func:`fit` standardises the motion and size features with the mean and standard deviation of the
*training* objects and appends the location scaled by ``motion.location_weight`` (perspective
makes speed and size depend on the image row: a walker far away moves fewer pixels than a cyclist
close by, and only the location tells them apart). :func:`density_scores` is the mean Euclidean
distance of each object to its ``motion.k`` nearest training objects (a
:class:`~vad_pipeline.reference.Reference`): low where many training objects moved alike at that
place, high elsewhere. The training objects' own S_m (what ``score`` z-scores with) is computed
leaving out each training video in turn, or time blocks of a camera's single video
(:func:`training_scores`, :class:`~vad_pipeline.reference.Reference`), so that near-duplicates
from neighbouring frames of the same video do not make training scores smaller than the test
scores would be for normal objects. With ``cameras.motion: camera`` every camera
(``cameras.assign``) has its own standardisation and reference, and is a job of its own
(:func:`jobs`, rule motion_terms), gathered (rule gather_motion_terms) into the file one job
writes: :data:`TERM`, a :class:`~vad_pipeline.term_jobs.Term`.

No torch: this stage reads only the boxes and the stored flow.
"""

from __future__ import annotations

import logging

import h5py
import numpy as np
import pandas as pd

from vad_pipeline.flow import box_scale
from vad_pipeline.io import VadError, read_csv
from vad_pipeline.reference import Reference
from vad_pipeline.standardise import zscore, zstats
from vad_pipeline.stc import INDEX, clip_box
from vad_pipeline.term_jobs import Term, groups, warn_few_videos

log = logging.getLogger(__name__)

MOTION = ["mag_mean", "mag_p95", "moving", "dx", "dy", "width", "height"]
LOCATION = ["cx", "cy"]
FEATURES = MOTION + LOCATION


def box_features(flows: np.ndarray, box, scale: tuple[float, float], height: int, width: int,
                 moving_px: float) -> list[float]:
    """The features of one box from ``flows`` (T, h, w, 2) stored at 1/``scale`` resolution
    (:func:`vad_pipeline.flow.box_scale`; vectors in working pixels); ``box`` is x1, y1, x2, y2 in
    the pixels of the height x width frame (x2, y2 exclusive)."""
    x1, y1, x2, y2 = (int(v) for v in box)
    a, b, c, d = clip_box(box, *flows.shape[1:3], scale)
    f = flows[:, b:d, a:c].astype(np.float32).reshape(-1, 2)
    mag = np.hypot(f[:, 0], f[:, 1])
    return [float(mag.mean()), float(np.percentile(mag, 95)), float((mag > moving_px).mean()),
            float(f[:, 0].mean()), float(f[:, 1].mean()), (x2 - x1) / width, (y2 - y1) / height,
            (x1 + x2) / 2 / width, (y1 + y2) / 2 / height]


def object_features(flow_h5: str, boxes_csv: str, video: str, p: dict) -> pd.DataFrame:
    """One row per box of ``boxes_csv``: ``INDEX`` and ``FEATURES`` (see the module docstring)."""
    boxes = read_csv(boxes_csv, ["frame", "x1", "y1", "x2", "y2"])
    n_t, moving_px = int(p["frames"]), float(p["moving_px"])
    rows = []
    with h5py.File(flow_h5, "r") as f:
        fl, scale = f["flow"], box_scale(f)
        height, width = int(f.attrs["height"]), int(f.attrs["width"])
        n = fl.shape[0]
        for t, g in boxes.groupby("frame", sort=True):
            t = int(t)
            if not 0 <= t < n:
                raise VadError(f"{boxes_csv}: frame {t} outside the {n} flow frames of {flow_h5}; rerun the flow rule")
            flows = fl[max(t - n_t + 1, 1 if t > 0 else 0) : t + 1]   # flow 0 is all zero (no frame before)
            for box in g[["x1", "y1", "x2", "y2"]].to_numpy(int):
                rows.append([video, t, *box.tolist(),
                             *box_features(flows, box, scale, height, width, moving_px)])
    return pd.DataFrame(rows, columns=INDEX + FEATURES).astype({"video": str})


def split_features(flow_paths: list[str], box_paths: list[str], p: dict) -> pd.DataFrame:
    """The features of every box of a split (videos named by their files' stems, as the cubes)."""
    from pathlib import Path

    if len(flow_paths) != len(box_paths):
        raise VadError("--boxes and --flows must list the same videos")
    parts = []
    for bp, fp in zip(box_paths, flow_paths):
        if Path(bp).stem != Path(fp).stem:
            raise VadError(f"boxes {bp} and flow {fp} are of different videos")
        parts.append(object_features(fp, bp, Path(bp).stem, p))
    df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=INDEX + FEATURES)
    return df.astype({"video": str})


def fit(train: pd.DataFrame, p: dict) -> dict:
    """The standardisation of the training objects' motion features (``MOTION``)."""
    mu, sd = zstats(train[MOTION].to_numpy(float), axis=0)
    return {"mean": mu, "std": sd, "location_weight": float(p["location_weight"])}


def embed(df: pd.DataFrame, model: dict) -> np.ndarray:
    """Standardised motion features, then the location times ``location_weight``."""
    z = zscore(df[MOTION].to_numpy(float), (model["mean"], model["std"]))
    return np.hstack([z, model["location_weight"] * df[LOCATION].to_numpy(float)])


def density_scores(train: pd.DataFrame, query: pd.DataFrame, p: dict, model: dict | None = None,
                   threads: int = 1) -> np.ndarray:
    """Mean distance of each ``query`` object to its ``k`` nearest ``train`` objects (``threads``: the
    queries')."""
    if len(query) == 0:
        return np.zeros(0)
    if len(train) == 0:
        raise VadError("motion density: no training object to compare with")
    model = model or fit(train, p)
    return Reference(embed(train, model), train["video"], p["k"], "motion density",
                     threads=threads).score(embed(query, model))


def training_scores(train: pd.DataFrame, p: dict, leave: dict, cameras=None, threads: int = 1) -> np.ndarray:
    """S_m of the training objects, each video scored against the other training videos (with
    the standardisation of all of them); a camera with few training videos: in time blocks, each
    against the rest of its footage less a margin and each row's own object (``leave``:
    :func:`vad_pipeline.reference.leave_out`; objects: :func:`object_tracks`); ``cameras``: the
    camera of each row, where one pool holds several; ``threads``: the queries'."""
    cams = np.zeros(len(train), int) if cameras is None else np.asarray(cameras)
    return Reference(embed(train, fit(train, p)), train["video"], p["k"], "motion density",
                     frames=train["frame"], cameras=cams, threads=threads,
                     tracks=object_tracks(train, cams, leave["few"]), **leave).score_training()


def object_tracks(train: pd.DataFrame, cameras: np.ndarray, few: int) -> np.ndarray:
    """The object (:func:`vad_pipeline.tracks.of_videos`) of each row of ``train`` whose camera
    (``cameras``, per row) has at most ``few`` training videos, so that a row's whole object is
    left out of its reference; -1 elsewhere (not needed: whole videos are left out)."""
    from vad_pipeline.reference import BLOCKS, scheme
    from vad_pipeline.tracks import of_videos

    out = np.full(len(train), -1, int)
    videos = train["video"].to_numpy()
    for cam in pd.unique(cameras):
        mine = cameras == cam
        if scheme(len(set(videos[mine])), few) == BLOCKS:
            t = of_videos(videos[mine], train["frame"].to_numpy()[mine], train[["x1", "y1", "x2", "y2"]].to_numpy()[mine])
            out[mine] = t + out.max() + 1
    return out


PART_COLUMNS = [*INDEX, "s_m", "row"]   # a part job's rows: + the object's row in its split's features


def jobs(cfg: dict, cameras: dict[str, str]) -> list[str]:
    """The parts of S_m, one job each (rule motion_terms), from the videos' cameras ``cameras``
    ({video: camera}; DAG time): with ``cameras.motion: camera`` and several cameras each camera,
    else one (:data:`~vad_pipeline.datasets.cameras.ONE`: every object)."""
    return groups(cfg, "motion", cameras)


def term_parts(train_features: str, test_features: str, cfg: dict, cameras: dict[str, str] | None = None,
               camera: str | None = None, threads: int = 1, training: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``PART_COLUMNS`` rows of S_m of the training objects (their video, or time block, left out)
    and test objects of ``camera`` (None or :data:`~vad_pipeline.datasets.cameras.ONE`: of every
    camera); with ``cameras.motion: camera`` each camera of ``cameras`` ({video: camera}) on its own.
    ``training`` False: the test objects only (no training row; the validation's)."""
    from vad_pipeline.datasets.cameras import ONE, of
    from vad_pipeline.progress import Progress
    from vad_pipeline.reference import leave_out

    p, leave = cfg["motion"], leave_out(cfg, cfg["motion"]["frames"])
    cols = INDEX + FEATURES
    train, test = read_csv(train_features, cols), read_csv(test_features, cols)
    train, test = train.astype({"video": str}), test.astype({"video": str})
    train["row"], test["row"] = np.arange(len(train)), np.arange(len(test))
    per_camera = bool(cameras) and cfg["cameras"]["motion"] == "camera"
    real_cams = of(train["video"], cameras or {})   # the leave-out of a pooled reference is per camera too
    cam_train = real_cams if per_camera else pd.Series(ONE, index=train.index)
    cam_test = of(test["video"], cameras) if per_camera else pd.Series(ONE, index=test.index)
    refs = sorted(set(cam_train) | set(cam_test))
    if camera not in (None, ONE):
        if camera not in refs:
            raise VadError(f"motion density: no object of camera {camera} (cameras: {', '.join(refs)}; "
                           f"cameras.motion {cfg['cameras']['motion']})")
        refs = [camera]
    train["s_m"], test["s_m"] = np.nan, np.nan
    chosen_tr, chosen_te = cam_train.isin(refs).to_numpy(), cam_test.isin(refs).to_numpy()
    progress = Progress("S_m" + (f" of camera {camera}" if camera not in (None, ONE) else ""),
                        int(chosen_tr.sum() + chosen_te.sum()), "objects")
    for cam in refs:
        tr, te = (cam_train == cam).to_numpy(), (cam_test == cam).to_numpy()
        if not tr.any():
            raise VadError(f"motion density: no training object of camera {cam}: its objects cannot be judged by its "
                           "own normal footage (add training footage in which objects move, or set cameras.motion: pooled)")
        warn_few_videos("S_m", "objects", train[tr].groupby(real_cams[tr])["video"].nunique().to_dict(), leave,
                        " and each object's own rows")
        if training:
            train.loc[tr, "s_m"] = training_scores(train[tr], p, leave, real_cams[tr].to_numpy(), threads)
        progress.update(int(tr.sum()))
        test.loc[te, "s_m"] = density_scores(train[tr], test[te], p, threads=threads)
        progress.update(int(te.sum()))
    return train.loc[chosen_tr & training, PART_COLUMNS], test.loc[chosen_te, PART_COLUMNS]


def _in_features_order(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of S_m's parts in the order of the split's features."""
    return rows.iloc[np.argsort(rows["row"].to_numpy(), kind="stable")]


# S_m's part jobs (rule motion_terms), their gather (rule gather_motion_terms) and the one job that
# writes what the gather writes (TERM.write without a part)
TERM = Term("S_m", "objects", (*INDEX, "s_m"), tuple(PART_COLUMNS), term_parts, _in_features_order)


def best_box_flow_auc(results: str, dataset: str, exclude_first: int) -> float | None:
    """Proposal diagnostic (``benchmark.json``): the micro AUC of each test frame's largest mean
    flow magnitude over its boxes (flow t-1 -> t; a frame without a box gets the lowest value),
    the first ``exclude_first`` frames of each video left out. None without labels or boxes."""
    from pathlib import Path

    from vad_pipeline.evaluate import auc

    root = Path(results) / dataset
    if not (root / "labels.csv").is_file():
        return None
    labels = read_csv(root / "labels.csv", ["video", "frame", "label"])
    if (labels["label"] < 0).all():
        return None
    ys, ss = [], []
    for video, g in labels.groupby("video", sort=False):
        bp, fp = root / "detect" / "test" / f"{video}.csv", root / "flow" / "test" / f"{video}.h5"
        if not (bp.is_file() and fp.is_file()):
            return None
        best = np.full(len(g), np.nan)
        boxes = read_csv(bp, ["frame", "x1", "y1", "x2", "y2"])
        with h5py.File(fp, "r") as f:
            fl, scale = f["flow"], box_scale(f)
            for t, b in boxes.groupby("frame"):
                if 0 <= int(t) < min(len(best), fl.shape[0]):
                    best[int(t)] = max(box_features(fl[int(t)][None], box, scale, 1, 1, 0.0)[0]
                                       for box in b[["x1", "y1", "x2", "y2"]].to_numpy(int))
        keep = g["frame"].to_numpy() >= exclude_first
        ys.append(g["label"].to_numpy()[keep])
        ss.append(best[keep])
    s = np.concatenate(ss)
    if np.isnan(s).all():
        return None
    y = np.concatenate(ys).astype(bool)
    if y.all() or not y.any():
        return None
    return auc(y, np.where(np.isnan(s), np.nanmin(s), s))
