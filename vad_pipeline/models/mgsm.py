"""MGSM framework (Huang et al., seed 000): multi-level memory-augmented appearance-motion correspondence.

Two-stream encoder: E_phi on the past frames (pooling layers), E_theta on the optical flows
(stride-2 layers). The bottleneck features are aligned by L_align = 1 - cos(f_a, f_m) (eqs. 1, 6)
and the motion feature f_m *replaces* f_a as the decoder's input (flow feature replacement for
prediction), so the appearance stream reaches the prediction through the skips only. Every skip
passes through a Memory-Guided Suppression Module (eqs. 2-3), whose queries and memory items give
the compactness and diversity losses (eqs. 7-8).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from vad_pipeline.models import losses as L
from vad_pipeline.models.blocks import Decoder, Encoder, level_widths


@dataclass
class MGSMNetConfig:
    in_frames: int = 4          # T past frames
    channels: int = 3           # 3 (RGB) or 1 (grey)
    width: int = 16             # first-level channels (64 in the paper)
    memory_sizes: list[int] = field(default_factory=lambda: [40, 40, 40])  # items of the MGSM on skip 1, 2, 3


class MemoryGuidedSuppression(nn.Module):
    """MGSM on one skip connection. Each spatial position's feature vector q (C channels) is a
    query; with w_j = softmax_j(cos(q, m_j)) over the N learnable items (eq. 2), the feature sent
    to the decoder is q_hat = ReLU(max_j(w_j) * BN(q)) (eq. 3): suppressed, not regenerated."""

    def __init__(self, channels: int, n_items: int):
        super().__init__()
        if n_items < 1:
            raise ValueError(f"an MGSM needs at least one memory item, got {n_items}")
        # initialised like MemAE's memory (ref. [3] of the paper, which the memory follows)
        bound = 1.0 / math.sqrt(channels)
        self.items = nn.Parameter(torch.empty(n_items, channels).uniform_(-bound, bound))
        self.norm = nn.BatchNorm2d(channels)

    def unit_items(self) -> torch.Tensor:
        return F.normalize(self.items, dim=1)

    def address(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """feat (B, C, H, W) -> unit queries (B, H*W, C), attention weights w (B, H*W, N) (eq. 2)."""
        queries = F.normalize(feat.flatten(2).transpose(1, 2), dim=2)   # cosine: unit vectors
        return queries, torch.softmax(queries @ self.unit_items().T, dim=2)

    def forward(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """feat (B, C, H, W) -> suppressed feature (B, C, H, W), unit queries (B, H*W, C),
        suppressor max(w) (B, 1, H, W)."""
        b, _, h, w = feat.shape
        queries, weights = self.address(feat)
        suppressor = weights.amax(dim=2).reshape(b, 1, h, w)
        return F.relu(suppressor * self.norm(feat)), queries, suppressor   # eq. 3


class MGSMNet(nn.Module):
    """forward(frames, flows) -> pred, f_a, f_m, the suppressors max(w) of the skip levels, and
    the per-sample terms compact (L_comp) and div (L_diver), each summed over the three MGSMs."""

    feature_term: ClassVar[str] = "align"   # 1 - cos(f_a, f_m): L_align in training (eq. 6), S_f in scoring
    loss_terms: ClassVar[tuple[str, ...]] = ("int", "gd", "align", "compact", "div")

    def __init__(self, cfg: MGSMNetConfig):
        super().__init__()
        widths = level_widths(cfg.width)
        if len(cfg.memory_sizes) != len(widths) - 1:
            raise ValueError(f"memory_sizes needs one size per skip level ({len(widths) - 1}), got {cfg.memory_sizes}")
        self.cfg = cfg
        self.app_enc = Encoder(cfg.in_frames * cfg.channels, widths, down="pool")
        self.mot_enc = Encoder(cfg.in_frames * 2, widths, down="stride")
        self.mgsms = nn.ModuleList(MemoryGuidedSuppression(c, n) for c, n in zip(widths[:-1], cfg.memory_sizes))
        self.decoder = Decoder(widths, cfg.channels, skips=range(1, len(widths)))

    def forward(self, frames: torch.Tensor, flows: torch.Tensor) -> dict:
        """frames (B, T*C, H, W) in [-1, 1]; flows (B, T*2, H, W) -> prediction of frame t (B, C, H, W)."""
        feats = self.app_enc(frames)
        f_a = feats[-1]                                   # (B, 8w, H/8, W/8), after ReLU
        f_m = self.mot_enc(flows)[-1]
        skips, suppressors = [], []
        compact = div = torch.zeros(len(frames), device=frames.device)
        for feat, mgsm in zip(feats[:-1], self.mgsms):
            out, queries, suppressor = mgsm(feat)
            skips.append(out)
            suppressors.append(suppressor.detach())
            # unit queries and items: "nearest" then agrees with the addressing of eq. 2, and
            # eq. 8 (no margin) stays bounded; float32 because autocast may hand us bf16
            items = mgsm.unit_items().float()
            compact = compact + L.compactness(queries.float(), items)
            div = div + L.diversity(queries.float(), items)
        pred = self.decoder(f_m, skips)                   # flow feature replacement at the bottleneck
        return {"pred": pred, "f_a": f_a, "f_m": f_m, "suppressors": suppressors,
                "terms": {"compact": compact, "div": div}}
