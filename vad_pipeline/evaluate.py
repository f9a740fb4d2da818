"""Frame-level scores and metrics.

``frame_scores``: each frame's score is the maximum over its objects; a frame with no object gets
``fill`` (``min``: the lowest object score of the dataset); optional per-video min-max
rescaling (``per_video``) and Gaussian smoothing; the first ``exclude_first`` frames of every
video (no full cube exists there) are marked excluded. Each score term the objects carry is
pooled the same way on its own, as the fused score uses it: z-scored (per camera with
``cameras.normalize: camera``) before the maximum (``score_f``, ``score_p``, ``score_m`` from
``z_f``, ``z_p``, ``z_m``), so a user sees which term detects and a term's pooled AUC compares
with the fused one. Given the cell stage's frame-level S_c (:mod:`vad_pipeline.windows`), the frame
score adds ``score.w_c`` times its z-score (mean and standard deviation of the training frames'
S_c, each scored without its own video), which is ``score_c``.
A test video without any scored object (nothing detected: a frozen camera, an empty corridor) is
normal footage, scored like any other: its frames take ``fill``, plus the weighted S_c of its
windows; ``frame_scores`` warns with their names and auc.json lists them (``videos_without_objects``).
``evaluate``: micro AUC (all frames pooled), macro AUC (mean over videos that have both classes),
average precision and equal error rate (scikit-learn's ``roc_auc_score``, ``roc_curve``,
``average_precision_score``), and the micro AUC of each term alone; the AUCs also per camera.
Beside these raw figures, auc.json holds the same in the papers' convention (their code's)
(``papers_convention``, :data:`PAPERS`, fixed in advance, never tuned): each video's first 4 frames
dropped, then its frame scores (the fused one and each term's) median-filtered over 17 frames.
"""

from __future__ import annotations

import logging
import platform
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter1d, median_filter
from sklearn import metrics as _sk

from vad_pipeline.intervals import runs
from vad_pipeline.io import VadError, atomic_path, read_csv, write_csv, write_json

log = logging.getLogger(__name__)


