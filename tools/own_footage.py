"""Own footage with a camera filmed once: is its single training clip judged as a second clip
would judge it? (issue 27). Two sets in the videos layout, two cameras of different frame sizes,
``cameras.csv`` and ``labels.csv``, nothing else set:

- ``<name>_one``: camera ``a`` has a single training clip (``a_01``), camera ``b`` several;
- ``<name>_two``: the same, with a second training clip of camera ``a`` (``a_02``).

Camera ``a``'s test split also holds normal clips it was never trained on (``a_nNN``, no
abnormal frame): unseen normal footage, to see whether the training scores are unbiased.
Camera ``a`` is a generated scene (``--source generator``: 480x856, ``--frames`` frames a clip)
or real UCSD Ped2 (``--source ped2``: training videos 01 and 02, 05 and 06 unseen, test videos
01-04, 360x240); camera ``b`` is a generated scene at 360x640 (3 training clips of 150 frames). Both sets are run through the
workflow (``snakemake --cores``) once per ``--seeds`` (the weight-free terms do not depend on
the seed: only training and what follows rerun), and a report is printed and written to
``<out>/report.json``: clip ``a_01``'s mean training S_m and S_c in each set (the divisor of
camera ``a``'s test z-scores) and the unseen clips' means, the ratios one/two and train/unseen
(1: unbiased; where the unseen clips themselves score differently against one clip and against
two, an unbiased one/two is not 1), pooled micro AUC against the frame-weighted mean of the per-camera micro AUCs, and
camera ``a``'s micro AUC per seed.

    python tools/own_footage.py --out /tmp/own_gen --source generator --seeds 0 1
    python tools/own_footage.py --out /tmp/own_ped2 --source ped2 --ped2 ../shared/datasets/ped2

Results go to ``results/<name>_one`` and ``results/<name>_two`` of the working directory.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from vad_pipeline import camera_set as CS
from vad_pipeline import config as C
from vad_pipeline.datasets.video import frame_size, iter_frames

JUDGED = "a"


def _clip_parts(source: str, ped2_root: Path | None, n_frames: int, tmp: Path):
    """(train, second, unseen, test, labels) of the judged camera ``a``; video names ``a_<video>``."""
    if source == "ped2":
        if ped2_root is None:
            raise SystemExit("--source ped2 needs --ped2 (the UCSD Ped2 folder: frames layout, ped2.mat)")
        train, test, labels, _ = CS.ped2(ped2_root, camera=JUDGED)
        by = {v.name: v for v in train}
        first, second = by["a_01"], by["a_02"]
        unseen = [replace(by[f"a_{n}"], name=f"a_n{n}") for n in ("05", "06")]
        test = [v for v in test if v.name in {"a_01", "a_02", "a_03", "a_04"}]
    else:
        spec = {**CS.camera_spec(0), "n_frames": n_frames, "n_train": 4}
        train, test, labels, _ = CS.generated(JUDGED, spec, seed=11, tmp=tmp)
        first, second = train[0], train[1]
        unseen = [replace(v, name=f"a_n{v.name.split('_')[1]}") for v in train[2:]]
    labels = {v.name: labels[v.name] for v in test}
    for v in unseen:
        labels[v.name] = np.zeros(sum(1 for _ in iter_frames(v)), bool)
    return first, second, unseen, test, labels


def build_sets(out: Path, name: str, source: str, ped2_root: Path | None, n_frames: int) -> dict:
    """Write ``<out>/one`` and ``<out>/two``; returns {dataset name: dataset section}."""
    with tempfile.TemporaryDirectory(prefix="vad-own-") as tmp:
        tmp = Path(tmp)
        first, second, unseen, test, labels = _clip_parts(source, ped2_root, n_frames, tmp)
        b = CS.generated("b", CS.camera_spec(2), seed=13, tmp=tmp)
        size_a = (480, 856) if source == "generator" else tuple(frame_size(first))
        sizes = {JUDGED: size_a, "b": (360, 640)}
        sections = {}
        # camera b first: its videos get the same containers (export alternates them) in both sets
        for kind, clips in (("one", [first]), ("two", [first, second])):
            a = (clips, [*test, *unseen], labels, {v.name: None for v in [*test, *unseen]})
            sections[f"{name}_{kind}"] = CS.joint({"b": b, JUDGED: a}, "videos", out / kind, sizes, tmp / kind)
    for section in sections.values():
        section.pop("cameras", None)   # as a user would: cameras.csv in the root is found (auto)
    return sections


def run(sets: list[str], configfile: Path, seed: int, cores: int) -> None:
    cmd = [sys.executable, "-m", "snakemake", "--cores", str(cores), *(f"results/{d}/auc.json" for d in sets),
           "--configfile", str(configfile), "--config", f"seed={seed}"]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def resolved(configfile: Path, dataset: str) -> dict:
    """The settings :func:`run` gives ``dataset``: the working directory's config.yaml (the
    Snakefile's), ``configfile`` merged over it (as ``snakemake --configfile`` does)."""
    return C.resolve(C.load("config.yaml", C.read(configfile)), dataset)


