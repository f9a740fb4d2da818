"""Every input tracked by content at any size, each file read once (issue 35): the hash cache
(vad_pipeline.hashcache) keeps a file's hash while ``stat`` says the same of it, and the
fingerprints of videos, ground truth and pixel masks over 64 MiB see an edit at the same size."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from vad_pipeline import config as C
from vad_pipeline import datasets as D
from vad_pipeline import hashcache as H

OLD_NS = (time.time_ns() // 10**9 - 3600) * 10**9   # an hour ago: not "racily clean"
BIG = 65 * 2**20 + 123                              # over the former 64 MiB limit


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _write(path: Path, data: bytes, mtime_ns: int = OLD_NS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


@pytest.fixture(autouse=True)
def clock_on(monkeypatch):
    """The cache's clock 10 s ahead: a file written by the test is not "racily clean" (kept at
    once) without waiting."""
    monkeypatch.setattr(H, "_now", lambda: time.time_ns() + 10 * 10**9)


@pytest.fixture
def reads(monkeypatch) -> list[str]:
    """The files the cache reads (every call of hash_file), in order."""
    done: list[str] = []
    real = H.hash_file

    def counting(path, size, kind="content"):
        done.append(os.fspath(path))
        return real(path, size, kind)

    monkeypatch.setattr(H, "hash_file", counting)
    return done


def test_a_hash_is_reused_while_stat_is_unchanged(tmp_path, reads):
    f = _write(tmp_path / "data" / "a.bin", b"a" * 20_000)
    store = tmp_path / "results" / ".hashes" / "d.json"
    cache = H.HashCache(store)
    first = cache.digest(f)
    assert first == _sha(b"a" * 20_000) and reads == [str(f)]
    assert cache.digest(f) == first and reads == [str(f)]   # not read again
    assert cache.save() and not cache.save()   # nothing new: nothing written
    reads.clear()
    again = H.HashCache(store)   # the next process
    assert again.digest(f) == first and reads == [] and again.reused == 1
    # a sample hash of the same file is another kind: read once, kept beside the content hash
    sample = again.digest(f, "sample")
    assert sample != first and len(reads) == 1
    assert again.digest(f, "sample") == sample and again.digest(f) == first and len(reads) == 1


def test_an_edit_at_the_same_size_is_hashed_again(tmp_path, reads):
    f = _write(tmp_path / "a.bin", b"a" * 20_000)
    cache = H.HashCache(tmp_path / "h.json")
    first = cache.digest(f)
    _write(f, b"b" * 20_000, OLD_NS + 10**9)   # fixed in place: same size, a new mtime
    assert cache.digest(f) != first and len(reads) == 2
    second = cache.digest(f)
    time.sleep(0.02)   # (the next timestamp tick: within one, it is what the racy rule is for)
    # the same size and the old mtime put back (touch -r): the change time still differs
    _write(f, b"c" * 20_000, OLD_NS + 10**9)
    assert cache.digest(f) not in (first, second) and len(reads) == 3
    # another file renamed over it (same size and times): another inode
    other = _write(tmp_path / "b.bin", b"d" * 20_000, OLD_NS + 10**9)
    os.replace(other, f)
    assert cache.digest(f) == _sha(b"d" * 20_000) and len(reads) == 4


def test_a_file_written_just_now_is_not_kept(tmp_path, reads, monkeypatch):
    """Modified (or its times set) within the last 2 s: a second write in the same timestamp
    tick would leave stat unchanged, so it is hashed, not kept; kept once it is older."""
    monkeypatch.setattr(H, "_now", time.time_ns)
    f = _write(tmp_path / "a.bin", b"a" * 100)   # (mtime an hour ago, ctime now)
    cache = H.HashCache(tmp_path / "h.json")
    cache.digest(f)
    cache.digest(f)
    assert len(reads) == 2 and not cache.save() and not (tmp_path / "h.json").exists()
    monkeypatch.setattr(H, "_now", lambda: time.time_ns() + H.RACY_NS + 10**8)
    cache.digest(f)
    cache.digest(f)
    assert len(reads) == 3 and cache.save()


def test_a_copy_elsewhere_has_the_same_hash(tmp_path, reads):
    f = _write(tmp_path / "a" / "x.bin", os.urandom(10_000))
    cache = H.HashCache(tmp_path / "h.json")
    copy = tmp_path / "b" / "x.bin"
    copy.parent.mkdir()
    shutil.copy2(f, copy)   # (times kept: another path and inode)
    assert cache.digest(copy) == cache.digest(f) and len(reads) == 2
    cache.save()
    saved = json.loads((tmp_path / "h.json").read_text())["dirs"]
    assert set(saved) == {os.path.realpath(tmp_path / "a"), os.path.realpath(tmp_path / "b")}
    # a folder reached through a symbolic link is the same folder: not read again
    (tmp_path / "link").symlink_to(tmp_path / "a")
    assert H.HashCache(tmp_path / "h.json").digest(tmp_path / "link" / "x.bin") and len(reads) == 2
    # a folder that is gone is dropped from the file at the next save
    shutil.rmtree(tmp_path / "b")
    cache.digest(_write(tmp_path / "a" / "y.bin", b"y"))
    cache.save()
    assert set(json.loads((tmp_path / "h.json").read_text())["dirs"]) == {os.path.realpath(tmp_path / "a")}


@pytest.mark.parametrize("text", [b'{"version": 2, "dirs": {"/x"', b'{"version": 1, "dirs": {}}', b'["a list"]',
                                  b'{"version": 2, "dirs": {"/x": [1, 2]}}', b"\xff\xfe\x00", b""])
def test_an_unreadable_cache_is_ignored_and_rebuilt(tmp_path, reads, caplog, text):
    f = _write(tmp_path / "a.bin", b"a" * 100)
    store = tmp_path / "h.json"
    store.write_bytes(text)
    cache = H.HashCache(store)
    with caplog.at_level(logging.WARNING, logger="vad_pipeline"):
        value = cache.digest(f)
    assert "hash cache not readable" in caplog.text and str(store) in caplog.text and reads == [str(f)]
    assert cache.save()
    assert H.HashCache(store).digest(f) == value and len(reads) == 1   # rebuilt: reused


def test_an_entry_of_another_shape_is_read_again(tmp_path, reads):
    f = _write(tmp_path / "a.bin", b"a" * 100)
    st = f.stat()
    ident = f"{st.st_size} {st.st_mtime_ns} {st.st_ctime_ns} {st.st_ino}"
    for i, entry in enumerate([["not", "an", "entry"], f"{ident} only-one-hash", f"{ident} x y z", 7]):
        (tmp_path / "h.json").write_text(json.dumps({"version": H.VERSION, "dirs": {os.path.realpath(tmp_path): {"a.bin": entry}}}))
        assert H.HashCache(tmp_path / "h.json").digest(f) == _sha(b"a" * 100) and len(reads) == i + 1
    (tmp_path / "h.json").write_text(json.dumps({"version": H.VERSION, "dirs": {os.path.realpath(tmp_path): {"a.bin": f"{ident} 0123456789abcdef -"}}}))
    assert H.HashCache(tmp_path / "h.json").digest(f) == "0123456789abcdef" and len(reads) == 4   # what is kept is believed
    with pytest.raises(ValueError, match="hash kind 'all' is not one of"):
        H.HashCache().digest(f, "all")


def test_two_writers_merge_and_the_file_is_always_whole(tmp_path, monkeypatch):
    """Two processes save the same cache: the second merges what the first wrote (its own entries
    win where both hashed a file); the file is replaced whole (atomic_path), never left partial."""
    a = _write(tmp_path / "d" / "a.bin", b"a" * 100)
    b = _write(tmp_path / "d" / "b.bin", b"b" * 100)
    store = tmp_path / "res" / "h.json"
    one, two = H.HashCache(store), H.HashCache(store)
    one.digest(a)
    two.digest(b)
    one.save()
    two.save()
    saved = json.loads(store.read_text())["dirs"][os.path.realpath(tmp_path / "d")]
    assert set(saved) == {"a.bin", "b.bin"}
    assert sorted(p.name for p in store.parent.iterdir()) == ["h.json", "h.json.lock"]   # no temporary file

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    three = H.HashCache(store)
    three.digest(_write(tmp_path / "d" / "c.bin", b"c" * 100))
    monkeypatch.setattr(json, "dump", broken)
    with pytest.raises(OSError):
        three.save()
    assert json.loads(store.read_text())["dirs"] and not [p for p in store.parent.iterdir() if p.suffix == ".tmp"]


WRITER = """
import os, sys, time
from vad_pipeline import hashcache as H
H._now = lambda: time.time_ns() + 10 * 10**9
folder, store, who = sys.argv[1:]
for i in range(25):   # another entry, another save: 25 times
    cache = H.HashCache(store)
    cache.digest(os.path.join(folder, f"{who}{i}.bin"))
    assert cache.save()
