"""Command-line interface: one subcommand per pipeline stage (what the Snakemake rules call).

Every subcommand takes the stage's settings either as ``--params`` (JSON text, or @file; what
the rules pass) or as ``--configfile config.yaml --dataset NAME`` (for running a stage by hand).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from vad_pipeline import config as C
from vad_pipeline.io import VadError

log = logging.getLogger("vad_pipeline")


def _text(value: str, flag: str) -> str:
    """A value, or with a leading @ the content of that file."""
    if not value.startswith("@"):
        return value
    path = Path(value[1:])
    if not path.is_file():
        raise VadError(f"{flag} {value}: file not found")
    return path.read_text()


def _json_arg(value: str, flag: str):
    """A JSON argument (or @file holding it)."""
    try:
        return json.loads(_text(value, flag))
    except json.JSONDecodeError as exc:
        raise VadError(f"{flag}: not valid JSON ({exc})") from exc


def _settings(args) -> dict:
    if args.params:
        cfg = _json_arg(args.params, "--params")
        # the camera settings a stage is not given are the defaults (rules pass only those it reads)
        cfg["cameras"] = {**C.defaults()["cameras"], **cfg.get("cameras", {})}
    elif not args.dataset:
        raise VadError("give --params, or --dataset (with --configfile)")
    else:
        cfg = C.resolve(C.load(args.configfile), args.dataset)
    if args.root:  # the rules pass it apart from --params: where a dataset lives is not a setting
        cfg.setdefault("dataset", {})["root"] = _text(args.root, "--root").rstrip("\n")
    return cfg


def _video(cfg: dict, split: str, name: str):
    from vad_pipeline.datasets import get_video

    return get_video(cfg, split, name)


def cmd_make_demo(cfg, a):
    from vad_pipeline.demo import generate

    generate(cfg["demo"], a.out)


def cmd_make_camera_set(cfg, a):
    from vad_pipeline.camera_set import build, parse_counts, parse_sizes

    demo = _json_arg(a.demo, "--demo") if a.demo else {}
    if not isinstance(demo, dict):
        raise VadError("--demo: expected a JSON object of demo settings")
    clips = parse_counts(a.train_clips, "--train-clips") if a.train_clips else None
    sections = build(Path(a.out), a.layout, parse_sizes(a.size), a.cameras, Path(a.ped2) if a.ped2 else None,
                     seed=a.seed, train_clips=clips, **demo)
    print(json.dumps(sections, indent=1))


def cmd_labels(cfg, a):
    from vad_pipeline.datasets import cameras as K
    from vad_pipeline.datasets import frame_labels, get_video, gt_summary, video_names
    from vad_pipeline.evaluate import labels_table
    from vad_pipeline.io import write_csv, write_json

    videos = [get_video(cfg, "test", n) for n in video_names(cfg, "test")]
    labels = frame_labels(cfg, videos)
    if a.summary:
        summary = gt_summary(cfg, videos, labels)
        if a.cameras:
            import pandas as pd

            from vad_pipeline.io import read_csv

            summary["cameras"] = K.summary(pd.concat([read_csv(p, K.COLUMNS) for p in a.cameras]),
                                             int(cfg["cameras"]["min_train_frames"]),
                                             int(cfg["cameras"]["few_videos"]))
        write_json(a.summary, summary)
        log.info("%s: %d test videos, %d frames, %s abnormal, %d with pixel masks", cfg["name"],
                 summary["videos"], summary["frames"], summary["abnormal_frames"], summary["frames_with_pixel_masks"])
    write_csv(a.out, labels_table(videos, labels))


def cmd_cameras(cfg, a):
    from vad_pipeline.datasets import cameras as K
    from vad_pipeline.datasets import get_video, video_names
    from vad_pipeline.io import write_csv

    table = K.camera_table(cfg, {s: {n: get_video(cfg, s, n).n_frames for n in video_names(cfg, s)}
                                   for s in ("train", "test")})
    write_csv(a.out, table[table["split"] == a.split])
    log.info("%s: %d cameras", a.split, table.loc[table["split"] == a.split, "camera"].nunique())


def cmd_detect(cfg, a):
    from vad_pipeline.detect import detect_video

    df = detect_video(_video(cfg, a.split, a.video), cfg, a.out)
    log.info("%s/%s: %d boxes", a.split, a.video, len(df))


def cmd_flow(cfg, a):
    from vad_pipeline.flow import flow_video

    flow_video(_video(cfg, a.split, a.video), cfg, a.out)


def cmd_stc(cfg, a):
    from vad_pipeline.stc import build_split

    if len(a.boxes) != len(a.flows):
        raise VadError("--boxes and --flows must list the same videos")
    videos = [_video(cfg, a.split, Path(b).stem) for b in a.boxes]
    n = build_split(videos, a.boxes, a.flows, cfg, a.out, part=a.part)
    log.info("%s: %d cubes", a.out, n)


def cmd_stc_gather(cfg, a):
    from vad_pipeline.stc import gather_split

    n = gather_split(a.parts, a.out, a.split)
    log.info("%s: %d cubes of %d videos", a.out, n, len(a.parts))


def cmd_train(cfg, a):
    from vad_pipeline.plots import loss_curve
    from vad_pipeline.train import train

    train(cfg, a.stc, a.out, a.log, a.ckpt_dir, a.threads)
    if a.plot:
        loss_curve(a.log, a.plot)


def cmd_infer(cfg, a):
    from vad_pipeline.infer import infer

    infer(a.model, a.stc, a.out, cfg, a.threads, a.max_cubes)


def cmd_motion_features(cfg, a):
    from vad_pipeline.io import write_csv
    from vad_pipeline.object_motion import split_features

    df = split_features(a.flows, a.boxes, cfg["motion"])
    write_csv(a.out, df)
    log.info("%s: motion features of %d objects", a.out, len(df))


def _term_job(folder: str, cfg: dict, a, part: dict | None) -> None:
    """One job of a weight-free term (``part``: one part job, for gather-terms; None: all of it)."""
    from vad_pipeline.term_jobs import term

    term(folder).write(a.train, a.test, a.train_out, a.test_out, cfg, read_cameras(a.cameras), part, a.threads)


def cmd_motion_terms(cfg, a):
    _term_job("motion", cfg, a, {"camera": a.camera} if a.camera else None)


def cmd_gather_terms(cfg, a):
    from vad_pipeline.term_jobs import term

    term(a.term).gather(a.train, a.test, a.train_out, a.test_out)


def _pair(command: str, stage: str, train: str | None, test: str | None) -> tuple[str, str] | None:
    """An optional stage's (training, test) files: both or neither."""
    if bool(train) != bool(test):
        raise VadError(f"{command}: give both --{stage}-train and --{stage}-test, or neither")
    return (train, test) if train else None


