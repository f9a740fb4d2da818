"""A weight-free term computed in part jobs and gathered: the shape S_m
(:mod:`vad_pipeline.object_motion`, rules motion_terms, gather_motion_terms) and S_c
(:mod:`vad_pipeline.windows`, rules cell_terms, gather_cell_terms) share.

A term's reference is per camera or pooled (``cameras.motion``, ``cameras.cells``):
:func:`groups` names the references from the videos' cameras, one part job each (S_c's also cut
into bands of window rows). A part job (:meth:`Term.write` with ``part``) writes its training and
test rows with their place in the split (the term's ``part_columns``); :meth:`Term.gather` joins
the parts into the term's files, those :meth:`Term.write` writes in one process, byte for byte
(the parts' numbers read back exactly: :func:`vad_pipeline.io.read_part`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from vad_pipeline.datasets.cameras import ONE
from vad_pipeline.io import read_part, write_csv

log = logging.getLogger(__name__)

MODULES = {"motion": "vad_pipeline.object_motion", "cells": "vad_pipeline.windows"}   # results folder: module


@dataclass(frozen=True)
class Term:
    """A weight-free term: ``name`` (in the log), ``unit`` (what one of its rows is), ``columns``
    (its files'), ``part_columns`` (a part job's: + the rows' places in the split); ``parts``
    (train input, test input, cfg, cameras, threads=, and a part's ``camera`` / ``band``) gives a
    part's training and test rows, ``order`` puts the rows of every part into the term's rows, in
    the split's order."""

    name: str
    unit: str
    columns: tuple[str, ...]
    part_columns: tuple[str, ...]
    parts: Callable[..., tuple[pd.DataFrame, pd.DataFrame]]
    order: Callable[[pd.DataFrame], pd.DataFrame]

    @property
    def column(self) -> str:
        return self.name.lower()

    def combine(self, parts: list[pd.DataFrame]) -> pd.DataFrame:
        """The term's rows (``columns``) from those of its parts (``part_columns``)."""
        parts = [d for d in parts if len(d)]
        if not parts:
            return pd.DataFrame(columns=list(self.columns))
        return self.order(pd.concat(parts, ignore_index=True))[list(self.columns)].reset_index(drop=True)

    def summary(self, train: pd.DataFrame, test: pd.DataFrame, what: str = "") -> None:
        c = self.column
        log.info("%s: %d training %s (mean %.3f), %d test %s (mean %.3f)%s", self.name,
                 len(train), self.unit, train[c].mean() if len(train) else float("nan"),
                 len(test), self.unit, test[c].mean() if len(test) else float("nan"), what)

    def write(self, train_in: str, test_in: str, train_out: str, test_out: str, cfg: dict,
              cameras: dict[str, str] | None = None, part: dict | None = None, threads: int = 1) -> None:
        """One job of the term (``cameras``: {video: camera}): with ``part`` (``{"camera": ...}``,
        S_c also ``"band"``) a part job's rows for :meth:`gather`; without, every part in this
        process: the term's files themselves."""
        train, test = self.parts(train_in, test_in, cfg, cameras, threads=threads, **(part or {}))
        if part is None:
            train, test = self.combine([train]), self.combine([test])
        self.summary(train, test, "" if part is None else ", part " + " ".join(map(str, part.values())))
        write_csv(train_out, train)
        write_csv(test_out, test)

    def gather(self, train_parts: list[str], test_parts: list[str], train_out: str, test_out: str) -> None:
        """The gather job: the part jobs' training and test rows joined into the files one job
        writes."""
        train = self.combine([read_part(p, list(self.part_columns)) for p in train_parts])
        test = self.combine([read_part(p, list(self.part_columns)) for p in test_parts])
        self.summary(train, test, f", {len(train_parts)} part(s)")
        write_csv(train_out, train)
        write_csv(test_out, test)


def term(folder: str) -> Term:
    """The term whose results are in ``results/<dataset>/<folder>``: ``motion`` (S_m), ``cells`` (S_c)."""
    from importlib import import_module

    return import_module(MODULES[folder]).TERM


def groups(cfg: dict, key: str, cameras: dict[str, str]) -> list[str]:
    """The references of a term from the videos' cameras ``cameras`` ({video: camera}): with
    ``cameras.<key>: camera`` and several cameras each camera, else one (:data:`ONE`: every video)."""
    names = sorted(set(cameras.values()))
    return names if cfg["cameras"][key] == "camera" and len(names) > 1 else [ONE]


def warn_few_videos(name: str, unit: str, videos: dict, leave: dict, own: str = "") -> None:
    """A warning per camera of ``videos`` ({camera: training videos}) whose training ``unit`` are
    scored in time blocks (``leave``: :func:`vad_pipeline.reference.leave_out`; ``own``: what
    else each row leaves out)."""
    from vad_pipeline.reference import VIDEOS, scheme

    for cam, n in videos.items():
        if scheme(n, leave["few"]) != VIDEOS:
            log.warning("%s, camera %s: %d training video(s); its training %s are scored in %d time blocks a video "
                        "(each against the rest, %d frames either side%s left out)", name, cam, n, unit,
                        leave["blocks"], leave["margin"], own)
