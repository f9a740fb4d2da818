"""Which training videos the label-free validation holds out (section ``validation``).

A held-out video is no training video at all: not for the model, not in the S_m or S_c
references, not in any z-statistic; the validation makes pseudo-anomalies of it
(:mod:`vad_pipeline.validation`). Per camera, ``validation.videos`` of them, evenly spaced in name
order, where the camera has at least ``validation.min_videos`` training videos. Only the videos'
names and cameras decide, so the workflow knows them before any job runs.
"""

from __future__ import annotations

from vad_pipeline.datasets.video import natural_key


def evenly(names: list[str], k: int) -> list[str]:
    """``k`` of ``names`` (natural order), spread evenly: the middle of each of k equal slices."""
    names = sorted(names, key=natural_key)
    return [names[int((i + 0.5) * len(names) / k)] for i in range(k)] if k else []


def held_out(cfg: dict, cameras: dict[str, str]) -> list[str]:
    """The held-out videos of a training split whose videos are ``cameras`` ({video: camera}), in
    natural order; none when ``validation.videos`` is 0."""
    p = cfg["validation"]
    k, least = int(p["videos"]), int(p["min_videos"])
    if k == 0:
        return []
    per_camera: dict[str, list[str]] = {}
    for video, camera in cameras.items():
        per_camera.setdefault(camera, []).append(video)
    out = [v for vids in per_camera.values() if len(vids) >= max(least, k + 2) for v in evenly(vids, k)]
    return sorted(out, key=natural_key)
