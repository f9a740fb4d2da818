"""Errors users can act on, and atomic output files."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class VadError(Exception):
    """A problem with the user's input or configuration: printed as one line, no traceback."""


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds.

    A killed job therefore never leaves a half-written file under the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_csv(path: str | os.PathLike, df) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def read_csv(path: str | os.PathLike, required: list[str]):
    """Read a CSV written by an earlier stage, naming the file when it is not what we expect."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise VadError(f"{path}: file not found")
    try:
        df = pd.read_csv(path, dtype={"video": str})  # video names like '01' stay strings
    except Exception as exc:  # pandas raises several types for broken files
        raise VadError(f"{path}: not a readable CSV ({exc})") from exc
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise VadError(f"{path}: missing columns {missing}")
    return df
