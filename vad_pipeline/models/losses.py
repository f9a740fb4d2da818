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


def nearest_sq_distances(queries: torch.Tensor, items: torch.Tensor, k: int) -> torch.Tensor:
    """||q - m_j||^2 to the k nearest items, nearest first: queries (B, Q, D), items (N, D) -> (B, Q, k).

    Only the choice of the k items is made without gradient; the distances are recomputed from the
    gathered items, so the gradient reaches both the queries and the items, exactly.
    """
    if items.shape[0] < k:
        raise ValueError(f"need at least {k} memory items, have {items.shape[0]}")
    with torch.no_grad():
        d = queries.pow(2).sum(-1, keepdim=True) - 2 * queries @ items.T + items.pow(2).sum(-1)
        idx = d.topk(k, dim=-1, largest=False).indices            # (B, Q, k)
    return (queries.unsqueeze(2) - items[idx]).pow(2).sum(-1)


def compactness(queries: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """Per-sample L_comp (MGSM paper, eq. 7): ||q - m_1||^2 with m_1 the item nearest to q,
    averaged over the sample's queries (like L_int over pixels). queries (B, Q, D), items (N, D)."""
    return nearest_sq_distances(queries, items, 1)[..., 0].mean(1)


def diversity(queries: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """Per-sample L_diver (MGSM paper, eq. 8): ||q - m_1||^2 - ||q - m_2||^2 with m_1, m_2 the
    nearest and second-nearest items, averaged over the queries. Written as in the paper: no
    margin, no hinge (it is <= 0); bounded because the MGSM model passes unit vectors."""
    d = nearest_sq_distances(queries, items, 2)
    return (d[..., 0] - d[..., 1]).mean(1)
