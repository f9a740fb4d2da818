"""AMSRC (Huang et al., seed 002): appearance-motion semantics representation consistency.

Two-stream encoder (past frames; optical flows), cosine consistency at the bottleneck, gated
fusion sigmoid(f_a) * f_m + f_a, U-Net skips from the frame encoder, future-frame prediction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from vad_pipeline.models.blocks import Decoder, Encoder, level_widths


@dataclass
class AMSRCConfig:
    in_frames: int = 4          # T past frames
    channels: int = 3           # 3 (RGB) or 1 (grey)
    width: int = 16             # first-level channels (64 in the paper)
    fusion: str = "gated"       # gated | add | none (frame-stream baseline, no motion encoder)
    skips: list[int] = field(default_factory=lambda: [1, 2, 3])


class AMSRC(nn.Module):
    feature_term: ClassVar[str] = "sim"     # 1 - cos(f_a, f_m): L_sim in training, S_f in scoring
    loss_terms: ClassVar[tuple[str, ...]] = ("int", "gd", "sim")

    def __init__(self, cfg: AMSRCConfig):
        super().__init__()
        if cfg.fusion not in ("gated", "add", "none"):
            raise ValueError(f"unknown fusion {cfg.fusion!r}")
        self.cfg = cfg
        widths = level_widths(cfg.width)
        self.app_enc = Encoder(cfg.in_frames * cfg.channels, widths, down="pool")
        self.mot_enc = Encoder(cfg.in_frames * 2, widths, down="stride") if cfg.fusion != "none" else None
        self.decoder = Decoder(widths, cfg.channels, cfg.skips)

    def forward(self, frames: torch.Tensor, flows: torch.Tensor) -> dict[str, torch.Tensor | None]:
        """frames (B, T*C, H, W) in [-1, 1]; flows (B, T*2, H, W) -> prediction of frame t (B, C, H, W)."""
        feats = self.app_enc(frames)
        f_a = feats[-1]                                   # (B, 8w, H/8, W/8), after ReLU
        f_m = self.mot_enc(flows)[-1] if self.mot_enc is not None else None
        if self.cfg.fusion == "gated":
            fused = torch.sigmoid(f_a) * f_m + f_a        # gated fusion
        elif self.cfg.fusion == "add":
            fused = f_a + f_m
        else:
            fused = f_a
        pred = self.decoder(fused, feats[:-1])            # skips from the frame encoder
        return {"pred": pred, "f_a": f_a, "f_m": f_m}