def cmd_score(cfg, a):
    from vad_pipeline.fusion import fuse

    fuse(a.train, a.test, a.out, cfg, a.stats, _pair("score", "motion", a.motion_train, a.motion_test),
         read_cameras(a.cameras), a.weights)


def cmd_cell_layout(cfg, a):
    from vad_pipeline.windows import make_layout

    per_camera = cfg["cameras"]["cells"] == "camera"   # else one layout for every camera
    make_layout(a.boxes, a.flows, a.out, cfg["cells"], read_cameras(a.cameras) if per_camera else None)


def cmd_cell_stats(cfg, a):
    from vad_pipeline.windows import split_stats

    split_stats(a.flows, a.layout, a.out, cfg["cells"], read_cameras(a.cameras))


def cmd_cell_stats_gather(cfg, a):
    from vad_pipeline.windows import gather_stats

    gather_stats(a.parts, a.out)
    log.info("%s: window statistics of %d videos", a.out, len(a.parts))


def cmd_cell_terms(cfg, a):
    from vad_pipeline.datasets.cameras import ONE

    _term_job("cells", cfg, a, {"camera": a.camera or ONE, "band": a.band or "1of1"} if a.camera or a.band else None)


def cmd_frame_scores(cfg, a):
    from vad_pipeline.evaluate import write_frame_scores

    write_frame_scores(a.objects, a.labels, a.out, cfg, _pair("frame-scores", "cells", a.cells_train, a.cells_test),
                       read_cameras(a.cameras), a.weights)


