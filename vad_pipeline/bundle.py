"""A trained dataset in one folder (or one archive): what scoring new footage needs, and nothing of
its training footage.

:func:`write` gathers the model, the training statistics every term is z-scored with, the S_m and
S_c references, the cell term's window layouts, the training videos' cameras, the validation's
fusion weights (where chosen), the resolved settings (``settings.json``) and ``bundle.json``: the
format, the versions it was written with, each camera's working frame size and every file's size
and SHA-256. :func:`pack` makes a ``.tar.gz`` of it, :func:`unpack` brings a folder or an archive
to where :mod:`vad_pipeline.apply` reads it (checking every file), and :func:`manifest` refuses a
bundle this version cannot read, naming the versions, before anything runs.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
import tarfile
from datetime import datetime, timezone
from pathlib import Path

from vad_pipeline.io import VadError, atomic_dir, atomic_path, read_csv, write_json

log = logging.getLogger(__name__)

FORMAT = 1   # bumped whenever what a bundle holds or means changes: an older bundle is refused
MANIFEST = "bundle.json"
SETTINGS = "settings.json"
FILES = {   # bundle file: what it is (every one needed to score)
    "model.pt": "the trained model",
    "infer_train.csv": "S_f and S_p of the training cubes (their z-statistics)",
    "motion_train.csv": "S_m of the training objects (its z-statistics)",
    "features_train.csv": "the training objects' motion features (S_m's reference)",
    "cells_train.csv": "S_c of the training frames (its z-statistics)",
    "cell_stats_train.h5": "the training frames' window statistics (S_c's reference)",
    "layout.json": "the cell term's window layouts",
    "cameras_train.csv": "the training videos' cameras",
}
OPTIONAL = {"weights.json": "the fusion weights the validation chose (score.weights: auto)"}
KNOWN = {*FILES, *OPTIONAL, MANIFEST, SETTINGS}   # every file a bundle may hold
ARCHIVES = (".tar.gz", ".tgz", ".tar")
UNTRACKED = ("report", "localisation")   # sections that change no score: the current config's apply


def checksum(path: Path) -> str:
    """A file's content hash (:func:`vad_pipeline.hashcache.hash_file`: SHA-256, streamed)."""
    from vad_pipeline.hashcache import hash_file

    return hash_file(path, Path(path).stat().st_size)


def _cameras(layout: dict, cameras_csv: str) -> dict[str, dict]:
    """{camera: its training videos and the working frame size its windows were laid out on}."""
    from vad_pipeline.datasets.cameras import COLUMNS, ONE

    table = read_csv(cameras_csv, COLUMNS).astype({"camera": str})
    per = layout["cameras"]
    return {cam: {"train_videos": int(len(g)), "frame_size": list((per.get(cam) or per.get(ONE)
                                                                   or next(iter(per.values())))["frame_size"])}
            for cam, g in table.groupby("camera", sort=True)}


def settings_of(cfg: dict) -> dict:
    """The settings a bundle keeps: the resolved ones, less where the dataset lives and how its
    videos are fingerprinted, the batches it is applied to, and the sections that change no score."""
    out = {k: copy.deepcopy(v) for k, v in cfg.items() if k not in UNTRACKED}
    out["dataset"] = {k: v for k, v in cfg["dataset"].items() if k not in ("root", "fingerprint", "apply", "bundle")}
    return out


def write(out: str, cfg: dict, files: dict[str, str], assign: str) -> dict:
    """The bundle folder ``out`` from ``files`` ({bundle file: its source}; every one of
    :data:`FILES`, any of :data:`OPTIONAL`), ``cfg`` (the dataset's resolved settings) and
    ``assign`` (how the dataset's videos got their cameras: prefix, file or one). Written beside
    ``out`` and renamed into place: an interrupted write leaves no half bundle."""
    from vad_pipeline import __version__
    from vad_pipeline.evaluate import versions
    from vad_pipeline.windows import copy_stats, read_layout

    if missing := [n for n in FILES if n not in files]:
        raise VadError(f"bundle: no {missing[0]} given ({FILES[missing[0]]})")
    out_path = Path(out)
    with atomic_dir(out_path) as tmp:
        for name, src in files.items():
            if name == "cell_stats_train.h5":   # virtual datasets over per-video files: copied for real
                copy_stats(src, str(tmp / name))
            else:
                shutil.copyfile(src, tmp / name)
        settings = settings_of(cfg)
        write_json(tmp / SETTINGS, settings)
        manifest = {
            "format": FORMAT, "vad_pipeline": __version__, "versions": versions(),
            "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "dataset": cfg["name"], "model": cfg["model"]["name"], "preset": cfg.get("preset"),
            "camera_assign": assign,
            "cameras": _cameras(read_layout(str(tmp / "layout.json")), str(tmp / "cameras_train.csv")),
            "weights": "chosen" if "weights.json" in files else "fixed",
            "files": {n: {"bytes": (tmp / n).stat().st_size, "sha256": checksum(tmp / n)}
                      for n in sorted([*files, SETTINGS])},
        }
        write_json(tmp / MANIFEST, manifest)
    log.info("%s: bundle of dataset %s (%s, cameras %s, %.1f MB)", out, cfg["name"], cfg["model"]["name"],
             ", ".join(manifest["cameras"]), sum(f["bytes"] for f in manifest["files"].values()) / 1e6)
    return manifest


def is_archive(path: str | Path) -> bool:
    return str(path).lower().endswith(ARCHIVES)


