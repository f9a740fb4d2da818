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


def test_rescoring_without_torch(tiny_resolved, tmp_path):
    rng = np.random.default_rng(0)
    n = 20
    _terms(rng, n).to_csv(tmp_path / "train.csv", index=False)
    _terms(rng, n).to_csv(tmp_path / "test.csv", index=False)
    labels = pd.DataFrame({"video": ["01"] * n + ["02"] * n, "frame": list(range(n)) * 2,
                           "label": [int(10 <= t < 15) for t in range(n)] * 2})
    labels.to_csv(tmp_path / "labels.csv", index=False)
    params = tmp_path / "params.json"
    params.write_text(json.dumps(tiny_resolved))
    p = ["--params", f"@{params}"]
    _vad("score", *p, "--train", str(tmp_path / "train.csv"), "--test", str(tmp_path / "test.csv"),
         "--out", str(tmp_path / "objects.csv"), "--stats", str(tmp_path / "stats.json"))
    _vad("frame-scores", *p, "--objects", str(tmp_path / "objects.csv"), "--labels", str(tmp_path / "labels.csv"),
         "--out", str(tmp_path / "frames.csv"))
    _vad("evaluate", *p, "--frames", str(tmp_path / "frames.csv"), "--out", str(tmp_path / "auc.json"),
         "--roc", str(tmp_path / "roc.png"), "--curves", str(tmp_path / "scores.png"),
         "--top", str(tmp_path / "top.csv"))
    assert json.loads((tmp_path / "auc.json").read_text())["auc_micro"] is not None
    assert (tmp_path / "roc.png").is_file() and (tmp_path / "top.csv").is_file()