def cmd_validation_video(cfg, a):
    from vad_pipeline.validation import video_terms

    if len(a.boxes) != len(a.box_videos):
        raise VadError("--boxes and --box-videos must list the same videos")
    video_terms(cfg, a.video, a.model, a.layout, dict(zip(a.box_videos, a.boxes)), a.out, a.threads)


def cmd_validation(cfg, a):
    from vad_pipeline.validation import choose

    train = {"infer": a.infer, "motion": a.motion, "features": a.features, "cell_stats": a.cell_stats,
             "cells": a.cells}
    choose(a.parts, cfg, train, read_cameras(a.cameras), a.table, a.out, a.frames)


def cmd_bundle(cfg, a):
    from vad_pipeline import bundle as B
    from vad_pipeline.datasets.cameras import mode

    files = {"model.pt": a.model, "infer_train.csv": a.infer, "motion_train.csv": a.motion,
             "features_train.csv": a.features, "cells_train.csv": a.cells, "cell_stats_train.h5": a.cell_stats,
             "layout.json": a.layout, "cameras_train.csv": a.cameras, **({"weights.json": a.weights} if a.weights else {})}
    B.write(a.out, cfg, files, mode(cfg))


def cmd_bundle_import(cfg, a):
    from vad_pipeline.bundle import unpack

    unpack(a.source, a.out)


def cmd_bundle_pack(cfg, a):
    from vad_pipeline.bundle import pack

    pack(a.bundle, a.out)


def _batch(a) -> dict:
    """The batch's settings (apply.batch_config) from the bundle and the apply commands' flags."""
    from vad_pipeline.apply import batch_config
    from vad_pipeline.bundle import settings

    spec = {**_json_arg(a.spec, "--spec"), "root": _text(a.batch_root, "--batch-root").rstrip("\n")}
    dataset, _, batch = (a.name or "batch/batch").partition("/")
    report = _json_arg(a.report, "--report") if getattr(a, "report", None) else None
    return batch_config(settings(a.bundle), dataset, batch or "batch", spec, report, a.device)


def cmd_apply_video(cfg, a):
    from vad_pipeline.apply import video_terms

    video_terms(a.bundle, _batch(a), a.video, a.camera, a.out, a.threads)


def cmd_apply_scores(cfg, a):
    from vad_pipeline.apply import gather

    out = {"labels": a.labels, "summary": a.summary, "cells": a.cells, "objects": a.objects, "frames": a.frames,
           "settings": a.settings, "stats": a.stats}
    gather(a.bundle, _batch(a), a.parts, _json_arg(a.cameras, "--cameras"), out)


def _figures(paths: list[str | None]) -> list[Path]:
    """PNG files in order; a folder of pictures gives its contact sheet (the pictures themselves
    are in the report's Top anomalies category)."""
    from vad_pipeline.pictures import CONTACT_SHEET

    out = []
    for p in filter(None, paths):
        p = Path(p)
        out.append(p / CONTACT_SHEET if p.is_dir() else p)
    return [p for p in out if p.is_file()]