def labels_table(videos, labels: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per test frame: video, frame, label (-1 where the dataset has no ground truth)."""
    rows = []
    for v in videos:
        lab = labels.get(v.name)
        rows.append(pd.DataFrame({"video": v.name, "frame": np.arange(v.n_frames),
                                  "label": lab.astype(int) if lab is not None else -1}))
    return pd.concat(rows, ignore_index=True)


TERMS = {"s_f": "score_f", "s_p": "score_p", "s_m": "score_m", "s_c": "score_c"}   # term -> its frame-level column


def terms(objects: pd.DataFrame) -> list[str]:
    """The score terms the objects carry (a one-stream model has no S_f: all NaN)."""
    return [t for t in TERMS if t in objects.columns and objects[t].notna().any()]


def add_cells(df: pd.DataFrame, cells: tuple[pd.DataFrame, pd.DataFrame], w_c: float | np.ndarray, exclude_first: int,
              cameras: dict[str, str] | None = None) -> pd.DataFrame:
    """``df`` (one row per test frame, object-pooled ``score``, its ``camera``) with ``score_c`` =
    z(S_c) and ``score`` + ``w_c`` * z(S_c) (``w_c``: one weight, or one per row of ``df``); z from
    the training frames that are not excluded (of the frame's own camera, given ``cameras``)."""
    from vad_pipeline.datasets.cameras import of
    from vad_pipeline.fusion import camera_z

    train, test = cells
    df = df.merge(test[["video", "frame", "s_c"]].rename(columns={"s_c": "score_c"}), on=["video", "frame"], how="left")
    if df["score_c"].isna().any():
        row = df[df["score_c"].isna()].iloc[0]
        raise VadError(f"the cell term has no score for video {row['video']} frame {row['frame']}: rerun cell_stats")
    ref = train.loc[train["frame"] >= exclude_first].rename(columns={"s_c": "score_c"})
    z, _ = camera_z(ref.assign(camera=of(ref["video"], cameras or {})), df, "score_c", bool(cameras))
    df["score_c"] = z
    if np.any(w_c != 0):   # w_c = 0 leaves the object-pooled score untouched, bit for bit
        df["score"] = df["score"] + w_c * z
    return df


def frame_scores(objects: pd.DataFrame, labels: pd.DataFrame, cfg: dict,
                 cells: tuple[pd.DataFrame, pd.DataFrame] | None = None,
                 cameras: dict[str, str] | None = None, source: str = "object scores",
                 weights: str | None = None) -> pd.DataFrame:
    """``cells``: the cell stage's (training, test) frame tables, for S_c; ``cameras``: {video:
    camera} (the ``camera`` column; S_c z-scored per camera with ``cameras.normalize: camera``);
    ``source``: where ``objects`` come from (the file, in errors); ``weights``: the validation's
    weights.json (``score.weights: auto``: each camera's w_c)."""
    from vad_pipeline.datasets.cameras import of
    from vad_pipeline.validation import per_row, weights_for

    p = cfg["frame_scores"]
    objects = objects.astype({"video": str})
    labels = labels.astype({"video": str})
    unknown = set(objects["video"]) - set(labels["video"])
    if unknown:
        raise VadError(f"object scores name videos without labels: {sorted(unknown)}")
    # frame column -> object column it max-pools: each term z-scored as the fused score takes it
    # (fusion.fuse's z_*); the raw term would be on another scale than the fused score's
    pooled = {"score": "score", **{TERMS[t]: f"z_{t[2:]}" for t in terms(objects)}}
    if missing := [c for c in pooled.values() if c not in objects]:
        raise VadError(f"{source}: no column {', '.join(missing)} (the z-scores of its terms): written by an older "
                       "version; rerun the score rule")
    agg = objects.groupby(["video", "frame"]).agg(
        n_objects=("score", "size"), **{c: (src, "max") for c, src in pooled.items()}).reset_index()
    df = labels.merge(agg, on=["video", "frame"], how="left")
    df["n_objects"] = df["n_objects"].fillna(0).astype(int)
    for c, src in pooled.items():
        if p["fill"] == "min" or c != "score":   # a term has no scale of its own: its lowest value
            fill = float(objects[src].min()) if len(objects) else 0.0  # no object anywhere: 0
        else:
            fill = float(p["fill"])
        df[c] = df[c].fillna(fill)
    df["camera"] = of(df["video"], cameras or {})
    if cells is not None:
        by_camera = bool(cameras) and cfg["cameras"]["normalize"] == "camera"
        default, chosen = weights_for(cfg, weights)
        w_c = per_row(df["camera"], default, chosen, "w_c") if chosen else default["w_c"]
        df = add_cells(df, cells, w_c, int(p["exclude_first"]), cameras if by_camera else None)
        pooled["score_c"] = "s_c"
    df["excluded"] = df["frame"] < p["exclude_first"]
    out = []
    for _, g in df.groupby("video", sort=False):
        g = g.copy()
        keep = ~g["excluded"].to_numpy()
        for c in pooled:
            s = g[c].to_numpy(float).copy()
            if p["per_video"] == "minmax" and keep.any():
                lo, hi = s[keep].min(), s[keep].max()
                s = (s - lo) / (hi - lo) if hi > lo else np.zeros_like(s)
            elif p["per_video"] == "causal" and keep.any():
                s[keep] = s[keep] - causal_baseline(s[keep], int(p["causal_frames"]))
            if p["smoothing"] > 0 and keep.any():
                s[keep] = gaussian_filter1d(s[keep], p["smoothing"], mode="nearest")
            g[c] = s
        out.append(g)
    df = pd.concat(out)[["video", "frame", "score", "label", "n_objects", "excluded", *list(pooled)[1:], "camera"]]
    quiet = quiet_videos(df)
    if quiet:
        log.warning("%d test video(s) with no scored object in any frame (nothing detected, or only in their "
                    "first frames): %s; their frames take the no-object score (frame_scores.fill)%s",
                    len(quiet), ", ".join(quiet), " plus w_c times S_c" if cells is not None else "")
    return df


def causal_baseline(s: np.ndarray, frames: int) -> np.ndarray:
    """Each frame's baseline for ``frame_scores.per_video: causal``: the median of the video's
    scores over the ``frames`` frames up to it (itself included): only the past, never a later
    frame, so a live camera could compute it."""
    return np.array([np.median(s[max(0, t - frames + 1) : t + 1]) for t in range(len(s))])


def quiet_videos(frames: pd.DataFrame) -> list[str]:
    """The test videos none of whose frames has a scored object (frame_scores' ``n_objects``)."""
    if "n_objects" not in frames:   # a frame_scores.csv of older code
        return []
    n = frames.groupby(frames["video"].astype(str), sort=False)["n_objects"].sum()
    return [str(v) for v in n.index[n == 0]]


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true positive rates at every distinct threshold (ties are one threshold), from
    (0, 0) at threshold +inf: scikit-learn's ``roc_curve`` with no point dropped."""
    fpr, tpr, thr = _sk.roc_curve(np.asarray(labels).astype(bool), np.asarray(scores, dtype=float),
                                  drop_intermediate=False)
    return fpr, tpr, thr


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (scikit-learn's ``roc_auc_score``; a tie counts half a pair)."""
    return float(_sk.roc_auc_score(np.asarray(labels).astype(bool), np.asarray(scores, dtype=float)))


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Sum over thresholds of (recall step) x precision (scikit-learn's ``average_precision_score``)."""
    return float(_sk.average_precision_score(np.asarray(labels).astype(bool), np.asarray(scores, dtype=float)))


def eer(labels: np.ndarray, scores: np.ndarray) -> float:
    """Equal error rate: where the false positive rate meets the false negative rate on the ROC
    curve of :func:`roc_curve`, interpolated linearly between the two points around the crossing."""
    fpr, tpr, _ = roc_curve(labels, scores)
    fnr = 1 - tpr
    i = int(np.flatnonzero(fnr <= fpr)[0])
    if i == 0:
        return float(fpr[0])
    d0, d1 = fnr[i - 1] - fpr[i - 1], fnr[i] - fpr[i]
    a = d0 / (d0 - d1) if d0 != d1 else 0.0
    return float(fpr[i - 1] + a * (fpr[i] - fpr[i - 1]))


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("vad-pipeline", "torch", "numpy", "scikit-learn", "opencv-python-headless", "h5py", "snakemake"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def _aucs(used: pd.DataFrame) -> tuple[dict, dict]:
    """Micro AUC, each term alone, macro AUC of some frames (None where they hold one class), and
    the AUC of each video that has both classes."""
    y = used["label"].to_numpy().astype(bool)
    per_video = {}
    for name, g in used.groupby("video"):
        gy = g["label"].to_numpy().astype(bool)
        if gy.any() and not gy.all():
            per_video[str(name)] = auc(gy, g["score"].to_numpy(float))
    both = y.any() and not y.all()
    return {
        "auc_micro": auc(y, used["score"].to_numpy(float)) if both else None,
        # each term alone (frame_scores' score_f / score_p / ...: z-scored as the fused score takes
        # them), to see which one carries the detection
        "auc_terms": {t: auc(y, used[c].to_numpy(float)) for t, c in TERMS.items() if c in used} if both else {},
        "auc_macro": float(np.mean(list(per_video.values()))) if per_video else None,
        "n_frames": int(len(used)),
        "n_abnormal": int(y.sum()),
    }, per_video


def metrics(frames: pd.DataFrame) -> dict:
    used = frames[~frames["excluded"] & (frames["label"] >= 0)]
    y, s = used["label"].to_numpy().astype(bool), used["score"].to_numpy(float)
    if len(used) == 0 or y.all() or not y.any():
        raise VadError("the evaluated frames hold only one class: AUC is undefined (check the ground truth)")
    pooled, per_video = _aucs(used)
    cams = used["camera"].astype(str) if "camera" in used else pd.Series("all", index=used.index)
    return {
        "auc_micro": pooled["auc_micro"],
        "auc_terms": pooled["auc_terms"],
        "auc_macro": pooled["auc_macro"],
        "ap": average_precision(y, s),
        "eer": eer(y, s),
        "n_frames": pooled["n_frames"],
        "n_abnormal": pooled["n_abnormal"],
        # the same figures camera by camera (frame scores are comparable across cameras when each
        # camera is normalised against its own training data: cameras.normalize)
        "cameras": {str(c): _aucs(g)[0] for c, g in used.groupby(cams, sort=True)},
        "auc_per_video": per_video,
        "papers_convention": papers_convention(frames),
    }


# The papers' code: each stream z-scored with training statistics (as the fused score
# already is), the first 4 frames of each video dropped, a 17-frame median filter over each video's
# remaining frame scores (edges: the nearest frame repeated). Fixed in advance; figures beside the
# raw ones, never instead of them.
PAPERS = {"exclude_first": 4, "median_frames": 17}


def papers_convention(frames: pd.DataFrame) -> dict:
    """Micro and macro AUC, AP and each term's micro AUC of ``frames`` in the papers' convention
    (:data:`PAPERS`), with that protocol."""
    kept = frames[frames["frame"] >= PAPERS["exclude_first"]].sort_values(["video", "frame"], kind="stable")
    columns = ["score", *(c for c in TERMS.values() if c in kept)]
    smooth = []
    for _, g in kept.groupby("video", sort=False):
        g = g.copy()
        for c in columns:
            g[c] = median_filter(g[c].to_numpy(float), size=PAPERS["median_frames"], mode="nearest")
        smooth.append(g)
    used = pd.concat(smooth) if smooth else kept
    used = used[used["label"] >= 0]
    y = used["label"].to_numpy().astype(bool)
    if len(used) == 0 or y.all() or not y.any():
        return {"auc_micro": None, "auc_macro": None, "ap": None, "auc_terms": {}, "protocol": PAPERS}
    pooled, _ = _aucs(used)
    return {"auc_micro": pooled["auc_micro"], "auc_macro": pooled["auc_macro"],
            "ap": average_precision(y, used["score"].to_numpy(float)), "auc_terms": pooled["auc_terms"],
            "n_frames": pooled["n_frames"], "protocol": PAPERS}


NO_GT = {"auc_micro": None, "auc_terms": {}, "auc_macro": None, "ap": None, "eer": None, "cameras": {},
         "auc_per_video": {}}


def evaluate(frames_csv: str, out: str, protocol: dict, dataset: str, extra: dict | None = None) -> dict:
    """auc.json; a dataset without ground truth gets null metrics and a note saying why. ``extra``
    (e.g. ``localisation``: RBDC, TBDC, pixel AUC and their protocol) is added before the protocol."""
    frames = read_csv(frames_csv, ["video", "frame", "score", "label", "excluded"])
    if (frames["label"] < 0).all():
        used = frames[~frames["excluded"]]
        body = {**NO_GT, "n_frames": int(len(used)), "n_abnormal": None,
                "note": "no ground truth for this dataset (labelled: false, or no labels.csv): "
                        "no AUC; see frame_scores.csv, scores.png and top_anomalies.csv"}
    else:
        body = metrics(frames)
    result = {"dataset": dataset, **body, "videos_without_objects": quiet_videos(frames), **(extra or {}),
              "protocol": protocol, "versions": versions()}
    write_json(out, result)
    return result


def _embed(path: str | Path, max_bytes: int = 150_000) -> str:
    """A data URI of a figure; a large PNG (photographs) is re-encoded as JPEG, at most 1200 px
    wide: the report viewer opens a page as a data URL, which Chromium caps at 2 MB."""
    import base64

    import cv2

    raw, mime = Path(path).read_bytes(), "image/png"
    if len(raw) > max_bytes:
        img = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
        if img is not None:
            if img.shape[1] > 1200:
                img = cv2.resize(img, (1200, round(img.shape[0] * 1200 / img.shape[1])), interpolation=cv2.INTER_AREA)
            raw, mime = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes(), "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(raw).decode('ascii')}"


def html_summary(result: dict, bench: dict | None, out: str, figures: list[str] | None = None) -> None:
    """The run on one self-contained page: auc.json's headline figures as tables, then ``figures``
    (PNG files, embedded), then the AUC per video and benchmark.json's figures (when given)."""
    import html

    def cell(v) -> str:
        return "-" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)

    def table(rows: list[tuple], head: tuple) -> str:
        return pd.DataFrame([(a, cell(b)) for a, b in rows], columns=list(head)).to_html(index=False, border=0)

    parts = [f"<h3>{html.escape(str(result['dataset']))}: frame-level metrics</h3>"]
    if result.get("auc_micro") is None:
        parts.append(f"<p>{html.escape(result.get('note', 'no ground truth'))}</p>")
    else:
        rows = [("AUC micro (all frames pooled)", result["auc_micro"]), ("AUC macro (mean over videos)", result["auc_macro"]),
                ("average precision", result["ap"]), ("equal error rate", result["eer"]),
                *((f"AUC of {t} alone", v) for t, v in result.get("auc_terms", {}).items()),
                ("frames evaluated", result["n_frames"]), ("abnormal frames", result["n_abnormal"])]
        papers = result.get("papers_convention") or {}
        if papers.get("auc_micro") is not None:   # the papers' convention, labelled as such
            rows += [(f"AUC micro, papers' convention ({papers['protocol']['median_frames']}-frame median, "
                      f"first {papers['protocol']['exclude_first']} frames dropped)", papers["auc_micro"]),
                     ("AUC macro, papers' convention", papers["auc_macro"])]
        parts.append(table(rows, ("metric", "value")))
    cams = result.get("cameras") or {}
    if len(cams) > 1:
        parts.append("<h3>Per camera</h3>")
        terms = sorted({t for c in cams.values() for t in c.get("auc_terms", {})})
        rows = [{"camera": c, "AUC micro": v["auc_micro"], "AUC macro": v["auc_macro"],
                 **{f"{t} alone": v.get("auc_terms", {}).get(t) for t in terms},
                 "frames": v["n_frames"], "abnormal": v["n_abnormal"]} for c, v in cams.items()]
        parts.append(pd.DataFrame(rows).to_html(index=False, border=0, na_rep="-", float_format="%.4f"))
    if result.get("videos_without_objects"):
        parts.append(f"<p>Test videos without any scored object (their frames take the no-object score): "
                     f"{html.escape(', '.join(result['videos_without_objects']))}</p>")
    val = result.get("validation")
    if val:
        parts.append("<h3>Label-free validation (pseudo-anomalies of held-out training videos)</h3>")
        def weights(w: dict) -> str:
            return html.escape(", ".join(f"{k} {v:g}" for k, v in w.items()))

        parts.append(f"<p>Held out: {html.escape(', '.join(val['held_out']))}. Fusion weights "
                     f"({html.escape(val['weights_used'])}): {weights(val['default'])}"
                     + "".join(f"; camera {html.escape(c)}: {weights(w)}" for c, w in val["cameras"].items())
                     + f". Rule: {html.escape(val['rule'])}.</p>")
        parts.append(pd.DataFrame(val["table"]).to_html(index=False, border=0, na_rep="-", float_format="%.4f"))
    loc = result.get("localisation")
    if loc:
        p = loc["protocol"]
        parts.append("<h3>Localisation (Ramachandra and Jones, WACV 2020)</h3>")
        rows = [(f"RBDC (overlap {p['overlap']}, up to {p['max_fpr']} FP/frame)", loc["rbdc"]),
                (f"TBDC (track fraction {p['track_fraction']})", loc["tbdc"]), ("pixel-level AUC", loc["pixel_auc"]),
                ("frames", loc["n_frames"]), ("ground-truth regions", loc["n_regions"]),
                ("ground-truth tracks", loc["n_tracks"]), ("object boxes", loc["n_detections"])]
        parts.append(table(rows, ("metric", "value")))
    for path in figures or []:
        import cv2

        name = html.escape(Path(path).name)
        img = cv2.imread(str(path), cv2.IMREAD_REDUCED_GRAYSCALE_8)
        wide = img is not None and img.shape[1] > 2.5 * img.shape[0]   # e.g. score curves: full width
        parts.append(f"<figure{' class=wide' if wide else ''}><img alt='{name}' src='{_embed(path)}'>"
                     f"<figcaption>{name}</figcaption></figure>")
    if result.get("auc_per_video"):
        parts.append("<h3>AUC per video</h3>")
        parts.append(table(list(result["auc_per_video"].items()), ("video", "AUC")))
    if bench:
        parts.append("<h3>Per stage (benchmark.json)</h3>")
        stages = pd.DataFrame.from_dict(bench["stages"], orient="index").rename_axis("stage").reset_index()
        parts.append(stages.to_html(index=False, border=0, na_rep="-"))
        if bench.get("decode"):
            parts.append("<h3>Decoding per layout</h3>")
            dec = pd.DataFrame.from_dict(bench["decode"], orient="index").rename_axis("layout").reset_index()
            parts.append(dec.to_html(index=False, border=0, na_rep="-"))
    style = ("<style>body{font-family:sans-serif} table{border-collapse:collapse;margin-bottom:1em} "
             "td,th{padding:2px 10px;border-bottom:1px solid #ddd;text-align:right} "
             "td:first-child,th:first-child{text-align:left} "
             "figure{display:inline-block;vertical-align:top;max-width:48%;margin:0 1% 1em 0} "
             "figure.wide{max-width:98%} figure img{max-width:100%} figcaption{font-size:small;color:#555}</style>")
    with atomic_path(out) as tmp:
        tmp.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'>{style}</head><body>\n"
                       + "\n".join(parts) + "\n</body></html>\n")


def _segments(keep: np.ndarray, merge_gap: int) -> list[tuple[int, int]]:
    """Runs of True as (first, last) index pairs, runs separated by <= merge_gap frames joined."""
    out: list[tuple[int, int]] = []
    for a, b in runs(keep):
        if out and a - out[-1][1] - 1 <= merge_gap:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def _clock(seconds: float) -> str:
    m, s = divmod(seconds, 60)
    h, m = divmod(int(m), 60)
    return f"{h:02d}:{m:02d}:{s:06.3f}"


def top_anomalies(frames: pd.DataFrame, fps: dict[str, float | None], p: dict) -> pd.DataFrame:
    """The ``top_k`` highest-peaking segments of frames above the ``quantile`` of all scores."""
    used = frames[~frames["excluded"].astype(bool)]
    cols = ["rank", "video", "start_frame", "end_frame", "peak_frame", "peak_score", "mean_score",
            "start_s", "end_s", "start_time", "end_time", "label_overlap"]
    if used.empty:
        return pd.DataFrame(columns=cols)
    threshold = float(np.quantile(used["score"], p["quantile"]))
    rows = []
    for name, g in used.groupby("video", sort=False):
        s, f = g["score"].to_numpy(float), g["frame"].to_numpy(int)
        lab = g["label"].to_numpy()
        for a, b in _segments(s >= threshold, p["merge_gap"]):
            peak = a + int(np.argmax(s[a : b + 1]))
            rate = fps.get(str(name))
            start_s, end_s = (f[a] / rate, (f[b] + 1) / rate) if rate else (None, None)
            rows.append({
                "video": str(name), "start_frame": int(f[a]), "end_frame": int(f[b]),
                "peak_frame": int(f[peak]), "peak_score": float(s[peak]), "mean_score": float(s[a : b + 1].mean()),
                "start_s": start_s, "end_s": end_s,
                "start_time": _clock(start_s) if rate else None, "end_time": _clock(end_s) if rate else None,
                # fraction of the segment's frames that the ground truth calls abnormal (when known)
                "label_overlap": float((lab[a : b + 1] > 0).mean()) if (lab >= 0).all() else None,
            })
    df = pd.DataFrame(rows, columns=cols[1:])
    df = df.sort_values("peak_score", ascending=False, kind="stable").head(p["top_k"])
    df.insert(0, "rank", np.arange(1, len(df) + 1))
    return df.reset_index(drop=True)


def write_frame_scores(objects_csv: str, labels_csv: str, out: str, cfg: dict,
                       cells: tuple[str, str] | None = None, cameras: dict[str, str] | None = None,
                       weights: str | None = None) -> pd.DataFrame:
    """``cells``: the cell stage's (training, test) CSVs; ``cameras``: {video: camera}; ``weights``:
    the validation's weights.json."""
    from vad_pipeline.windows import read_terms

    objects = read_csv(objects_csv, ["video", "frame", "score"])
    labels = read_csv(labels_csv, ["video", "frame", "label"])
    df = frame_scores(objects, labels, cfg, (read_terms(cells[0]), read_terms(cells[1])) if cells else None, cameras,
                      objects_csv, weights)
    write_csv(out, df)
    return df
