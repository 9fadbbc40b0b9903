"""Representational similarity matrices of layer features and their cross-layer correlations.

An RSM holds the Pearson correlation between the feature vectors of every pair of images; the
RDM used for mapping is ``1 - RSM`` (correlation distance). Only the upper triangle (without the
diagonal) carries information, so comparisons between RSMs use those K(K-1)/2 entries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

EPS = 1e-12


def rsm(features: torch.Tensor) -> torch.Tensor:
    """Pearson correlation between the rows (images) of a (K, D) feature matrix: (K, K)."""
    x = features.double() if features.dtype == torch.float64 else features.float()
    x = x - x.mean(dim=1, keepdim=True)
    x = x / x.norm(dim=1, keepdim=True).clamp_min(EPS)
    return x @ x.T


def upper(matrices: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """Upper triangles (offset 1) of (..., K, K) matrices in row-major order: (..., K(K-1)/2)."""
    k = matrices.shape[-1]
    rows, cols = np.triu_indices(k, 1)
    return matrices[..., rows, cols]


def square(vectors: np.ndarray, diagonal: float = 0.0) -> np.ndarray:
    """Symmetric (..., K, K) matrices from upper-triangle vectors (..., K(K-1)/2)."""
    p = vectors.shape[-1]
    k = int(round((1 + np.sqrt(1 + 8 * p)) / 2))
    if k * (k - 1) // 2 != p:
        raise ValueError(f"{p} entries are not the upper triangle of a square matrix")
    rows, cols = np.triu_indices(k, 1)
    out = np.full(vectors.shape[:-1] + (k, k), diagonal, dtype=vectors.dtype)
    out[..., rows, cols] = vectors
    out[..., cols, rows] = vectors
    return out


def vector_correlation(vectors: torch.Tensor) -> torch.Tensor:
    """Pearson correlation matrix (L, L) between the rows of an (L, P) matrix (differentiable)."""
    x = vectors - vectors.mean(dim=1, keepdim=True)
    x = x / x.norm(dim=1, keepdim=True).clamp_min(EPS)
    return x @ x.T


def rdm_contrast(rdm_vectors: torch.Tensor) -> torch.Tensor:
    """Coefficient of variation of each RDM: std / mean of its distances over pairs.

    Takes (L, P) RDM upper triangles, returns (L,). A set of nearly equidistant images has a flat
    RDM (contrast near 0) whose structure noisy measurements cannot recover, whatever its overall scale.
    """
    return rdm_vectors.std(dim=1, unbiased=False) / rdm_vectors.mean(dim=1).clamp_min(EPS)


def layer_rsms(features: Mapping[str, torch.Tensor], layers: Sequence[str]) -> torch.Tensor:
    """RSMs of every layer stacked as (L, K, K)."""
    return torch.stack([rsm(features[name]) for name in layers])


def cross_layer_correlation(rsms: torch.Tensor) -> torch.Tensor:
    """Correlation between the upper triangles of every pair of layer RSMs: (L, L)."""
    return vector_correlation(upper(rsms))


def off_diagonal(matrix: np.ndarray) -> np.ndarray:
    """Entries above the diagonal of a square matrix, as a flat vector."""
    return np.asarray(matrix)[np.triu_indices(matrix.shape[0], 1)]


def correlation_summary(matrix: np.ndarray) -> dict[str, float]:
    """Mean squared, mean absolute and largest absolute off-diagonal correlation of an (L, L) matrix."""
    values = off_diagonal(np.asarray(matrix, dtype=np.float64))
    return {
        "mean_squared": float(np.mean(values**2)),
        "mean_abs": float(np.mean(np.abs(values))),
        "max_abs": float(np.max(np.abs(values))),
        "mean": float(np.mean(values)),
    }
