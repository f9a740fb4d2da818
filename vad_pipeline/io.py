"""Errors users can act on, atomic output files, the part files of a job cut in parts read back, and
HDF5 virtual datasets over the files of parts."""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class VadError(Exception):
    """A problem with the user's input or configuration: printed as one line, no traceback."""


_HOST = socket.gethostname().replace(".", "_")


def _temp_name(path: Path) -> Path:
    """``.<name>.<host>.<pid>.<random>.tmp`` beside ``path``: the writer can be told from the name."""
    return path.with_name(f".{path.name}.{_HOST}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temps(path: Path) -> list[Path]:
    """Remove the temporary files an earlier writer of ``path`` left when it was killed (SIGKILL
    from the OOM killer or a scheduler's time limit runs no cleanup): those of a process that no
    longer runs on this host. A file from another host is left alone, since its writer may still
    run there; the scheduler only starts one job per output, so it is removed by that job."""
    removed = []
    prefix = f".{path.name}."
    for tmp in path.parent.iterdir():
        if not (tmp.name.startswith(prefix) and tmp.name.endswith(".tmp")):
            continue
        parts = tmp.name[len(prefix) : -len(".tmp")].split(".")
        if len(parts) != 3 or not parts[1].isdigit():
            continue  # not one of ours
        host, pid = parts[0], int(parts[1])
        if host == _HOST and pid != os.getpid() and not _alive(pid):
            size = tmp.stat().st_size if tmp.is_file() else 0
            if tmp.is_dir():   # an atomic_dir's
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
            log.warning("removed %s (%.1f MB) left by a killed earlier run", tmp, size / 2**20)
            removed.append(tmp)
    return removed


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds.

    A killed job therefore never leaves a half-written file under the final name, and the next
    writer of ``path`` removes what a killed one left. The file is created with the user's umask
    (as ``open`` would), so others in a shared project folder can read results.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    tmp = _temp_name(path)
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """:func:`atomic_path` for a folder: yield an empty temporary folder beside ``path``; only if
    the block succeeds does it replace ``path`` (a folder there before is removed then)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    tmp = _temp_name(path)
    tmp.mkdir()
    try:
        yield tmp
        if path.is_dir():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def umask() -> int:
    """The process's umask (read by setting it, as POSIX offers no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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
        df = pd.read_csv(path, dtype={"video": str, "camera": str})  # names like "01" stay strings
    except Exception as exc:  # pandas raises several types for broken files
        raise VadError(f"{path}: not a readable CSV ({exc})") from exc
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise VadError(f"{path}: missing columns {missing}")
    return df


def read_part(path: str, columns: list[str]):
    """A part job's CSV (the weight-free terms' ``*_terms`` jobs), its numbers read back exactly:
    the gathered file is the one job's, byte for byte (pandas 2 needs ``round_trip`` for that,
    pandas 3 does it by default and deprecates it)."""
    import pandas as pd

    if not Path(path).is_file():
        raise VadError(f"{path}: file not found")
    exact = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}
    df = pd.read_csv(path, dtype={"video": str}, **exact)
    if missing := [c for c in columns if c not in df.columns]:
        raise VadError(f"{path}: missing columns {missing}; rerun its part job")
    return df


def virtual_rows(group, name: str, sources: list[tuple[str, str, int]], row_shape: tuple, dtype, out: str,
                 **empty) -> None:
    """Dataset ``name`` of the HDF5 ``group`` (of the file to be moved to ``out``): the rows of
    ``sources`` ((file, dataset, rows) in order) one after the other, as a virtual dataset read in
    place from those files (by their paths relative to ``out``'s folder, so the folder may move;
    nothing copied). No row at all: an empty dataset of its own, as HDF5 needs a source for a
    virtual one (``empty``: its ``create_dataset`` options)."""
    import h5py

    n = int(sum(rows for _, _, rows in sources))
    if n == 0:
        group.create_dataset(name, (0, *row_shape), dtype, **empty)
        return
    here, layout, at = Path(out).resolve().parent, h5py.VirtualLayout((n, *row_shape), dtype), 0
    for path, dataset, rows in sources:
        if rows:
            layout[at : at + rows] = h5py.VirtualSource(os.path.relpath(Path(path).resolve(), here), dataset,
                                                        shape=(rows, *row_shape))
            at += rows
    group.create_virtual_dataset(name, layout)
