"""Which training videos the label-free validation holds out (section ``validation``).

A held-out video is no training video at all: not for the model, not in the S_m or S_c
references, not in any z-statistic; the validation makes pseudo-anomalies of it
(:mod:`vad_pipeline.validation`). Per camera, ``validation.videos`` of them, evenly spaced in name
order, where the camera has at least ``validation.min_videos`` training videos. Only the videos'
names and cameras decide, so the workflow knows them before any job runs.

A camera with fewer training videos holds out time blocks instead (:func:`blocks`): the last
``validation.block`` of ``validation.videos`` of its videos is a held-out video of its own, and
the video trains with the frames before it only. Both parts are named by their frames
(:func:`part_name`: ``01+210-299`` held out, ``01+0-209`` trained on), so every stage reads a part
from its name alone. A block shorter than ``validation.min_block`` frames is not taken (such a
camera is then not validated); the frame counts decide, read from the listings or headers.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from vad_pipeline.datasets.video import natural_key

SEP = "+"   # between a training video's name and the frames of a part of it
KEYS = ("videos", "min_videos", "block", "min_block")   # the validation settings that decide what is held out


def evenly(names: list[str], k: int) -> list[str]:
    """``k`` of ``names`` (natural order), spread evenly: the middle of each of k equal slices."""
    names = sorted(names, key=natural_key)
    return [names[int((i + 0.5) * len(names) / k)] for i in range(k)] if k else []


def held_out(cfg: dict, cameras: dict[str, str]) -> list[str]:
    """The held-out videos of a training split whose videos are ``cameras`` ({video: camera}), in
    natural order; none when ``validation.videos`` is 0."""
    large, _ = _by_size(cfg, cameras)
    k = int(cfg["validation"]["videos"])
    return sorted((v for vids in large for v in evenly(vids, k)), key=natural_key)


def _by_size(cfg: dict, cameras: dict[str, str]) -> tuple[list[list[str]], list[list[str]]]:
    """(each camera's videos where it has enough to hold out whole ones, the same of the others:
    the cameras for time blocks); both empty when ``validation.videos`` is 0."""
    p = cfg["validation"]
    k, least = int(p["videos"]), int(p["min_videos"])
    if k == 0:
        return [], []
    groups: dict[str, list[str]] = {}
    for video, camera in cameras.items():
        groups.setdefault(camera, []).append(video)
    enough = max(least, k + 2)
    return ([v for v in groups.values() if len(v) >= enough], [v for v in groups.values() if len(v) < enough])


def keys(cfg: dict, cameras: dict[str, str]) -> tuple[str, ...]:
    """The validation settings that decide what a training split of ``cameras`` ({video: camera})
    holds out: the time blocks' only where a camera is too small for whole held-out videos
    (elsewhere they change nothing, and a stage tracking them would rerun for nothing)."""
    return KEYS if _by_size(cfg, cameras)[1] else KEYS[:2]


def blocks(cfg: dict, cameras: dict[str, str], n_frames: Callable[[str], int]) -> dict[str, tuple[int, int]]:
    """{training video: (first, stop) of its held-out time block} of the cameras (``cameras``:
    {video: camera} of the training split) too small for whole held-out videos: the last
    ``validation.block`` of ``validation.videos`` of each one's videos (evenly spread), where the
    block has at least ``validation.min_block`` frames. ``n_frames``: a video's frame count,
    asked for these cameras' videos only."""
    p = cfg["validation"]
    _, small = _by_size(cfg, cameras)
    if not small:
        return {}   # block and min_block are not read: a stage is given them only where they count (keys)
    k, share, least = int(p["videos"]), float(p["block"]), int(p["min_block"])
    out = {}
    for vids in small if share > 0 else []:
        for video in evenly(vids, min(k, len(vids))):
            n = n_frames(video)
            size = round(share * n)
            if size >= least and size < n:
                out[video] = (n - size, n)
    return out


def part_name(video: str, first: int, stop: int) -> str:
    """The name of frames ``first .. stop - 1`` of a training video (a time block, or the frames
    before it): the frames are in the name, so moving a block's boundary makes other results."""
    return f"{video}{SEP}{first}-{stop - 1}"


_PART = re.compile(rf"^(?P<video>.+){re.escape(SEP)}(?P<first>\d+)-(?P<last>\d+)$")


def split_part(name: str) -> tuple[str, tuple[int, int] | None]:
    """(the training video, (first, stop) of its frames) of a :func:`part_name`; (name, None) else."""
    m = _PART.match(name)
    if not m:
        return name, None
    return m["video"], (int(m["first"]), int(m["last"]) + 1)


def source_name(name: str) -> str:
    """The training video a part (:func:`part_name`) is of; a whole video's name."""
    return split_part(name)[0]