"""


def test_two_processes_saving_at_once_keep_both_and_a_whole_file(tmp_path):
    """Two processes save the same cache 25 times each, at once: a reader never finds a partial
    file, and the end holds every entry of both (the merge runs under the lock)."""
    import subprocess
    import sys

    from tests.conftest import REPO

    folder = tmp_path / "d"
    for who in "ab":
        for i in range(25):
            _write(folder / f"{who}{i}.bin", f"{who}{i}".encode())
    store = tmp_path / "res" / "h.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(folder), str(store), who], env=env)
             for who in "ab"]
    seen = 0
    while any(p.poll() is None for p in procs):
        if store.exists():
            json.loads(store.read_text())   # whole, whenever it is read
            seen += 1
    assert [p.wait() for p in procs] == [0, 0]
    saved = json.loads(store.read_text())["dirs"][os.path.realpath(folder)]
    assert set(saved) == {f"{who}{i}.bin" for who in "ab" for i in range(25)}


def test_one_cache_object_per_file_and_process(tmp_path):
    assert H.cache_at(tmp_path / "h.json") is H.cache_at(str(tmp_path / "h.json"))
    assert H.cache_at(None) is not H.cache_at(None)
    c = H.HashCache()
    assert H.cache_at(c) is c and not c.save()


# --------------------------------------------------------------------------- over 64 MiB


def test_a_large_file_is_streamed(tmp_path):
    """A file is read a chunk at a time: hashing a 65 MiB file never holds it in memory."""
    f = tmp_path / "big.bin"
    with open(f, "wb") as out:
        out.truncate(BIG)   # sparse: quick to write
        out.write(b"head")
    tracemalloc.start()
    try:
        H.hash_file(f, BIG)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * H.CHUNK, peak


def test_a_video_file_over_64_mib_changed_at_the_same_size(tmp_path, reads):
    """A container over 64 MiB edited in place at the same size (one byte in the middle of it):
    ``content`` sees it, ``size`` cannot; a copy elsewhere keeps the fingerprint; the warm cache
    does not read it again."""
    video = tmp_path / "data" / "train" / "01.avi"
    video.parent.mkdir(parents=True)
    with open(video, "wb") as out:
        out.truncate(BIG)
        out.write(b"RIFF")
    os.utime(video, ns=(OLD_NS, OLD_NS))
    store = tmp_path / "results" / ".hashes" / "own.json"
    cache = H.HashCache(store)
    before = {h: D.fingerprint(video, h, cache) for h in D.FINGERPRINTS}
    assert before["content"].startswith(f"01.avi, {BIG} bytes, content ") and len(reads) == 2
    cache.save()
    reads.clear()
    assert D.fingerprint(video, "content", H.HashCache(store)) == before["content"] and reads == []
    copy = tmp_path / "copy" / "01.avi"
    copy.parent.mkdir()
    shutil.copyfile(video, copy)
    assert {h: D.fingerprint(copy, h, cache) for h in D.FINGERPRINTS} == before
    with open(video, "r+b") as f:
        f.seek(BIG // 3)
        f.write(b"\x01")
    os.utime(video, ns=(OLD_NS + 10**9, OLD_NS + 10**9))
    assert video.stat().st_size == BIG
    after = {h: D.fingerprint(video, h, H.HashCache(store)) for h in D.FINGERPRINTS}
    assert after["size"] == before["size"] and after["sample"] == before["sample"]   # between the blocks
    assert after["content"] != before["content"]


def test_a_pixel_mask_over_64_mib_changed_in_place(tmp_path, reads):
    """ShanghaiTech's test_pixel_mask .npy over 64 MiB (74 MB at 856x480 is common) fixed in
    place at the same size: the masks' fingerprint changes whatever dataset.fingerprint says; a
    copy of the dataset keeps it; with a warm cache neither mask is read again."""
    root = tmp_path / "st"
    folder = root / "testing" / "test_pixel_mask"
    folder.mkdir(parents=True)
    shape = (BIG // (480 * 856) + 1, 480, 856)   # 166 frames: 68 MB
    mask = np.lib.format.open_memmap(folder / "01_0014.npy", mode="w+", dtype=np.uint8, shape=shape)
    mask[10:20, 100:200, 300:400] = 1
    mask.flush()
    del mask
    np.save(folder / "01_0015.npy", np.zeros((3, 480, 856), np.uint8))
    for p in folder.iterdir():
        os.utime(p, ns=(OLD_NS, OLD_NS))
    big = folder / "01_0014.npy"
    size = big.stat().st_size
    assert size > 64 * 2**20
    store = tmp_path / "results" / ".hashes" / "st.json"
    cfgs = {how: {"name": "st", "dataset": {"layout": "shanghaitech", "root": str(root), "labelled": True,
                                            "fingerprint": how}} for how in D.FINGERPRINTS}
    before = D.mask_fingerprint(cfgs["size"], store)
    assert before.startswith("2 mask files, ") and len(reads) == 2
    H.cache_at(store).save()
    reads.clear()
    assert {D.mask_fingerprint(c, H.HashCache(store)) for c in cfgs.values()} == {before} and reads == []
    shutil.copytree(root, tmp_path / "copy", copy_function=shutil.copyfile)
    moved = {**cfgs["size"], "dataset": {**cfgs["size"]["dataset"], "root": str(tmp_path / "copy")}}
    assert D.mask_fingerprint(moved, store) == before
    H.cache_at(store).save()
    fixed = np.load(big, mmap_mode="r+")
    fixed[15:20] = 0   # half of its regions were not anomalies
    fixed.flush()
    del fixed
    os.utime(big, ns=(OLD_NS + 10**9, OLD_NS + 10**9))
    assert big.stat().st_size == size
    assert all(D.mask_fingerprint(c, H.HashCache(store)) != before for c in cfgs.values())


def test_frame_fingerprints_are_free_with_a_warm_cache(tmp_path, reads):
    """``content`` on a frame folder: the first fingerprint reads every frame, the next (another
    process: a dry run) none; one frame replaced at the same size reads that frame alone."""
    folder = tmp_path / "frames" / "01"
    for t in range(50):
        _write(folder / f"{t:03d}.bmp", bytes([t]) * 1000)
    store = tmp_path / "h.json"
    cache = H.HashCache(store)
    first = D.fingerprint(folder, "content", cache)
    assert len(reads) == 50 and cache.save()
    reads.clear()
    assert D.fingerprint(folder, "content", H.HashCache(store)) == first and reads == []
    _write(folder / "020.bmp", bytes([99]) * 1000, OLD_NS + 10**9)
    assert D.fingerprint(folder, "content", H.HashCache(store)) != first
    assert reads == [str(folder / "020.bmp")]


def test_ground_truth_is_tracked_by_content_whatever_the_setting(tmp_path):
    root = tmp_path / "data"
    _write(root / "gt.json", b"[[0, 1, 1]]")
    cfg = {"name": "mine", "dataset": {"layout": "frames", "root": str(root), "gt": "gt.json", "labelled": True,
                                       "fingerprint": "size"}}
    before = D.gt_fingerprint(cfg, tmp_path / "h.json")
    _write(root / "gt.json", b"[[0, 0, 1]]", OLD_NS + 10**9)
    assert D.gt_fingerprint(cfg, tmp_path / "h.json") != before
    section = C.validate({"datasets": {"x": {"layout": "frames", "root": str(root)}}})["datasets"]["x"]
    assert D.fingerprint_mode({"name": "x", "dataset": section}) == "content"   # the schema's default
