"""Hashes of a dataset's files, each read once: a file's hash is kept with what ``stat`` says of it
(size, modification and change time in ns, inode) and reused while ``stat`` says the same, as
git's index and DVC do. So the workflow tracks every input by content (a pixel mask or a video
fixed in place at the very same size reruns what reads it) without reading gigabytes again at
every dry run: a warm cache costs one ``stat`` per file, what ``dataset.fingerprint: size``
costs anyway.

The workflow keeps one cache per dataset beside its results (``results/.hashes/<dataset>.json``,
workflow/rules/common.smk). Entries are keyed by the file's resolved folder and its name; the hash
is of the bytes alone, so a copy or a move of the dataset hashes its files once more (new paths)
and gets the same hashes: its fingerprints are the same and nothing reruns.

- A file modified (or its times set) within :data:`RACY_NS` of the moment it is hashed is not
  kept ("racily clean" in git's words): a second write in the same timestamp tick, at the same
  size, would leave ``stat`` unchanged. Such a file is hashed again at the next run.
- The file is written whole beside its final name and renamed into place (:func:`~vad_pipeline.io.atomic_path`),
  after merging what another process (a cluster job, a second Snakemake) saved meanwhile, under an
  advisory lock (``<file>.lock``): readers never see a partial file, and two writers keep both
  their entries. Where the file system has no locks, a writer goes on without: it may then drop the
  other's new entries (hashed again later), never corrupt the file. An unreadable or foreign file
  is ignored with a log line and rebuilt.
- Entries of folders that no longer exist are dropped when it is saved.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import logging
import os
import sys
import time
from pathlib import Path

from vad_pipeline.io import atomic_path

log = logging.getLogger(__name__)

VERSION = 2
KINDS = ("content", "sample")
SAMPLE_BYTES = 4096   # each of the three blocks (head, middle, tail) a ``sample`` hash reads
CHUNK = 2**20         # bytes read at a time: files are streamed, never read whole into memory
RACY_NS = 2 * 10**9   # a file modified this close to its hashing is not kept (FAT's 2 s timestamps)
_now = time.time_ns   # (tests move the clock on rather than wait)
SAVE_AFTER_S = 10.0   # save once this much hashing is unsaved (and at exit): a kill loses at most that
NOTE_AFTER_S = 10.0   # say once on stderr what takes the time, when hashing has taken this long
LOCK_WAIT_S = 10.0    # a writer waits this long for another's lock, then goes on without it


def hash_file(path: str | os.PathLike, size: int, kind: str = "content") -> str:
    """A hash of a file's bytes (16 hex digits of SHA-256), streamed: all of them (``content``), or
    (``sample``) its first, middle and last :data:`SAMPLE_BYTES` (the whole file when it is no
    longer than that): three small reads per file, whatever its size."""
    if kind not in KINDS:
        raise ValueError(f"hash kind {kind!r} is not one of {KINDS}")
    h = hashlib.sha256()
    if kind == "content" or size <= 3 * SAMPLE_BYTES:
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                h.update(view[:n])
        return h.hexdigest()[:16]
    fd = os.open(path, os.O_RDONLY)
    try:
        for offset in (0, (size - SAMPLE_BYTES) // 2, size - SAMPLE_BYTES):
            h.update(os.pread(fd, SAMPLE_BYTES, offset))
    finally:
        os.close(fd)
    return h.hexdigest()[:16]


@contextlib.contextmanager
def _locked(path: Path):
    """An advisory lock on ``<path>.lock`` while it is held (best effort: without one where the file
    system has no locks, or where another writer holds it over :data:`LOCK_WAIT_S`)."""
    try:
        import fcntl

        fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o666)
    except (ImportError, OSError):
        yield
        return
    try:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    log.warning("%s: another process holds its lock; saving without it", path)
                    break
                time.sleep(0.02)
            except OSError:   # no locks on this file system
                break
        yield
    finally:
        os.close(fd)   # (releases the lock)


def _identity(st: os.stat_result) -> str:
    return f"{st.st_size} {st.st_mtime_ns} {st.st_ctime_ns} {st.st_ino} "


def _hashes(entry, ident: str) -> list[str]:
    """An entry's [content hash, sample hash] ('-': not taken yet) where it is of the file that
    ``ident`` describes, else [] (another file, or an entry of another shape)."""
    if isinstance(entry, str) and entry.startswith(ident):
        hashes = entry[len(ident):].split(" ")
        if len(hashes) == len(KINDS):
            return hashes
    return []


class HashCache:
    """File hashes kept while ``stat`` is unchanged; ``path``: the JSON file that keeps them
    between processes (None: this process only). Counters: ``hashed`` (files read), ``bytes``
    (bytes of those files), ``reused`` (hashes taken from the cache), ``seconds`` (spent reading)."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else None
        self._dirs: dict[str, dict[str, str]] | None = None   # resolved folder -> name -> entry
        self._new: dict[str, dict[str, str]] = {}              # entries kept since the last save
        self._real: dict[str, str] = {}
        self.hashed = self.bytes = self.reused = 0
        self.seconds = self._unsaved_s = 0.0
        self._noted = self._at_exit = False

    # ------------------------------------------------------------------ reading and writing
    def _read(self) -> dict[str, dict[str, str]]:
        """The saved entries ({} when there is no file yet, or it cannot be used: logged)."""
        if self.path is None or not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text())
            if not isinstance(data, dict) or data.get("version") != VERSION or not isinstance(data.get("dirs"), dict):
                raise ValueError(f"not a version-{VERSION} hash cache")
            dirs = data["dirs"]
            if not all(isinstance(v, dict) for v in dirs.values()):
                raise ValueError("a folder's entry is not a mapping")
            return dirs
        except (OSError, ValueError) as exc:   # (json's JSONDecodeError and UnicodeDecodeError are ValueErrors)
            log.warning("%s: hash cache not readable (%s); ignored and rebuilt (the files are hashed again)",
                        self.path, exc)
            return {}

    @property
    def dirs(self) -> dict[str, dict[str, str]]:
        if self._dirs is None:
            self._dirs = self._read()
        return self._dirs

    def save(self) -> bool:
        """Write the entries kept since the last save, merged into what the file holds now (another
        process may have saved meanwhile); folders that no longer exist are dropped. Returns
        whether it wrote. A cache without a file, or with nothing new, writes nothing."""
        if self.path is None or not self._new:
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(self.path):
            merged = self._read()
            for folder, entries in self._new.items():
                merged.setdefault(folder, {}).update(entries)
            merged = {folder: entries for folder, entries in merged.items() if os.path.isdir(folder)}
            with atomic_path(self.path) as tmp:
                with open(tmp, "w") as f:
                    json.dump({"version": VERSION, "what": "vad_pipeline.hashcache: {resolved folder: {file "
                               "name: 'size mtime_ns ctime_ns inode content-hash sample-hash'}}, a hash "
                               "'-' where not taken; safe to delete",
                               "dirs": merged}, f, separators=(",", ":"))
                    f.flush()
                    os.fsync(f.fileno())
        self._dirs = merged
        self._new = {}
        self._unsaved_s = 0.0
        return True

    def _save_quietly(self) -> None:
        try:
            self.save()
        except OSError as exc:   # (a results folder gone or read-only: the hashes are only lost)
            log.warning("%s: hash cache not saved (%s)", self.path, exc)

    # ------------------------------------------------------------------ hashes
    def _folder(self, folder: str) -> str:
        real = self._real.get(folder)
        if real is None:
            real = self._real[folder] = os.path.realpath(folder or ".")
        return real

    def digest(self, path: str | os.PathLike, kind: str = "content", st: os.stat_result | None = None) -> str:
        """The ``kind`` hash of the file at ``path`` (:func:`hash_file`): the kept one while its
        ``stat`` (``st``, or taken now) is what it was when hashed, else read and kept."""
        path = os.fspath(path)
        if st is None:
            st = os.stat(path)
        folder, name = os.path.split(path)
        folder = self._folder(folder)
        ident = _identity(st)
        if kind not in KINDS:
            raise ValueError(f"hash kind {kind!r} is not one of {KINDS}")
        kept = _hashes(self.dirs.get(folder, {}).get(name), ident)
        at = KINDS.index(kind)
        if kept and kept[at] != "-":
            self.reused += 1
            return kept[at]
        start_ns = _now()
        t0 = time.monotonic()
        value = hash_file(path, st.st_size, kind)
        spent = time.monotonic() - t0
        self.hashed += 1
        self.bytes += st.st_size if kind == "content" else min(st.st_size, 3 * SAMPLE_BYTES)
        self.seconds += spent
        if max(st.st_mtime_ns, st.st_ctime_ns) < start_ns - RACY_NS:   # else racily clean: not kept
            kept = kept or ["-"] * len(KINDS)
            kept[at] = value
            entry = ident + " ".join(kept)
            self.dirs.setdefault(folder, {})[name] = entry
            self._new.setdefault(folder, {})[name] = entry
            self._unsaved_s += spent
            if self.path is not None and not self._at_exit:
                atexit.register(self._save_quietly)
                self._at_exit = True
        self._note()
        if self._unsaved_s >= SAVE_AFTER_S:
            self._save_quietly()
        return value

    def _note(self) -> None:
        if self._noted or self.seconds < NOTE_AFTER_S:
            return
        self._noted = True
        where = f"; kept in {self.path}, reused while a file's size, times and inode are unchanged" if self.path else ""
        print(f"vad_pipeline: hashing the dataset's files to track their content ({self.hashed} files, "
              f"{self.bytes / 2**30:.1f} GiB so far{where})", file=sys.stderr, flush=True)


_OPEN: dict[str, HashCache] = {}


def cache_at(where: str | os.PathLike | HashCache | None) -> HashCache:
    """The cache kept in the file ``where`` (one object per file and process, saved at exit), a
    :class:`HashCache` as given, or (None) a new one of this call only: every file read."""
    if isinstance(where, HashCache):
        return where
    if where is None:
        return HashCache()
    key = os.path.abspath(where)
    if key not in _OPEN:
        _OPEN[key] = HashCache(key)
    return _OPEN[key]