def clip_means(results: Path, clip: str, unseen: list[str], first: int) -> dict:
    """Mean S_m and S_c of the training clip ``clip`` and of the ``unseen`` test clips, the
    ``first`` frames of each left out (frame_scores.exclude_first: no full cube there, no score)."""
    out = {}
    for term, folder in (("s_m", "motion"), ("s_c", "cells")):
        tr = pd.read_csv(results / folder / "train.csv")
        te = pd.read_csv(results / folder / "test.csv")
        tr, te = tr[tr["frame"] >= first], te[te["frame"] >= first]
        out[term] = float(tr.loc[tr["video"] == clip, term].mean())
        out[f"{term}_unseen"] = float(te.loc[te["video"].isin(unseen), term].mean())
    return out


def aucs(results: Path) -> dict:
    auc = json.loads((results / "auc.json").read_text())
    cams = auc["cameras"]
    weighted = sum(c["auc_micro"] * c["n_frames"] for c in cams.values()) / sum(c["n_frames"] for c in cams.values())
    return {"pooled_micro": auc["auc_micro"], "camera_mean_micro": weighted,
            "cameras": {k: c["auc_micro"] for k, c in cams.items()}}


def report(out: Path, sets: list[str], seeds: list[int], per_seed: dict, configfile: Path) -> dict:
    results = Path("results")
    summary = json.loads((results / sets[0] / "gt_summary.json").read_text())
    unseen = [v for v in summary["per_video"] if v.startswith("a_n")]
    rep = {"sets": sets, "seeds": seeds, "cameras_one": summary.get("cameras")}
    means = {d: clip_means(results / d, "a_01", unseen, int(resolved(configfile, d)["frame_scores"]["exclude_first"]))
             for d in sets}
    rep["clip_a_01"] = means
    rep["ratio_one_over_two"] = {t: means[sets[0]][t] / means[sets[1]][t] for t in ("s_m", "s_c")}
    rep["ratio_to_unseen"] = {d: {t: means[d][t] / means[d][f"{t}_unseen"] for t in ("s_m", "s_c")} for d in sets}
    rep["auc"] = per_seed
    for d in sets:
        cam = [per_seed[s][d]["cameras"][JUDGED] for s in map(str, seeds)]
        rep.setdefault("camera_a_micro", {})[d] = {"per_seed": cam, "mean": float(np.mean(cam)),
                                                   "spread": float(np.max(cam) - np.min(cam))}
    (out / "report.json").write_text(json.dumps(rep, indent=1))
    one, two = sets
    print("\nclip a_01, mean training score (unseen normal clips of camera a in brackets)")
    for t in ("s_m", "s_c"):
        print(f"  {t}: one clip {means[one][t]:.3f} ({means[one][t + '_unseen']:.3f})   "
              f"two clips {means[two][t]:.3f} ({means[two][t + '_unseen']:.3f})   "
              f"one/two {rep['ratio_one_over_two'][t]:.2f}   train/unseen: one clip "
              f"{rep['ratio_to_unseen'][one][t]:.2f}, two {rep['ratio_to_unseen'][two][t]:.2f}")
    for s in map(str, seeds):
        for d in sets:
            a = per_seed[s][d]
            print(f"  seed {s} {d}: pooled micro {a['pooled_micro']:.4f}, frame-weighted camera mean "
                  f"{a['camera_mean_micro']:.4f}, " + ", ".join(f"{k} {v:.4f}" for k, v in a["cameras"].items()))
    for d, c in rep["camera_a_micro"].items():
        print(f"  camera a, {d}: micro {c['mean']:.4f} (spread {c['spread']:.4f} over seeds {seeds})")
    return rep


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="where the two sets are written")
    ap.add_argument("--source", choices=("generator", "ped2"), default="generator")
    ap.add_argument("--ped2", type=Path, help="UCSD Ped2 folder (frames layout, ped2.mat), for --source ped2")
    ap.add_argument("--name", help="dataset names <name>_one, <name>_two (default own_<source>)")
    ap.add_argument("--frames", type=int, default=300, help="frames of a generated clip (300: the judged "
                    "camera's one clip is just enough footage, cameras.min_train_frames)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--cores", type=int, default=2)
    a = ap.parse_args(argv)
    name = a.name or f"own_{a.source}"
    configfile = a.out / "config.yaml"
    if not configfile.exists():
        if a.out.exists():
            shutil.rmtree(a.out)
        sections = build_sets(a.out, name, a.source, a.ped2, a.frames)
        configfile.write_text(yaml.safe_dump({"datasets": sections}))
    sets = [f"{name}_one", f"{name}_two"]
    per_seed = {}
    for seed in a.seeds:
        run(sets, configfile, seed, a.cores)
        per_seed[str(seed)] = {d: aucs(Path("results") / d) for d in sets}
    report(a.out, sets, a.seeds, per_seed, configfile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
