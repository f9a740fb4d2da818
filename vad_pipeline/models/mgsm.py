"""MGSM framework (Huang et al., seed 000): multi-level memory-augmented appearance-motion correspondence.

Two-stream encoder: E_phi on the past frames (pooling layers), E_theta on the optical flows
(stride-2 layers). The bottleneck features are aligned by L_align = 1 - cos(f_a, f_m) (eqs. 1, 6)
and the motion feature f_m *replaces* f_a as the decoder's input (flow feature replacement for
prediction), so the appearance stream reaches the prediction through the skips only. Every skip
passes through a Memory-Guided Suppression Module (eqs. 2-3), whose queries and memory items give
the compactness and diversity losses (eqs. 7-8).

Ablation switches (defaults = the full model; config.yaml ``ablation:`` maps the paper's rows):
``streams`` which encoders exist (both: E_phi and E_theta with f_m decoded, i.e. FFRP; appearance:
E_phi alone, f_a decoded; motion: E_theta alone, f_m decoded, skips from E_theta), ``memory``
whether an MGSM sits on each skip (false: plain U-Net skips, no memory items, no L_comp/L_diver),
``skips`` which skip levels exist (1 = full resolution, the outermost).
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
    streams: str = "both"       # both (FFRP: f_m decoded) | appearance (E_phi only) | motion (E_theta only)
    memory: bool = True         # an MGSM on every skip; False: plain skips, no memory
    skips: list[int] = field(default_factory=lambda: [1, 2, 3])  # skip levels (1: full resolution)


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

    def similarities(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """feat (B, C, H, W) -> unit queries (B, H*W, C), cos(q, m_j) (B, H*W, N)."""
        queries = F.normalize(feat.flatten(2).transpose(1, 2), dim=2)   # cosine: unit vectors
        return queries, queries @ self.unit_items().T

    def read(self, feat: torch.Tensor, k: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """feat (B, C, H, W) -> suppressed feature (B, C, H, W), unit queries (B, H*W, C), suppressor
        max(w) (B, 1, H, W), and each query's k nearest unit items (B, H*W, k, C), nearest first."""
        b, _, h, w = feat.shape
        queries, cos = self.similarities(feat)
        items = self.unit_items()
        with torch.no_grad():   # unit vectors: the nearest item is the one of largest cosine
            idx = cos.topk(min(k, len(items)), dim=2).indices
        nearest = items[idx]
        # max_j softmax_j(cos) = exp(cos_max) / sum_j exp(cos_j), with no max-shift needed as |cos| <= 1:
        # one exp over the (B, H*W, N) cosines and a gradient that is one product with it; cos_max
        # comes from the gathered item, keeping its gradient off the cosine matrix
        cos_max = (queries.float() * nearest[:, :, 0].float()).sum(-1)
        suppressor = (cos_max.exp() / cos.float().exp().sum(dim=2)).reshape(b, 1, h, w)
        return F.relu(suppressor * self.norm(feat)), queries, suppressor, nearest   # eq. 3


class MGSMNet(nn.Module):
    """forward(frames, flows) -> pred, f_a, f_m, the suppressors max(w) of the MGSM skip levels, and
    the per-sample terms compact (L_comp) and div (L_diver), each summed over the MGSMs (no
    ``terms`` without an MGSM). With one stream there is no appearance-motion pair: f_a and f_m are
    then both None (no L_align, no S_f), whatever stream the model has."""

    feature_term: ClassVar[str] = "align"   # 1 - cos(f_a, f_m): L_align in training (eq. 6), S_f in scoring
    loss_terms: ClassVar[tuple[str, ...]] = ("int", "gd", "align", "compact", "div")
    STREAMS: ClassVar[tuple[str, ...]] = ("both", "appearance", "motion")

    def __init__(self, cfg: MGSMNetConfig):
        super().__init__()
        widths = level_widths(cfg.width)
        if len(cfg.memory_sizes) != len(widths) - 1:
            raise ValueError(f"memory_sizes needs one size per skip level ({len(widths) - 1}), got {cfg.memory_sizes}")
        if cfg.streams not in self.STREAMS:
            raise ValueError(f"unknown streams {cfg.streams!r} (have {', '.join(self.STREAMS)})")
        levels = range(1, len(widths))
        if not set(cfg.skips) <= set(levels) or len(set(cfg.skips)) != len(cfg.skips):
            raise ValueError(f"skips must be distinct levels out of {list(levels)}, got {cfg.skips}")
        self.cfg = cfg
        self.app_enc = (Encoder(cfg.in_frames * cfg.channels, widths, down="pool")
                        if cfg.streams in ("both", "appearance") else None)
        self.mot_enc = Encoder(cfg.in_frames * 2, widths, down="stride") if cfg.streams in ("both", "motion") else None
        # one MGSM per skip level that exists (level i has memory_sizes[i - 1] items); the full model's
        # are mgsms.0..2 for levels 1..3, as before the switches existed
        self.mgsm_levels = sorted(cfg.skips) if cfg.memory else []
        self.mgsms = nn.ModuleList(MemoryGuidedSuppression(widths[i - 1], cfg.memory_sizes[i - 1])
                                   for i in self.mgsm_levels)
        self.decoder = Decoder(widths, cfg.channels, skips=cfg.skips)

    def forward(self, frames: torch.Tensor, flows: torch.Tensor) -> dict:
        """frames (B, T*C, H, W) in [-1, 1]; flows (B, T*2, H, W) -> prediction of frame t (B, C, H, W)."""
        app = self.app_enc(frames) if self.app_enc is not None else None
        mot = self.mot_enc(flows) if self.mot_enc is not None else None
        # the decoder's input: f_m whenever there is a motion stream (flow feature replacement at the
        # bottleneck), f_a in appearance-only; the skips come from E_phi, from E_theta in motion-only
        bottleneck = (mot if mot is not None else app)[-1]
        source = app if app is not None else mot
        skips: list[torch.Tensor | None] = [source[i - 1] if i in self.cfg.skips else None
                                            for i in range(1, len(source))]
        suppressors = []
        compact = div = torch.zeros(len(frames), device=frames.device)
        for level, mgsm in zip(self.mgsm_levels, self.mgsms):
            skips[level - 1], queries, suppressor, nearest = mgsm.read(source[level - 1])
            suppressors.append(suppressor.detach())
            # unit queries and items: "nearest" then agrees with the addressing of eq. 2, and eq. 8
            # (no margin) stays bounded; float32 because autocast may hand us bf16
            comp, dv = L.memory_terms_of_nearest(queries.float(), nearest.float())
            compact, div = compact + comp, div + dv
        pred = self.decoder(bottleneck, skips)
        pair = app is not None and mot is not None
        result = {"pred": pred, "f_a": app[-1] if pair else None, "f_m": mot[-1] if pair else None,
                  "suppressors": suppressors}
        if self.mgsms:
            result["terms"] = {"compact": compact, "div": div}
        return result
