"""Flow backends ``dis`` (OpenCV DIS) and ``farneback``: grey frames, weight-free, CPU."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from vad_pipeline.flow import FlowBackend, PairsFn

DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


def _per_pair(f: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> PairsFn:
    return lambda prevs, curs: [f(p, c) for p, c in zip(prevs, curs)]


def make_dis(p: dict) -> FlowBackend:
    dis = cv2.DISOpticalFlow_create(DIS_PRESETS[p["preset"]])
    return FlowBackend(_per_pair(lambda prev, cur: dis.calc(prev, cur, None)), gray=True)


def make_farneback(p: dict) -> FlowBackend:
    args = (p["pyr_scale"], p["levels"], p["winsize"], p["iterations"], p["poly_n"], p["poly_sigma"], 0)
    return FlowBackend(_per_pair(lambda prev, cur: cv2.calcOpticalFlowFarneback(prev, cur, None, *args)), gray=True)