def cmd_evaluate(cfg, a):
    import pandas as pd

    from vad_pipeline.evaluate import evaluate
    from vad_pipeline.plots import roc, score_curves

    protocol = {k: cfg[k] for k in ("score", "frame_scores", "model", "detect", "flow", "stc") if k in cfg}
    protocol["preset"], protocol["train"] = cfg.get("preset"), cfg.get("train")
    extra = {}
    if a.localisation:  # RBDC, TBDC, pixel AUC with their own protocol (datasets with pixel masks)
        loc = json.loads(Path(a.localisation).read_text())
        extra["localisation"] = {k: v for k, v in loc.items() if k != "dataset"}
    if a.validation:   # the validation's table and the weights it chose, and whether they were used
        from vad_pipeline.validation import summary

        extra["validation"] = {**summary(a.validation),
                               "weights_used": "chosen" if cfg["score"]["weights"] == "auto" else "fixed: shown only"}
    result = evaluate(a.frames, a.out, protocol, cfg["name"], extra)
    frames = pd.read_csv(a.frames, dtype={"video": str, "camera": str})
    if a.top:
        from vad_pipeline.evaluate import top_anomalies
        from vad_pipeline.io import write_csv

        fps = {}
        if a.summary:
            fps = {k: v["fps"] for k, v in json.loads(Path(a.summary).read_text())["per_video"].items()}
        write_csv(a.top, top_anomalies(frames, fps, cfg["report"]))
    if a.roc:
        roc(frames, a.roc, cfg["name"])
    if a.curves:
        score_curves(frames, a.curves, cfg["name"])
    if a.table:  # after the plots: the page embeds them
        from vad_pipeline.evaluate import html_summary

        bench = json.loads(Path(a.benchmark).read_text()) if a.benchmark else None
        html_summary(result, bench, a.table, _figures([a.roc, *(a.figures or []), a.curves]))
    log.info("%s: AUC micro %s macro %s; each term alone %s", cfg["name"], result["auc_micro"],
             result["auc_macro"], result.get("auc_terms"))
    print(json.dumps({k: result[k] for k in ("dataset", "auc_micro", "auc_macro", "ap", "eer")}))


def cmd_top_anomalies(cfg, a):
    import pandas as pd

    from vad_pipeline.evaluate import top_anomalies
    from vad_pipeline.io import write_csv

    frames = pd.read_csv(a.frames, dtype={"video": str, "camera": str})
    fps = {}
    if a.summary:
        fps = {k: v["fps"] for k, v in json.loads(Path(a.summary).read_text())["per_video"].items()}
    top = top_anomalies(frames, fps, cfg["report"])
    write_csv(a.out, top)
    log.info("%s: %d segments", cfg["name"], len(top))


def cmd_pictures(cfg, a):
    from vad_pipeline.io import read_csv
    from vad_pipeline.pictures import pictures

    top = read_csv(a.top, ["rank", "video", "start_frame", "end_frame", "peak_frame", "peak_score"])
    objects = read_csv(a.objects, ["video", "frame", "x1", "y1", "x2", "y2", "score"])
    frames = read_csv(a.frames, ["video", "frame", "score", "label", "excluded"])
    cells = None
    if a.cells:
        from vad_pipeline.windows import read_terms

        cells = read_terms(a.cells)
    paths = pictures(top, objects, frames, cfg, a.out, cells)
    log.info("%s: %d pictures in %s", cfg["name"], len(paths), a.out)


def cmd_localise(cfg, a):
    from vad_pipeline import datasets as D
    from vad_pipeline.io import read_csv, write_json
    from vad_pipeline.localisation import localise
    from vad_pipeline.plots import localisation_curves

    objects = read_csv(a.objects, ["video", "frame", "x1", "y1", "x2", "y2", "score"])
    frames = read_csv(a.frames, ["video", "frame", "excluded"])
    result, curves = localise(objects, frames, lambda name: D.pixel_masks(cfg, name), cfg["localisation"])
    write_json(a.out, {"dataset": cfg["name"], **result})
    if a.plot:
        localisation_curves(curves, result, a.plot, cfg["name"])
    log.info("%s: RBDC %s TBDC %s pixel AUC %s", cfg["name"], result["rbdc"], result["tbdc"], result["pixel_auc"])


def cmd_ablation(cfg, a):
    from vad_pipeline.ablation import default_aucs, spec, write

    if "variants" not in cfg:  # by hand (--configfile, --dataset): the table's spec from the config
        cfg = spec(C.load(a.configfile), a.dataset)
    df = write(cfg, a.aucs or default_aucs(cfg, a.results), a.out, a.plot, missing_ok=a.partial, out_html=a.table)
    log.info("%s: %d ablation variants, %d with results", cfg["name"], len(df), df["auc_micro"].notna().sum())
    print(df.drop(columns=["switches", "source"]).to_string(index=False))   # the CSV has them