def _read_member(path: Path, name: str) -> bytes | None:
    """A file of the bundle ``path`` (a folder or an archive), None where it has none."""
    if path.is_dir():
        f = path / name
        return f.read_bytes() if f.is_file() else None
    try:
        with tarfile.open(path) as tar:
            try:
                member = tar.extractfile(name)
            except KeyError:
                return None
            return member.read() if member else None
    except (tarfile.TarError, OSError) as exc:
        raise VadError(f"{path}: not a readable bundle archive ({exc})") from exc


def _members(path: Path) -> dict[str, int]:
    """{file: bytes} of the bundle ``path``."""
    if path.is_dir():
        return {p.name: p.stat().st_size for p in path.iterdir() if p.is_file()}
    with tarfile.open(path) as tar:
        return {m.name: m.size for m in tar.getmembers() if m.isfile()}


def manifest(path: str | Path) -> dict:
    """``bundle.json`` of the bundle ``path`` (a folder or an archive), checked: one this version
    reads, with every file it lists at its size. Every problem is an error naming the bundle."""
    from vad_pipeline import __version__

    path = Path(path)
    if not path.exists():
        raise VadError(f"{path}: bundle not found (write one with snakemake results/<dataset>/bundle.tar.gz)")
    if not path.is_dir() and not is_archive(path):
        raise VadError(f"{path}: a bundle is a folder or a {'/'.join(ARCHIVES)} archive")
    raw = _read_member(path, MANIFEST)
    if raw is None:
        raise VadError(f"{path}: not a bundle (no {MANIFEST}; write one with snakemake results/<dataset>/bundle)")
    try:
        info = json.loads(raw)
        fmt, written_by = info["format"], info.get("vad_pipeline", "?")
    except (ValueError, KeyError, TypeError) as exc:
        raise VadError(f"{path}: {MANIFEST} is not a bundle manifest ({exc})") from exc
    if fmt != FORMAT:
        raise VadError(f"{path}: bundle format {fmt}, written by vad-pipeline {written_by}; this vad-pipeline "
                       f"({__version__}) reads format {FORMAT} only: write the bundle again with this version "
                       f"(snakemake results/{info.get('dataset', '<dataset>')}/bundle.tar.gz), or apply it with "
                       f"vad-pipeline {written_by}")
    have = _members(path)
    for name in [*FILES, SETTINGS]:
        if name not in have:
            raise VadError(f"{path}: the bundle has no {name} ({FILES.get(name, 'its settings')}); write it again")
    for name, meta in info.get("files", {}).items():
        if have.get(name) != meta["bytes"]:
            raise VadError(f"{path}: {name} is {have.get(name, 'missing')} bytes, the manifest says {meta['bytes']}: "
                           "an incomplete copy; copy the bundle again")
    return info


def settings(path: str | Path) -> dict:
    """The resolved settings a bundle was written with (its ``report`` and ``localisation``: the
    defaults; a batch takes the current config's)."""
    from vad_pipeline import config as C

    raw = _read_member(Path(path), SETTINGS)
    if raw is None:
        raise VadError(f"{path}: the bundle has no {SETTINGS}")
    cfg = json.loads(raw)
    defaults = C.defaults()
    for section in UNTRACKED:
        cfg.setdefault(section, copy.deepcopy(defaults[section]))
    return cfg


def pack(folder: str, archive: str) -> None:
    """A ``.tar.gz`` of the bundle ``folder``: its files at the archive's top level."""
    info = manifest(folder)
    with atomic_path(archive) as tmp, tarfile.open(tmp, "w:gz") as tar:
        for name in sorted(set(_members(Path(folder))) & KNOWN):   # (not Snakemake's timestamp file)
            tar.add(Path(folder) / name, arcname=name, recursive=False)
    log.info("%s: bundle of dataset %s packed", archive, info["dataset"])


def unpack(source: str, out: str) -> dict:
    """The bundle ``source`` (a folder or an archive, checked by :func:`manifest`) as the folder
    ``out``, every file checked against its SHA-256 (a damaged copy is an error naming the file).
    Archive members other than the bundle's own plain files are refused, never extracted."""
    src = Path(source)
    info = manifest(src)
    known = KNOWN
    with atomic_dir(out) as tmp:
        if src.is_dir():
            for name in _members(src):
                if name in known:
                    shutil.copyfile(src / name, tmp / name)
        else:
            with tarfile.open(src) as tar:
                for m in tar.getmembers():
                    if m.name not in known or not m.isfile():
                        raise VadError(f"{src}: unexpected archive member {m.name!r} (a bundle holds "
                                       f"{', '.join(sorted(known))} only)")
                    with tar.extractfile(m) as f, open(tmp / m.name, "wb") as g:
                        shutil.copyfileobj(f, g)
        for name, meta in info["files"].items():
            if checksum(tmp / name) != meta["sha256"]:
                raise VadError(f"{src}: {name} does not match its checksum in {MANIFEST}: a damaged copy; "
                               "copy the bundle again")
    log.info("%s: bundle of dataset %s (written %s by vad-pipeline %s) from %s", out, info["dataset"],
             info.get("written"), info.get("vad_pipeline"), source)
    return info


def train_cameras(path: str | Path) -> dict[str, str]:
    """{training video: camera} of a bundle (a folder or an archive)."""
    import io

    import pandas as pd

    raw = _read_member(Path(path), "cameras_train.csv")
    if raw is None:
        raise VadError(f"{path}: the bundle has no cameras_train.csv ({FILES['cameras_train.csv']})")
    df = pd.read_csv(io.BytesIO(raw), dtype={"video": str, "camera": str})
    return dict(zip(df["video"], df["camera"]))


def weights_path(folder: str | Path) -> str | None:
    p = Path(folder) / "weights.json"
    return str(p) if p.is_file() else None

