"""Per camera or pooled? The weight-free references of S_m and S_c, chosen on held-out training
videos (no test labels), from a run's detections and flows.

Folds over each camera's training videos (the k-th fold holds out every camera's k-th video, a
camera with a single training video is never held out). A reference is fitted on the videos
kept, either each camera's own (`camera`) or all cameras' (`pooled`); the held-out videos are
scored as they are (normal) and perturbed as an anomaly would (S_m: each object's flow statistics
doubled, a faster mover; S_c: in every frame the window that moves most, its flow doubled), each
z-scored with its own camera's training scores of the videos kept (each scored with its own
video, or for a camera with at most ``cameras.few_videos`` videos kept its time block, left out:
the workflow's leave-out, settings from the run's config). Reported per camera (AUC normal
against perturbed) and over all cameras at once.

    python tools/validate_cameras.py --results results/mc --dataset mc --folds 3
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from vad_pipeline import config as C
from vad_pipeline import object_motion as M
from vad_pipeline import windows as W
from vad_pipeline.datasets.cameras import ONE, read_cameras
from vad_pipeline.evaluate import auc
from vad_pipeline.reference import leave_out
from vad_pipeline.standardise import zscore, zstats

FLOW = ["mag_mean", "mag_p95", "dx", "dy"]   # S_m features a faster mover doubles


def folds(videos: pd.DataFrame, n: int) -> list[set[str]]:
    """Held-out video sets: the k-th training video of every camera that has more than one."""
    out = [set() for _ in range(n)]
    for _, g in videos.groupby("camera"):
        names = list(g["video"])
        if len(names) < 2:
            continue
        for k in range(n):
            out[k].add(names[(k * len(names)) // n])
    return [f for f in out if f]


def s_m(features: pd.DataFrame, cams: dict, p: dict, leave: dict, mode: str, held: set[str]) -> pd.DataFrame:
    """Held-out objects' z(S_m), normal (label 0) and perturbed (1), with their camera (``leave``:
    the training scores' leave-out, :func:`vad_pipeline.reference.leave_out`)."""
    f = features.assign(camera=features["video"].map(cams))
    kept, out = f[~f["video"].isin(held)], []
    for cam in sorted(f.loc[f["video"].isin(held), "camera"].unique()):
        ref_rows = kept[kept["camera"] == cam] if mode == "camera" else kept
        model = M.fit(ref_rows, p)
        own = M.training_scores(ref_rows, p, leave, ref_rows["camera"].to_numpy())[(ref_rows["camera"] == cam).to_numpy()]
        q = f[f["video"].isin(held) & (f["camera"] == cam)]
        fast = q.copy()
        fast[FLOW] = fast[FLOW] * 2
        for label, rows in ((0, q), (1, fast)):
            z = zscore(M.density_scores(ref_rows, rows, p, model), zstats(own))
            out.append(pd.DataFrame({"camera": cam, "label": label, "z": z}))
    return pd.concat(out, ignore_index=True)


def perturb(stats: np.ndarray) -> np.ndarray:
    """Each frame's most moving window with its flow doubled (peak and mean magnitude, dx, dy)."""
    x = stats.copy()
    top = x[:, :, 1].argmax(axis=1)
    rows = np.arange(len(x))
    for j in (0, 1, 3, 4):
        x[rows, top, j] *= 2
    return x


def s_c(stats: dict, cams: dict, layouts: dict, p: dict, leave: dict, mode: str, held: set[str]) -> pd.DataFrame:
    """Held-out frames' z(S_c) (each frame its highest window), normal and perturbed (``leave``: as
    :func:`s_m`)."""
    out = []
    for cam in sorted({cams[v] for v in held}):
        layout_cam = cam if mode == "camera" else ONE
        group = [v for v in stats if (cams[v] == cam or mode == "pooled")]
        kept = {v: stats[v] for v in group if v not in held}
        if mode == "camera":
            kept = {v: x for v, x in kept.items() if cams[v] == cam}
        query = {v: stats[v] for v in held if cams[v] == cam}
        query.update({f"{v}*": perturb(stats[v]) for v in held if cams[v] == cam})
        train_scores, test_scores = W.layout_terms(kept, query, layouts[layout_cam], p, leave, cams)
        own = zstats(np.concatenate([s.max(axis=1) for v, s in train_scores.items() if cams[v] == cam]))
        for v, s in test_scores.items():
            out.append(pd.DataFrame({"camera": cam, "label": int(v.endswith("*")), "z": zscore(s.max(axis=1), own)}))
    return pd.concat(out, ignore_index=True)


def report(rows: pd.DataFrame) -> dict:
    per = {str(c): round(auc(g["label"].to_numpy(), g["z"].to_numpy()), 4) for c, g in rows.groupby("camera")}
    return {"cameras": per, "mean": round(float(np.mean(list(per.values()))), 4),
            "pooled": round(auc(rows["label"].to_numpy(), rows["z"].to_numpy()), 4)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", required=True, help="results/<dataset> of a run (detect, flow, motion, cameras/)")
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--config", default="config.yaml")
    ap.add_argument("--also", nargs="*", default=[], help="more config files merged over --config")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    cfg = C.load(a.config)
    for extra in a.also:
        cfg = C.deep_merge(cfg, yaml.safe_load(Path(extra).read_text()))
    res = C.resolve(cfg, a.dataset)   # the run's settings
    root = Path(a.results)
    cams = read_cameras(str(root / "cameras" / "train.csv"))
    train_videos = pd.read_csv(root / "cameras" / "train.csv", dtype={"video": str, "camera": str})
    fl = folds(train_videos, a.folds)
    features = M.read_csv(root / "motion" / "features_train.csv", M.INDEX + M.FEATURES).astype({"video": str})
    boxes = [str(root / "detect" / "train" / f"{v}.csv") for v in train_videos["video"]]
    flows = [str(root / "flow" / "train" / f"{v}.h5") for v in train_videos["video"]]
    result: dict = {"folds": [sorted(f) for f in fl], "s_m": {}, "s_c": {}}
    # one camera: its own reference is the pooled one, so one mode says it all (half the time on Ped2)
    leaves = {term: leave_out(res, res[term]["frames"]) for term in ("motion", "cells")}
    for mode in ("camera", "pooled") if train_videos["camera"].nunique() > 1 else ("camera",):
        rows = pd.concat([s_m(features, cams, res["motion"], leaves["motion"], mode, held) for held in fl],
                         ignore_index=True)
        result["s_m"][mode] = report(rows)
        # one layout per camera, or one for all: the cameras given or not (as the cell-layout CLI does)
        layouts = W.make_layout(boxes, flows, str(root / f"validate_layout_{mode}.json"), res["cells"],
                                    cams if mode == "camera" else None)
        stats = {}
        for v, fp in zip(train_videos["video"], flows):
            _, layout = W.layout_for(layouts, v, cams)
            stats[v] = W.video_stats(fp, layout, res["cells"])[0]
        rows = pd.concat([s_c(stats, cams, layouts["cameras"], res["cells"], leaves["cells"], mode, held)
                          for held in fl], ignore_index=True)
        result["s_c"][mode] = report(rows)
        print(mode, json.dumps({"s_m": result["s_m"][mode], "s_c": result["s_c"][mode]}), flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