def cmd_bench(cfg, a):
    from vad_pipeline.bench import benchmark, decode_throughput
    from vad_pipeline.io import write_json

    result = benchmark(cfg["name"], a.results, max_cubes=cfg.get("train", {}).get("max_cubes"))
    for stage in ("detect", "flow"):  # frames/s per backend
        if stage in cfg and stage in result["stages"]:
            result["stages"][stage]["backend"] = cfg[stage]["backend"]
    from vad_pipeline.object_motion import best_box_flow_auc

    # proposals: how well the best box's mean flow magnitude alone ranks frames (issue 14)
    result["best_box_flow_auc"] = best_box_flow_auc(a.results, cfg["name"], cfg["frame_scores"]["exclude_first"])
    if cfg["dataset"]["layout"] == "demo":  # small enough to convert into every layout
        result["decode"] = decode_throughput(cfg)
    if a.out:
        write_json(a.out, result)
    print(json.dumps(result, indent=2))


def cmd_config(cfg, a):
    """Print every resolved setting of --dataset and the layer it came from (README "Configuration")."""
    if not a.dataset:
        raise VadError("config: give --dataset (the settings are read from --configfile)")
    raw = C.read(a.configfile)
    for path in a.also or []:  # like snakemake --configfile: merged over the config
        raw = C.deep_merge(raw, C.read(path))
    if a.preset:
        raw["preset"] = a.preset
    rows = C.explain(C.validate(raw, where=a.configfile), a.dataset, a.variant)
    if a.preset:
        rows = [(k, v, "--preset" if k == "preset" else layer) for k, v, layer in rows]
    print(C.format_explained(rows))

def read_cameras(paths: list[str] | None) -> dict[str, str]:
    from vad_pipeline.datasets.cameras import read_cameras as read

    return read(paths)


REQ = {"required": True}
CAMERAS = ("--cameras", {"nargs": "+", "help": "the labels rule's cameras/<split>.csv: each camera on its own "
                                                "(default: one camera)"})
SPLIT = ("--split", {"required": True, "choices": ["train", "test"]})
THREADS = ("--threads", {"type": int, "default": 1, "help": "threads of the nearest-neighbour queries (default: 1)"})
TERM_PART = ("--camera", {"help": "one part job: the objects (S_m) or the window layout (S_c) of this camera only "
                                  "('all': every camera), its rows with their place in the split, for gather-terms"})
TORCH_THREADS = ("--threads", {"type": int, "default": 0, "help": "cores the job may use (the rule's threads): "
                                                                  "torch's threads and the loader's workers follow "
                                                                  "them unless train.threads / train.workers pin "
                                                                  "them (default: torch's setting, $OMP_NUM_THREADS)"})
WEIGHTS = ("--weights", {"help": "the validation's weights.json (score.weights: auto); without it the fixed weights"})
APPLY = [("--bundle", {**REQ, "help": "the bundle folder"}),
         ("--batch-root", {**REQ, "help": "the batch's folder (or @file holding it)"}),
         ("--spec", {"default": "{}", "help": "the batch's settings (JSON): fps"}),
         ("--name", {"help": "dataset/batch (in titles)"}), ("--device", {"help": "auto, cpu, cuda (default: the bundle's)"})]
# subcommand: (function, help, [(flag, argparse options), ...])
NO_SETTINGS = {"make-camera-set", "gather-terms", "stc-gather", "cell-stats-gather", "bundle-import", "bundle-pack",
               "apply-video", "apply-scores"}   # takes its settings as flags, not a dataset's (no --params, --dataset)
