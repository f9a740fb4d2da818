"""Progress of a long job in its log: done of total, rate and time left, at most every
``every_s`` seconds (and once at the end), so a user can tell a slow job from a stuck one at
ShanghaiTech's scale. Log lines, not a progress bar: a job's log is a file, read on a cluster."""

from __future__ import annotations

import logging
import os
import time

log = logging.getLogger("vad_pipeline.progress")

EVERY_S = 30.0   # at least twice a minute, whatever the job
ENV = "VAD_PROGRESS_S"   # seconds between lines, over EVERY_S (tests: 0, a line per update)


def interval() -> float:
    """Seconds between lines: ``$VAD_PROGRESS_S`` if set, else :data:`EVERY_S` (read at each call,
    so that a test's monkeypatch reaches jobs started later)."""
    value = os.environ.get(ENV, "").strip()
    try:
        return float(value) if value else float(EVERY_S)
    except ValueError:
        log.warning("%s=%r is not a number of seconds; using %s", ENV, value, EVERY_S)
        return float(EVERY_S)


def clock(seconds: float) -> str:
    """``h:mm:ss``."""
    s = int(round(max(seconds, 0.0)))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Progress:
    """``update(n)`` as work is done; a line ``<what>: done/total unit (pct), rate unit/s, elapsed,
    about T left`` when ``every_s`` has passed since the last line, and at ``total``."""

    def __init__(self, what: str, total: int, unit: str = "items", every_s: float | None = None,
                 logger: logging.Logger | None = None):
        """``every_s`` None: :func:`interval` (``$VAD_PROGRESS_S``, else ``EVERY_S``)."""
        self.what, self.total, self.unit = what, int(total), unit
        self.every_s = interval() if every_s is None else float(every_s)
        self.log = logger or log
        self.done = 0
        self.start = self.last = time.monotonic()
        self.log.info("%s: %d %s to do", what, self.total, unit)

    def update(self, n: int = 1) -> None:
        self.done += int(n)
        now = time.monotonic()
        if now - self.last >= self.every_s or self.done >= self.total:
            self.last = now
            self.log.info("%s", self.line(now))

    def line(self, now: float | None = None) -> str:
        elapsed = (now or time.monotonic()) - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        pct = 100.0 * self.done / self.total if self.total else 100.0
        eta = clock(left) if left == left else "?"
        return (f"{self.what}: {self.done}/{self.total} {self.unit} ({pct:.0f} %), {rate:.3g} {self.unit}/s, "
                f"{clock(elapsed)} elapsed, about {eta} left")
