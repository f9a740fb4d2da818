"""Is a camera's training-score leave-out unbiased? On held-out normal footage (training videos
only: no test label is read), each training video in turn is a camera's only training clip (or
one of its two, with a second clip): its mean training S_m and S_c, which the fusion divides
that camera's test z-scores by, are set against the mean S_m and S_c of the camera's *unseen*
normal clips (the other training videos) scored against the same reference. A ratio of 1 is
unbiased; below 1 the camera's test scores would be inflated, above 1 deflated.

Reads a finished run's weight-free features (snakemake results/<d>/motion/features_train.csv
results/<d>/cells/stats_train.h5):

    python tools/validate_leave_out.py --results results --dataset ped2
    python tools/validate_leave_out.py --dataset ped2 --blocks 3 5 8 --margin 0 12 25 50 --few 1 2

Prints one row per setting: the median and the 10-90 % range over clips of train / unseen, for
one training clip (time blocks) and for two (time blocks where ``cameras.few_videos`` >= 2, else
each clip against the other). S_m leaves out each row's own object too (tracks), as the
workflow does.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from vad_pipeline import config as C
from vad_pipeline import object_motion as M
from vad_pipeline import windows as W
from vad_pipeline.io import read_csv
from vad_pipeline.reference import leave_out
from vad_pipeline.standardise import zstats


def s_m(train: pd.DataFrame, unseen: pd.DataFrame, p: dict, leave: dict) -> tuple[float, float]:
    """Mean training S_m of the first video of ``train`` and mean S_m of ``unseen`` objects."""
    first = (train["video"] == train["video"].iloc[0]).to_numpy()
    return (float(M.training_scores(train, p, leave)[first].mean()),
            float(M.density_scores(train, unseen, p).mean()))


def s_c(train: list[np.ndarray], unseen: list[np.ndarray], layout: dict, p: dict, leave: dict,
        first: int) -> tuple[float, float]:
    """Mean training frame S_c of the first clip of ``train`` and of the ``unseen`` clips, their
    ``first`` frames left out (frame_scores.exclude_first: before the first full cube)."""
    stack = np.concatenate(train)
    scale = zstats(stack.reshape(-1, len(W.STATS)), axis=0)[1]
    videos = np.repeat(np.arange(len(train)), [len(x) for x in train])
    frames = np.concatenate([np.arange(len(x)) for x in train])
    query = np.concatenate([x[first:] for x in unseen])
    tr, te = W.window_scores(stack, videos, query, scale, layout, p, frames=frames, leave=leave)
    clip = tr[: len(train[0])].max(axis=1)[first:]
    return float(clip.mean()), float(te.max(axis=1).mean())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", default="results")
    ap.add_argument("--dataset", default="ped2")
    ap.add_argument("--configfile", default="config.yaml")
    ap.add_argument("--blocks", type=int, nargs="+", default=None, help="cameras.blocks to try (default: the config's)")
    ap.add_argument("--margin", type=int, nargs="+", default=None, help="cameras.margin to try")
    ap.add_argument("--few", type=int, nargs="+", default=None, help="cameras.few_videos to try")
    ap.add_argument("--clips", type=int, default=8, help="training videos that take a turn as the only clip")
    ap.add_argument("--unseen", type=int, default=4, help="unseen clips each is compared with")
    a = ap.parse_args(argv)
    cfg = C.resolve(C.load(a.configfile), a.dataset)   # the run's settings
    first = int(cfg["frame_scores"]["exclude_first"])   # frames before the first full cube: not z-scored
    root = Path(a.results) / a.dataset
    feats = read_csv(root / "motion" / "features_train.csv", M.INDEX + M.FEATURES).astype({"video": str})
    layouts, stats = W.read_stats(str(root / "cells" / "stats_train.h5"))
    layout = next(iter(layouts["cameras"].values()))
    names = sorted(stats)[: a.clips + a.unseen]
    rows = []
    c = cfg["cameras"]
    for blocks, margin, few in itertools.product(a.blocks or [c["blocks"]], a.margin or [c["margin"]],
                                                 a.few or [c["few_videos"]]):
        ratios: dict[str, list[float]] = {"s_m one": [], "s_m two": [], "s_c one": [], "s_c two": []}
        for i, clip in enumerate(names[: a.clips]):
            other = names[(i + 1) % a.clips]   # its second clip
            unseen = [v for v in names if v not in (clip, other)][: a.unseen]
            for label, train in (("one", [clip]), ("two", [clip, other])):
                for term in ("s_m", "s_c"):
                    p = cfg["motion"] if term == "s_m" else cfg["cells"]
                    leave = leave_out({"cameras": {"blocks": blocks, "margin": margin, "few_videos": few}}, p["frames"])
                    if term == "s_m":
                        tr = pd.concat([feats[feats["video"] == v] for v in train], ignore_index=True)
                        t, u = s_m(tr[tr["frame"] >= first], feats[feats["video"].isin(unseen) & (feats["frame"] >= first)],
                                   p, leave)
                    else:
                        t, u = s_c([stats[v][0] for v in train], [stats[v][0] for v in unseen], layout, p, leave, first)
                    ratios[f"{term} {label}"].append(t / u)
        row = {"blocks": blocks, "margin": margin, "few_videos": few}
        for k, v in ratios.items():
            q = np.percentile(v, [10, 50, 90])
            row[k] = f"{q[1]:.2f} ({q[0]:.2f}-{q[2]:.2f})"
        rows.append(row)
        print(pd.DataFrame([row]).to_string(index=False, header=len(rows) == 1), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