COMMANDS = {
    "make-demo": (cmd_make_demo, "generate the synthetic demo dataset", [("--out", REQ)]),
    "make-camera-set": (cmd_make_camera_set, "generate a multi-camera set: the demo's scene per camera "
                        "(vad_pipeline.camera_set)",
                        [("--out", REQ), ("--layout", {"default": "frames", "choices": ["frames", "shanghaitech", "videos"]}),
                         ("--cameras", {"type": int, "default": 2, "help": "generated cameras (default: %(default)s)"}),
                         ("--size", {"default": "480x856", "help": "frame size HxW, or one per camera in camera "
                                                                   "order (Ped2 first): 480x856,360x640"}),
                         ("--train-clips", {"help": "training videos per generated camera, one number for all or "
                                                    "one per camera: 1,3 (default: each camera's own)"}),
                         ("--demo", {"help": "demo settings (JSON, or @file) every generated camera takes: "
                                             "'{\"n_frames\": 30}'"}),
                         ("--seed", {"type": int, "default": 11}),
                         ("--ped2", {"help": "UCSD Ped2 (frames layout) to add as camera 01"})]),
    "labels": (cmd_labels, "check the ground truth and write per-frame labels",
               [("--out", REQ), ("--summary", {"help": "also write gt_summary.json here"}),
                ("--cameras", {"nargs": "+", "help": "the cameras rule's files: each camera's videos and frames "
                                                     "in the summary"})]),
    "cameras": (cmd_cameras, "the camera of every video of a split (cameras/<split>.csv)",
                [SPLIT, ("--out", REQ)]),
    "detect": (cmd_detect, "detect objects in one video", [SPLIT, ("--video", REQ), ("--out", REQ)]),
    "flow": (cmd_flow, "optical flow of one video", [SPLIT, ("--video", REQ), ("--out", REQ)]),
    "stc": (cmd_stc, "build the spatio-temporal cubes of a split (or of one video: --part)",
            [SPLIT, ("--boxes", {"nargs": "+", **REQ}), ("--flows", {"nargs": "+", **REQ}), ("--out", REQ),
             ("--part", {"action": "store_true", "help": "a part of a split for stc-gather: no cube is no error"})]),
    "stc-gather": (cmd_stc_gather, "one STC file of a split from its videos' (virtual datasets: no cube copied)",
                   [SPLIT, ("--parts", {"nargs": "+", **REQ, "help": "the videos' STC files, in the split's order"}),
                    ("--out", REQ)]),
    "train": (cmd_train, "train the model on the training cubes",
              [("--stc", REQ), ("--out", REQ), ("--log", REQ), ("--plot", {}), ("--ckpt-dir", {}), TORCH_THREADS]),
    "infer": (cmd_infer, "raw per-object terms (S_f, S_p) of an STC file",
              [("--model", REQ), ("--stc", REQ), ("--out", REQ), TORCH_THREADS,
               ("--max-cubes", {"type": int, "default": 0, "help": "score every s-th cube, s the smallest that keeps "
                                                                   "at most this many (0: every cube)"})]),
    "motion-features": (cmd_motion_features, "per-object flow statistics, size and place of a split",
                        [("--boxes", {"nargs": "+", **REQ}), ("--flows", {"nargs": "+", **REQ}), ("--out", REQ)]),
    "motion-terms": (cmd_motion_terms, "motion-density term S_m of every training and test object",
                     [("--train", REQ), ("--test", REQ), ("--train-out", REQ), ("--test-out", REQ), CAMERAS,
                      TERM_PART, THREADS]),
    "score": (cmd_score, "z-score with training statistics and fuse",
              [("--train", REQ), ("--test", REQ), ("--out", REQ), ("--stats", {}),
               ("--motion-train", {"help": "the motion stage's S_m of the training objects"}),
               ("--motion-test", {"help": "... and of the test objects"}), CAMERAS, WEIGHTS]),
    "cell-layout": (cmd_cell_layout, "the windows of the cell term, fitted to the training boxes (JSON)",
                    [("--boxes", {"nargs": "+", **REQ}), ("--flows", {"nargs": "+", **REQ}), ("--out", REQ), CAMERAS]),
    "cell-stats": (cmd_cell_stats, "per window flow statistics of every video of a split (HDF5)",
                   [("--flows", {"nargs": "+", **REQ}), ("--layout", REQ), ("--out", REQ), CAMERAS]),
    "cell-stats-gather": (cmd_cell_stats_gather, "one cell-stats file of a split from its videos' (virtual "
                          "datasets: no statistic copied)",
                          [("--parts", {"nargs": "+", **REQ, "help": "the videos' cell-stats files, in the split's "
                                                                     "order"}), ("--out", REQ)]),
    "cell-terms": (cmd_cell_terms, "cell motion term S_c of every training and test frame",
                   [("--train", REQ), ("--test", REQ), ("--train-out", REQ), ("--test-out", REQ), CAMERAS,
                    TERM_PART, ("--band", {"help": "one part job: the I-th of N bands of rows of windows, IofN "
                                                   "(2of4; default 1of1: every row)"}), THREADS]),
    "gather-terms": (cmd_gather_terms, "a weight-free term from its part jobs (motion-terms --camera, cell-terms "
                     "--camera/--band): the one job's files",
                     [("--term", {**REQ, "choices": ["motion", "cells"], "help": "S_m (motion) or S_c (cells)"}),
                      ("--train", {"nargs": "+", **REQ, "help": "the part jobs' training files"}),
                      ("--test", {"nargs": "+", **REQ, "help": "... and test files, in the same order"}),
                      ("--train-out", REQ), ("--test-out", REQ)]),
    "frame-scores": (cmd_frame_scores, "max-pool object scores to frames (plus the cell term S_c)",
                     [("--objects", REQ), ("--labels", REQ), ("--out", REQ),
                      ("--cells-train", {"help": "the cell stage's S_c of the training frames"}),
                      ("--cells-test", {"help": "... and of the test frames"}), CAMERAS, WEIGHTS]),
    "validation-video": (cmd_validation_video, "the raw terms of one held-out training video made pseudo-anomalous "
                         "(vad_pipeline.validation)",
                         [("--video", REQ), ("--model", REQ), ("--layout", {**REQ, "help": "cells/layout.json"}),
                          ("--boxes", {"nargs": "+", **REQ, "help": "the training videos' detections (pasted objects)"}),
                          ("--box-videos", {"nargs": "+", **REQ, "help": "... their videos, in the same order"}),
                          ("--out", {**REQ, "help": "folder"}), TORCH_THREADS]),
    "validation": (cmd_validation, "the validation table and the fusion weights it chooses (weights.json)",
                   [("--parts", {"nargs": "+", **REQ, "help": "the validation-video folders"}),
                    ("--infer", {**REQ, "help": "infer/train.csv"}), ("--motion", {**REQ, "help": "motion/train.csv"}),
                    ("--features", {**REQ, "help": "motion/features_train.csv"}),
                    ("--cell-stats", {**REQ, "help": "cells/stats_train.h5"}), ("--cells", {**REQ, "help": "cells/train.csv"}),
                    ("--table", REQ), ("--out", REQ), ("--frames", {"help": "every validation frame's scores (CSV)"}),
                    CAMERAS]),
    "bundle": (cmd_bundle, "a trained dataset's bundle: what scoring new footage needs (vad_pipeline.bundle)",
               [("--model", REQ), ("--infer", {**REQ, "help": "infer/train.csv"}),
                ("--motion", {**REQ, "help": "motion/train.csv"}), ("--features", {**REQ, "help": "motion/features_train.csv"}),
                ("--cells", {**REQ, "help": "cells/train.csv"}), ("--cell-stats", {**REQ, "help": "cells/stats_train.h5"}),
                ("--layout", {**REQ, "help": "cells/layout.json"}), ("--cameras", {**REQ, "help": "cameras/train.csv"}),
                WEIGHTS, ("--out", {**REQ, "help": "folder"})]),
    "bundle-import": (cmd_bundle_import, "a bundle (folder or archive) checked and copied to a folder",
                      [("--source", REQ), ("--out", {**REQ, "help": "folder"})]),
    "bundle-pack": (cmd_bundle_pack, "a bundle folder as one .tar.gz", [("--bundle", REQ), ("--out", REQ)]),
    "apply-video": (cmd_apply_video, "one video of a batch scored with a bundle (vad_pipeline.apply)",
                    [*APPLY, ("--video", REQ), ("--camera", REQ), ("--out", {**REQ, "help": "folder"}), TORCH_THREADS]),
    "apply-scores": (cmd_apply_scores, "a batch's object and frame scores from its videos' (vad_pipeline.apply)",
                     [*APPLY, ("--parts", {"nargs": "+", **REQ, "help": "the apply-video folders, in the batch's order"}),
                      ("--cameras", {**REQ, "help": "{video: camera} of the batch (JSON, or @file)"}),
                      ("--report", {"help": "the report section to take (JSON)"}),
                      *[(f"--{k}", REQ) for k in ("labels", "summary", "cells", "objects", "frames", "settings")],
                      ("--stats", {})]),
    "evaluate": (cmd_evaluate, "frame-level AUC, AP, EER and plots",
                 [("--frames", REQ), ("--out", REQ), ("--roc", {}), ("--curves", {}), ("--top", {}),
                  ("--summary", {"help": "gt_summary.json (frame rates for time stamps)"}),
                  ("--localisation", {"help": "localisation.json, copied into auc.json under 'localisation'"}),
                  ("--validation", {"help": "the validation's weights.json, copied into auc.json under 'validation'"}),
                  ("--table", {"help": "also write the figures as an HTML table (for the report)"}),
                  ("--benchmark", {"help": "benchmark.json, added to the --table"}),
                  ("--figures", {"nargs": "+", "help": "PNG files or folders of them, embedded in the --table "
                                                       "after the ROC and score curves"})]),
    "top-anomalies": (cmd_top_anomalies, "the highest-peaking segments of frame scores (top_anomalies.csv)",
                      [("--frames", REQ), ("--out", REQ),
                       ("--summary", {"help": "gt_summary.json (frame rates for time stamps)"})]),
    "pictures": (cmd_pictures, "pictures of the top anomalies and a contact sheet",
                 [("--top", REQ), ("--objects", REQ), ("--frames", REQ), ("--out", {**REQ, "help": "folder"}),
                  ("--cells", {"help": "the cell stage's test frames (cells/test.csv): S_c's window drawn too"})]),
    "localise": (cmd_localise, "RBDC, TBDC and pixel-level AUC from object boxes and pixel masks",
                 [("--objects", REQ), ("--frames", REQ), ("--out", REQ), ("--plot", {})]),
    "ablation": (cmd_ablation, "table (and bar chart) of the ablation variants' AUCs against the paper's",
                 [("--aucs", {"nargs": "+", "help": "auc.json of each variant, in the order of --params "
                                                     "(default: the workflow's, under --results)"}),
                  ("--results", {"default": "results"}),
                  ("--partial", {"action": "store_true", "help": "variants without an auc.json yet: empty rows"}),
                  ("--out", {"help": "the table as CSV (it is always printed)"}), ("--plot", {}),
                  ("--table", {"help": "the table as HTML (for the report)"})]),
    "config": (cmd_config, "print a dataset's resolved settings, each with the layer it comes from",
               [("--preset", {"help": "the preset to resolve with (default: the config's)"}),
                ("--variant", {"help": "an ablation variant: its overrides apply last"}),
                ("--also", {"nargs": "+", "help": "config files merged over --configfile (as snakemake --configfile)"})]),
    "bench": (cmd_bench, "collect per-stage time, memory, throughput and disk use",
              [("--results", {"default": "results"}), ("--out", {})]),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vad-pipeline", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)
    for name, (fn, help_, args) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_)
        if name not in NO_SETTINGS:
            sp.add_argument("--params", help="stage settings as JSON (or @file)")
            sp.add_argument("--configfile", default="config.yaml")
            sp.add_argument("--dataset", help="dataset name in the config (with --configfile)")
            sp.add_argument("--root", help="the dataset's folder (or @file holding it), over the settings' one")
        for flag, opts in args:
            sp.add_argument(flag, **opts)
        sp.set_defaults(fn=fn)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        args.fn({} if args.command in NO_SETTINGS else _settings(args), args)
    except VadError as exc:
        print(f"vad-pipeline {args.command}: error: {exc}", file=sys.stderr)
        return 1
    return 0
