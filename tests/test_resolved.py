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
