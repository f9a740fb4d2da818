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
    """Per-sample 1 - cos(a, b) of the flattened features (amsrc's L_sim, mgsm's L_align; S_f at test time)."""
    return 1.0 - F.cosine_similarity(a.flatten(1), b.flatten(1), dim=1, eps=1e-8)


def sq_distances(queries: torch.Tensor, nearest: torch.Tensor) -> torch.Tensor:
    """||q - m||^2 of each query to its own items: queries (B, Q, D), nearest (B, Q, k, D) -> (B, Q, k)."""
    return (queries.unsqueeze(-2) - nearest).pow(2).sum(-1)


def memory_terms_of_nearest(queries: torch.Tensor, nearest: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample (L_comp, L_diver) from each query's two nearest items (B, Q, 2, D), nearest first."""
    if nearest.shape[-2] < 2:
        raise ValueError(f"need at least 2 memory items, have {nearest.shape[-2]}")
    return _compact_div(sq_distances(queries, nearest))


def _compact_div(d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared distances to the nearest and second-nearest item (B, Q, 2) -> mean over queries of
    d_1 (L_comp) and of d_1 - d_2 (L_diver)."""
    return d[..., 0].mean(1), (d[..., 0] - d[..., 1]).mean(1)
