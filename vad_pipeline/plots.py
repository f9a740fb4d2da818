"""Figures people would rather look at than read: loss curves, ROC, per-video score curves."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from vad_pipeline.intervals import runs  # noqa: E402
from vad_pipeline.io import atomic_path  # noqa: E402


def _save(fig, out: str) -> None:
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def loss_curve(log_csv: str, out: str) -> None:
    df = pd.read_csv(log_csv)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bookkeeping = {"epoch", "lr", "seconds", "samples_per_s", "peak_mem_mb"}
    for col in [c for c in df.columns if c not in bookkeeping]:  # the loss and the model's terms
        v = df[col]
        if v.notna().any() and (v.dropna() <= 0).all():  # e.g. mgsm's div (<= 0): its size, on the log axis
            v, col = -v, f"-{col}"
        if v.notna().any() and (v.dropna() > 0).all():
            ax.plot(df["epoch"], v, marker="o", ms=3, label=col)
    ax.set(xlabel="epoch", ylabel="mean over training cubes", yscale="log", title="training loss")
    ax.legend()
    _save(fig, out)


def roc(frames: pd.DataFrame, out: str, title: str) -> None:
    from vad_pipeline.evaluate import auc, roc_curve  # sklearn: loss_curve (train) needs none

    used = frames[~frames["excluded"] & (frames["label"] >= 0)]
    y, s = used["label"].to_numpy().astype(bool), used["score"].to_numpy(float)
    fig, ax = plt.subplots(figsize=(4, 4))
    if y.any() and not y.all():
        fpr, tpr, _ = roc_curve(y, s)
        ax.plot(fpr, tpr, label=f"AUC {auc(y, s):.3f}")
        ax.legend(loc="lower right")
    else:
        ax.text(0.5, 0.5, "no ground truth:\nno ROC", ha="center", va="center")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    _save(fig, out)


def score_curves(frames: pd.DataFrame, out: str, title: str) -> None:
    """One panel per video: frame score, abnormal ground truth shaded, excluded frames greyed."""
    videos = list(dict.fromkeys(frames["video"].astype(str)))
    cols = min(4, len(videos))
    rows = -(-len(videos) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.2 * rows), squeeze=False)
    for ax, name in zip(axes.flat, videos):
        g = frames[frames["video"].astype(str) == name]
        for a, b in runs(g["label"].to_numpy() > 0):
            ax.axvspan(g["frame"].iloc[a], g["frame"].iloc[b], color="tab:red", alpha=0.2, lw=0)
        for a, b in runs(g["excluded"].to_numpy().astype(bool)):
            ax.axvspan(g["frame"].iloc[a], g["frame"].iloc[b], color="grey", alpha=0.3, lw=0)
        ax.plot(g["frame"], g["score"], lw=1)
        ax.set_title(f"video {name}", fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(videos):]:
        ax.axis("off")
    fig.suptitle(f"{title}: frame scores (red: abnormal ground truth)", fontsize=10)
    fig.tight_layout()
    _save(fig, out)


def localisation_curves(curves: dict, result: dict, out: str, title: str) -> None:
    """Region and track detection rates against false positives per frame (RBDC, TBDC)."""
    p = result["protocol"]
    fig, ax = plt.subplots(figsize=(5, 3.8))
    for key, name in (("rbdc", "RBDC"), ("tbdc", "TBDC")):
        if result[key] is not None:
            ax.plot(curves["fpr"], curves[key], label=f"{name} {result[key]:.3f}")
    ax.axvline(p["max_fpr"], color="k", ls=":", lw=0.8)
    xmax = max(p["max_fpr"] * 1.25, 0.1)
    ax.set(xlim=(0, xmax), ylim=(0, 1.02), xlabel="false positives per frame", ylabel="detection rate",
           title=f"{title}: localisation (overlap {p['overlap']}, pixel AUC "
                 f"{'-' if result['pixel_auc'] is None else format(result['pixel_auc'], '.3f')})")
    ax.legend(loc="lower right")
    _save(fig, out)
