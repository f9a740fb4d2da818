"""Rescoring needs no torch: the score, frame-scores and evaluate subcommands run with torch
unimportable (a changed score weight or report setting never needs the model's stack)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
# torch made unimportable before the CLI loads: any `import torch` on the way raises ImportError.
# A meta-path finder rather than sys.modules['torch'] = None: scipy's array-API helpers (used by
# scikit-learn's metrics) take a 'torch' key in sys.modules for an imported torch.
NO_TORCH = (
    "import sys\n"
    "class NoTorch:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name == 'torch' or name.startswith('torch.'):\n"
    "            raise ModuleNotFoundError(f'No module named {name!r} (test_no_torch)')\n"
    "sys.meta_path.insert(0, NoTorch())\n"
    "from vad_pipeline.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def _vad(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-c", NO_TORCH, *args], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def _terms(rng: np.random.Generator, n_frames: int) -> pd.DataFrame:
    rows = [(v, t, 1, 2, 9, 12) for v in ("01", "02") for t in range(n_frames) for _ in range(2)]
    df = pd.DataFrame(rows, columns=["video", "frame", "x1", "y1", "x2", "y2"])
    return df.assign(s_f=rng.random(len(df)), s_p=rng.random(len(df)))


def _chain(run, p: list[str], d: Path) -> None:
    """score, frame-scores and evaluate through ``run`` (the CLI without torch, or in this process)."""
    d.mkdir()
    run("score", *p, "--train", str(d.parent / "train.csv"), "--test", str(d.parent / "test.csv"),
        "--out", str(d / "objects.csv"), "--stats", str(d / "stats.json"))
    run("frame-scores", *p, "--objects", str(d / "objects.csv"), "--labels", str(d.parent / "labels.csv"),
        "--out", str(d / "frames.csv"))
    run("evaluate", *p, "--frames", str(d / "frames.csv"), "--out", str(d / "auc.json"),
        "--roc", str(d / "roc.png"), "--curves", str(d / "scores.png"), "--top", str(d / "top.csv"))


def test_rescoring_without_torch_equals_the_in_process_one(tiny_resolved, tmp_path):
    from vad_pipeline import cli

    rng = np.random.default_rng(0)
    n = 20
    _terms(rng, n).to_csv(tmp_path / "train.csv", index=False)
    test = _terms(rng, n)
    test.loc[test["frame"].between(10, 14), ["s_f", "s_p"]] += 0.8   # the abnormal frames stand out
    test.to_csv(tmp_path / "test.csv", index=False)
    labels = pd.DataFrame({"video": ["01"] * n + ["02"] * n, "frame": list(range(n)) * 2,
                           "label": [int(10 <= t < 15) for t in range(n)] * 2})
    labels.to_csv(tmp_path / "labels.csv", index=False)
    params = tmp_path / "params.json"
    params.write_text(json.dumps(tiny_resolved))
    p = ["--params", f"@{params}"]
    _chain(_vad, p, tmp_path / "no_torch")
    _chain(lambda *a: cli.main(list(a)), p, tmp_path / "in_process")

    for name in ("objects.csv", "stats.json", "frames.csv", "top.csv"):
        assert (tmp_path / "no_torch" / name).read_bytes() == (tmp_path / "in_process" / name).read_bytes(), name
    without, within = (json.loads((tmp_path / d / "auc.json").read_text()) for d in ("no_torch", "in_process"))
    assert without["auc_micro"] > 0.9   # a ranking, not a placeholder
    for key in ("auc_micro", "auc_macro", "ap", "eer", "auc_per_video", "auc_terms", "n_frames", "n_abnormal"):
        assert without[key] == within[key], key
    assert (tmp_path / "no_torch" / "roc.png").read_bytes()[:4] == b"\x89PNG"
