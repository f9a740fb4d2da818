"""Ablation table: one row per variant of config.yaml's ``ablation:`` section, ours against the paper.

Each variant is a set of config overrides (switches of the models, e.g. ``model.fusion: none`` or
``model.memory: false``) trained, inferred, scored and evaluated by the workflow like the main
model (workflow/rules/ablation.smk, results/<dataset>/ablation/<variant>/auc.json). ``collect``
puts their AUCs beside the paper's numbers for the dataset; ``plot`` draws both as bars.
All AUCs in the table are in percent, as the papers print them; ``diff`` is ours (micro: all
frames pooled, the papers' protocol) minus the paper's, in percentage points; ``auc_s_f``,
``auc_s_p``, ``auc_s_m`` and ``auc_s_c`` are the micro AUC of each score term alone (empty where the variant has no such term).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from vad_pipeline.io import VadError, atomic_path, write_csv

COLUMNS = ["variant", "model", "switches", "source", "auc_micro", "auc_macro", "paper", "diff",
           "auc_s_f", "auc_s_p", "auc_s_m", "auc_s_c"]


def describe(overrides: dict) -> str:
    """The switches of a variant in one line, e.g. ``model.streams=appearance model.memory=false
    model.skips=[1,2]`` (model.name has its own column)."""
    parts = []

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        elif prefix != "model.name":
            text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
            parts.append(f"{prefix}={text}")

    walk("", overrides)
    return " ".join(parts) or "(as configured)"


def trained_by(config: dict, dataset: str) -> dict[str, str]:
    """Per variant, the variant whose trained model it uses on ``dataset``: the first one, in config
    order, that resolves to the same training settings (itself, unless two coincide: on Ped2, whose
    memories have 40 items, ``mgsm_mem40`` is ``mgsm``), so that one training serves both."""
    from vad_pipeline.config import TRAIN_SECTIONS, resolve

    owners: dict[str, str] = {}
    first: dict[str, str] = {}
    for name, v in config.get("ablation", {}).items():
        cfg = resolve(config, dataset, v.get("overrides", {}))
        key = json.dumps({s: cfg.get(s) for s in TRAIN_SECTIONS}, sort_keys=True)
        owners[name] = first.setdefault(key, name)
    return owners


def spec(config: dict, dataset: str) -> dict:
    """What the ablation rule tracks and the table shows, per variant of ``config["ablation"]``: the
    model it resolves to on ``dataset``, its switches (and the variant it shares a training with,
    if any), the paper's reference and the paper's AUC (%) for ``dataset`` (None where none)."""
    from vad_pipeline.config import resolve

    owners = trained_by(config, dataset)
    variants = {}
    for name, v in config.get("ablation", {}).items():
        overrides = v.get("overrides", {})
        switches = describe(overrides)
        if owners[name] != name:
            switches += f" (the same training as {owners[name]} on {dataset})"
        variants[name] = {"model": resolve(config, dataset, overrides)["model"]["name"],
                          "switches": switches, "source": v.get("source", ""),
                          "paper": v.get("paper", {}).get(dataset)}
    return {"name": dataset, "variants": variants}


def _pct(value) -> float:
    return round(100.0 * value, 2) if value is not None else math.nan


def variant_dir(results: str, dataset: str, variant: str) -> str:
    """The folder of a variant's outputs; workflow/rules/ablation.smk builds its paths from it too."""
    return f"{results}/{dataset}/ablation/{variant}"


def default_aucs(table_spec: dict, results: str = "results") -> list[str]:
    """Where the workflow writes each variant's auc.json, in spec order."""
    return [f"{variant_dir(results, table_spec['name'], v)}/auc.json" for v in table_spec["variants"]]


def collect(table_spec: dict, aucs: list[str], missing_ok: bool = False) -> pd.DataFrame:
    """One row per variant of ``table_spec`` (see ``spec``), read from its auc.json (``aucs``, in
    the same order as the variants). ``missing_ok``: a variant not run yet gets an empty row (the
    table so far, while a long ablation runs) instead of an error."""
    variants = table_spec["variants"]
    if len(aucs) != len(variants):
        raise VadError(f"ablation: {len(variants)} variants but {len(aucs)} auc.json files")
    rows = []
    for (name, v), path in zip(variants.items(), aucs):
        p = Path(path)
        if not p.is_file():
            if not missing_ok:
                raise VadError(f"{p}: file not found (variant {name})")
            result = {"auc_micro": None}   # not run yet: an empty row
        else:
            try:
                result = json.loads(p.read_text())
            except json.JSONDecodeError as exc:
                raise VadError(f"{p}: not valid JSON ({exc})") from exc
        if "auc_micro" not in result:
            raise VadError(f"{p}: no auc_micro; not an auc.json written by 'vad-pipeline evaluate'")
        micro, macro = _pct(result["auc_micro"]), _pct(result.get("auc_macro"))
        paper = float(v["paper"]) if v.get("paper") is not None else math.nan
        alone = result.get("auc_terms") or {}   # each score term's AUC alone (absent: the model lacks it)
        rows.append({"variant": name, "model": v["model"], "switches": v["switches"], "source": v["source"],
                     "auc_micro": micro, "auc_macro": macro, "paper": paper, "diff": round(micro - paper, 2),
                     "auc_s_f": _pct(alone.get("s_f")), "auc_s_p": _pct(alone.get("s_p")),
                     "auc_s_m": _pct(alone.get("s_m")), "auc_s_c": _pct(alone.get("s_c"))})
    return pd.DataFrame(rows, columns=COLUMNS)


def plot(df: pd.DataFrame, out: str, title: str) -> None:
    """Horizontal bars per variant: our micro AUC and the paper's (absent where it gives none)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    n = len(df)
    y = np.arange(n)
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.32 * max(n, 1)))
    ax.barh(y - 0.2, df["auc_micro"], height=0.4, label="ours (micro)", color="tab:blue")
    ax.barh(y + 0.2, df["paper"], height=0.4, label="paper", color="tab:orange")
    for yi, (ours, paper) in enumerate(zip(df["auc_micro"], df["paper"])):
        if not math.isnan(ours):
            ax.text(ours, yi - 0.2, f" {ours:.1f}", va="center", fontsize=7)
        if not math.isnan(paper):
            ax.text(paper, yi + 0.2, f" {paper:.1f}", va="center", fontsize=7)
    ax.set_yticks(y, [f"{v} ({m})" for v, m in zip(df["variant"], df["model"])], fontsize=8)
    ax.invert_yaxis()
    known = pd.concat([df["auc_micro"], df["paper"]]).dropna()
    low = max(0.0, math.floor(float(known.min()) / 10) * 10 - 10) if len(known) else 0.0
    ax.set(xlim=(low, 105), xlabel="frame-level AUROC (%)", title=title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def write(table_spec: dict, aucs: list[str], out_csv: str | None, out_png: str | None = None,
          missing_ok: bool = False, out_html: str | None = None) -> pd.DataFrame:
    df = collect(table_spec, aucs, missing_ok)
    if out_csv:
        write_csv(out_csv, df)
    if out_png:
        plot(df, out_png, f"{table_spec['name']}: ablation, ours vs paper")
    if out_html:  # the table for the HTML report
        with atomic_path(out_html) as tmp:
            tmp.write_text("<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>\n"
                           + df.to_html(index=False, border=0, na_rep="-", float_format=lambda v: f"{v:.3f}")
                           + "\n</body></html>\n")
    return df
