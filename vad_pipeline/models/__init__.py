"""Seed models, selected by ``model.name``; each is a pure ``nn.Module`` built from config.

Every model's ``forward(frames, flows)`` returns a dict with ``pred``, ``f_a``, ``f_m`` (f_m is None
without an appearance-motion pair: then there is no 1 - cos term) and optionally ``terms`` (its own
per-sample loss terms). A model class names the terms it is trained on (``loss_terms``; term ``k``
is weighted by ``loss.lambda_k``) and the one that is 1 - cos(f_a, f_m), the S_f of scoring
(``feature_term``).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from vad_pipeline.io import VadError
from vad_pipeline.models.amsrc import AMSRC, AMSRCConfig
from vad_pipeline.models.mgsm import MGSMNet, MGSMNetConfig


def _amsrc(cfg: dict, in_frames: int, channels: int) -> nn.Module:
    return AMSRC(AMSRCConfig(in_frames=in_frames, channels=channels, width=cfg["width"],
                             fusion=cfg["fusion"], skips=list(cfg["skips"])))


def _mgsm(cfg: dict, in_frames: int, channels: int) -> nn.Module:
    from vad_pipeline.config import defaults

    # model files written before the ablation switches: the schema's defaults (the full model)
    cfg = {**defaults()["model"], **cfg}
    return MGSMNet(MGSMNetConfig(in_frames=in_frames, channels=channels, width=cfg["width"],
                                 memory_sizes=list(cfg["memory_sizes"]), streams=cfg["streams"],
                                 memory=cfg["memory"], skips=list(cfg["skips"])))


MODELS: dict[str, Callable[[dict, int, int], nn.Module]] = {"amsrc": _amsrc, "mgsm": _mgsm}


def build_model(model_cfg: dict, in_frames: int, channels: int) -> nn.Module:
    """Build the model named in ``model_cfg`` for cubes of ``in_frames`` past frames."""
    name = model_cfg["name"]
    if name not in MODELS:
        raise VadError(f"config: model.name {name!r} is not available (have {sorted(MODELS)})")
    return MODELS[name](model_cfg, in_frames, channels)
