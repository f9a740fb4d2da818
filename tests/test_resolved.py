"""Every shipped dataset's resolved settings, pinned: config.yaml, the schema's defaults and
config.resolve may be reorganised, but what each job gets must not change unnoticed.

tests/configs/resolved.json holds, for each dataset x preset (cpu, gpu) x (no variant, every
ablation variant), a hash of ``config.resolve(...)`` as sorted JSON (ints and floats kept apart).
After a deliberate change of settings, rewrite it with
    VAD_UPDATE_RESOLVED=1 python -m pytest tests/test_resolved.py
and say in the commit which settings changed (``python -m vad_pipeline config`` shows them)."""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path

from vad_pipeline import config as C
from vad_pipeline.io import VadError

PINNED = Path(__file__).with_name("configs") / "resolved.json"


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def resolved_digests(cfg: dict) -> dict[str, str]:
    out = {}
    for preset in ("cpu", "gpu"):
        c = copy.deepcopy(cfg)
        c["preset"] = preset
        for dataset in c["datasets"]:
            for variant in [None, *c.get("ablation", {})]:
                overrides = c["ablation"][variant]["overrides"] if variant else None
                try:
                    value = C.resolve(c, dataset, overrides)
                except VadError as exc:
                    value = {"error": str(exc)}
                out[f"{dataset}/{preset}/{variant or '-'}"] = _digest(value)
    return dict(sorted(out.items()))


def test_resolved_settings_are_unchanged(base_config):
    got = resolved_digests(base_config)
    if os.environ.get("VAD_UPDATE_RESOLVED"):
        PINNED.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    pinned = json.loads(PINNED.read_text())
    assert set(got) == set(pinned), "datasets, presets or ablation variants differ from " + str(PINNED)
    changed = [k for k in pinned if got[k] != pinned[k]]
    assert not changed, f"resolved settings changed for {len(changed)} of {len(pinned)}: {changed[:10]}"


def test_results_tables_script(base_config, tmp_path, capsys):
    """tools/results_tables.py: the docs' table rows from auc.json files."""
    import importlib.util

    from tests.conftest import REPO, write_config

    spec = importlib.util.spec_from_file_location("results_tables", REPO / "tools" / "results_tables.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = tmp_path / "results"
    auc = {"auc_micro": 0.9311, "auc_macro": 0.935, "ap": 0.984, "eer": 0.148, "auc_terms": {"s_f": 0.9, "s_p": 0.8}}
    for where in ("ped2", "ped2/ablation/amsrc", "ped2/ablation/mgsm_joint"):
        (res / where).mkdir(parents=True)
        (res / where / "auc.json").write_text(json.dumps(auc))
    cfg = write_config(base_config, tmp_path / "config.yaml")
    assert mod.main(["--results", str(res), "--configfile", str(cfg), "ped2"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "| ped2 | 0.931 | 0.935 | 0.984 | 0.148 |",
        "| `amsrc` | 0.931 | 0.935 | 0.984 | 0.148 | 0.900 / 0.800 | 99.3 |",
        "| `mgsm_joint` | 0.931 | 0.935 | 0.984 | 0.148 | – / 0.800 | 93.8 |",
    ]
    # several runs of one setting (seeds): their rows, mean and spread
    other = res / "seed1.json"
    other.write_text(json.dumps({**auc, "auc_micro": 0.9511, "auc_terms": {"s_f": 0.8, "s_p": 0.8, "s_c": 0.9}}))
    assert mod.main(["--runs", str(res / "ped2" / "auc.json"), str(other)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("| run | `auc_micro` |") and len(out) == 6
    assert out[-2] == "| mean | 0.941 | 0.935 | 0.984 | 0.148 | 0.850 | 0.800 | – | 0.900 |"
    assert out[-1] == "| spread | 0.020 | 0.000 | 0.000 | 0.000 | 0.100 | 0.000 | – | 0.000 |"
