"""Reference implementations that only the tests use: slow, literal forms of what the package
computes another way, and small readers of its outputs."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import torch

from vad_pipeline.models.losses import _compact_div, sq_distances
from vad_pipeline.models.mgsm import MemoryGuidedSuppression


def boxes_by_frame(df: pd.DataFrame) -> dict[int, np.ndarray]:
    """A box table (vad_pipeline.detect.COLUMNS) -> {frame: (N, 4) int x1, y1, x2, y2}."""
    return {int(t): g[["x1", "y1", "x2", "y2"]].to_numpy(int) for t, g in df.groupby("frame")}


def read_flow(path: str, t: int | slice) -> np.ndarray:
    """Flow frame(s) ``t`` of a flow file as float32."""
    with h5py.File(path, "r") as f:
        return f["flow"][t].astype(np.float32)


# --------------------------------------------------------------------------- memory losses, by full search


def nearest_sq_distances(queries: torch.Tensor, items: torch.Tensor, k: int,
                         dots: torch.Tensor | None = None) -> torch.Tensor:
    """||q - m_j||^2 to the k nearest items, nearest first: queries (B, Q, D), items (N, D) -> (B, Q, k).

    The k items are chosen without gradient, by ||m_j||^2 - 2 q.m_j (``dots`` = queries @ items.T,
    pass them in where they exist already); the distances are then computed from the gathered
    items only, so the gradient never touches a (B, Q, N) tensor.
    """
    if items.shape[0] < k:
        raise ValueError(f"need at least {k} memory items, have {items.shape[0]}")
    with torch.no_grad():   # ||q||^2 is the same for every item: it does not change the order
        if dots is None:
            dots = queries @ items.T
        idx = (items.pow(2).sum(-1) - 2 * dots).topk(k, dim=-1, largest=False).indices   # (B, Q, k)
    return sq_distances(queries, items[idx])


def memory_terms(queries: torch.Tensor, items: torch.Tensor,
                 dots: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample (L_comp, L_diver) of one memory (eqs. 7-8: compactness, diversity) from one nearest-two search."""
    return _compact_div(nearest_sq_distances(queries, items, 2, dots))


def compactness(queries: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """Per-sample L_comp (MGSM paper, eq. 7): ||q - m_1||^2 with m_1 the item nearest to q,
    averaged over the sample's queries (like L_int over pixels). queries (B, Q, D), items (N, D)."""
    return nearest_sq_distances(queries, items, 1)[..., 0].mean(1)


def diversity(queries: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """Per-sample L_diver (MGSM paper, eq. 8): ||q - m_1||^2 - ||q - m_2||^2 with m_1, m_2 the
    nearest and second-nearest items, averaged over the queries. Written as in the paper: no
    margin, no hinge (it is <= 0); bounded because the MGSM model passes unit vectors."""
    return memory_terms(queries, items)[1]


# --------------------------------------------------------------------------- MGSM, as the paper writes it


def address(mgsm: MemoryGuidedSuppression, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """feat (B, C, H, W) -> unit queries (B, H*W, C), attention weights w (B, H*W, N) (eq. 2)."""
    queries, cos = mgsm.similarities(feat)
    return queries, torch.softmax(cos, dim=2)


def suppress(mgsm: MemoryGuidedSuppression, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """feat (B, C, H, W) -> suppressed feature (B, C, H, W), unit queries (B, H*W, C),
    suppressor max(w) (B, 1, H, W)."""
    return mgsm.read(feat, k=1)[:3]
