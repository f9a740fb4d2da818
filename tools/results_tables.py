"""Markdown rows for docs/results.md and docs/ablations.md, from the results files of a run.

    python tools/results_tables.py [--results results] [--configfile config.yaml] DATASET...
    python tools/results_tables.py --runs AUC_JSON...

prints, per dataset, the row of results/<d>/auc.json (auc_micro, auc_macro, AP, EER) and, where
results/<d>/ablation/<variant>/auc.json files exist, the ablation table's rows in config order
(auc_micro, auc_macro, AP, EER, S_f / S_p alone, the paper's AUROC): paste them over the
measured tables after a new run instead of copying figures by hand. S_f alone is "–" where the
variant has no S_f or scores without it (score.w_f = 0: f_a untrained without L_align).

``--runs``: one row per auc.json given (e.g. the same setting trained with several seeds: auc_micro,
auc_macro, AP, EER, each term alone), then their mean and spread (max - min)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vad_pipeline import config as C
from vad_pipeline.evaluate import TERMS


def _f(x) -> str:
    return "–" if x is None else f"{x:.3f}"


def main_row(dataset: str, auc: dict) -> str:
    return f"| {dataset} | {_f(auc['auc_micro'])} | {_f(auc['auc_macro'])} | {_f(auc['ap'])} | {_f(auc['eer'])} |"


def ablation_rows(config: dict, dataset: str, results: Path) -> list[str]:
    rows = []
    for variant, v in config.get("ablation", {}).items():
        path = results / dataset / "ablation" / variant / "auc.json"
        if not path.is_file():
            continue
        auc = json.loads(path.read_text())
        terms = auc.get("auc_terms") or {}
        w_f = C.resolve(config, dataset, v["overrides"])["score"]["w_f"]
        s_f = _f(terms.get("s_f")) if w_f != 0 else "–"
        paper = v.get("paper", {}).get(dataset)
        rows.append(f"| `{variant}` | {_f(auc['auc_micro'])} | {_f(auc['auc_macro'])} | {_f(auc['ap'])} | "
                    f"{_f(auc['eer'])} | {s_f} / {_f(terms.get('s_p'))} | {'–' if paper is None else paper} |")
    return rows


def run_rows(paths: list[str]) -> list[str]:
    """A row per run and the mean and spread (max - min) of each column."""
    cols = []
    rows = []
    for path in paths:
        auc = json.loads(Path(path).read_text())
        terms = auc.get("auc_terms") or {}
        vals = [auc["auc_micro"], auc["auc_macro"], auc["ap"], auc["eer"], *(terms.get(t) for t in TERMS)]
        cols.append(vals)
        rows.append(f"| {path} | " + " | ".join(_f(v) for v in vals) + " |")
    for name, fn in (("mean", lambda v: sum(v) / len(v)), ("spread", lambda v: max(v) - min(v))):
        stats = [fn([x for x in c if x is not None]) if any(x is not None for x in c) else None for c in zip(*cols)]
        rows.append(f"| {name} | " + " | ".join(_f(v) for v in stats) + " |")
    head = "| run | `auc_micro` | `auc_macro` | AP | EER | " + " | ".join(f"{t} alone" for t in TERMS) + " |"
    return [head, "|" + "---|" * (5 + len(TERMS))] + rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("datasets", nargs="*")
    p.add_argument("--runs", nargs="+", default=[], help="auc.json files of runs of one setting (e.g. seeds)")
    p.add_argument("--results", default="results")
    p.add_argument("--configfile", default="config.yaml")
    a = p.parse_args(argv)
    if a.runs:
        print("\n".join(run_rows(a.runs)))
    if not a.datasets:
        return 0
    config, results = C.load(a.configfile), Path(a.results)
    for d in a.datasets:
        main_auc = results / d / "auc.json"
        if main_auc.is_file():
            print(main_row(d, json.loads(main_auc.read_text())))
        for row in ablation_rows(config, d, results):
            print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
