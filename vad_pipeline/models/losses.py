"""Loss terms and per-sample anomaly terms shared by the seed models."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def intensity(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample mean squared error, L_int = ||x_hat - x||_2^2 (averaged over pixels)."""
    return (pred - target).pow(2).flatten(1).mean(1)


def gradient(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample gradient difference L_gd: | |dx pred| - |dx target| | + same along y."""
    def grads(x):
        return (x[..., :, 1:] - x[..., :, :-1]).abs(), (x[..., 1:, :] - x[..., :-1, :]).abs()
    (px, py), (tx, ty) = grads(pred), grads(target)
    return (px - tx).abs().flatten(1).mean(1) + (py - ty).abs().flatten(1).mean(1)


def cosine_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample 1 - cos(a, b) of the flattened features (L_sim; S_f at test time)."""
    return 1.0 - F.cosine_similarity(a.flatten(1), b.flatten(1), dim=1, eps=1e-8)
