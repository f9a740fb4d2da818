"""Seed models, selected by ``model.name``; each is a pure ``nn.Module`` built from config."""

from __future__ import annotations

from torch import nn

from vad_pipeline.io import VadError
from vad_pipeline.models.amsrc import AMSRC, AMSRCConfig


def build_model(model_cfg: dict, in_frames: int, channels: int) -> nn.Module:
    """Build the model named in ``model_cfg`` for cubes of ``in_frames`` past frames."""
    name = model_cfg["name"]
    if name == "amsrc":
        return AMSRC(AMSRCConfig(in_frames=in_frames, channels=channels, width=model_cfg["width"],
                                 fusion=model_cfg["fusion"], skips=list(model_cfg["skips"])))
    raise VadError(f"config: model.name {name!r} is not available (have ['amsrc'])")
