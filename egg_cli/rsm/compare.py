"""Comparison of searchlight RDMs with model (layer) RDMs, vectorized over searchlights and models.

Every comparison is an inner product of prepared vectors, so a chunk of searchlights against all
layers (and against label-permuted layers) is one matrix product:

* ``pearson``: centred, unit-norm RDM vectors -> Pearson r;
* ``spearman``: the same on average ranks -> Spearman rho (rsatoolbox ``spearman``);
* ``tau-a``: signs of all pairwise differences of RDM entries, divided by their number ->
  Kendall tau-a (ties count as neither concordant nor discordant; rsatoolbox ``tau-a``).

With ``residual=True`` each model vector is replaced by its residual after least-squares
regression on the other models (plus an intercept), computed on ranks for ``spearman``; the
brain statistic is then the (semi-partial) correlation of the brain RDM with the part of a layer's
RDM that no other layer explains. See :mod:`egg_cli.rsm.residual`.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from egg_cli.errors import EggError

METHODS = ("pearson", "spearman", "tau-a")


def standardize(vectors: np.ndarray) -> np.ndarray:
    """Rows centred and scaled to unit norm (NaN rows where a row is constant)."""
    x = vectors - vectors.mean(axis=-1, keepdims=True)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 1e-12 * np.maximum(1.0, np.abs(vectors).max(axis=-1, keepdims=True)), x / norm, np.nan)


def pairwise_signs(vectors: np.ndarray, dtype: type = np.float32) -> np.ndarray:
    """sign(v[i] - v[j]) for all i < j of each row: (..., P(P-1)/2)."""
    p = vectors.shape[-1]
    i, j = np.triu_indices(p, 1)
    return np.sign(vectors[..., i] - vectors[..., j]).astype(dtype)


def residualize(vectors: np.ndarray) -> np.ndarray:
    """Residual of each row after least-squares regression on the other rows and an intercept."""
    n_models, p = vectors.shape
    out = np.empty_like(vectors, dtype=np.float64)
    for l in range(n_models):
        design = np.column_stack([np.ones(p), np.delete(vectors, l, axis=0).T])
        coef, *_ = np.linalg.lstsq(design, vectors[l], rcond=None)
        out[l] = vectors[l] - design @ coef
    return out


class Comparison:
    """Prepared-vector comparison between brain RDMs (n, P) and model RDMs (L, P)."""

    def __init__(self, method: str = "spearman", residual: bool = False) -> None:
        if method not in METHODS:
            raise EggError(f"comparison={method!r} is not supported; expected one of {METHODS}")
        if residual and method == "tau-a":
            raise EggError("comparison=tau-a cannot be combined with the residual method; expected pearson or spearman")
        self.method, self.residual = method, residual

    def _transform(self, vectors: np.ndarray) -> np.ndarray:
        return stats.rankdata(vectors, axis=-1) if self.method == "spearman" else np.asarray(vectors, dtype=np.float64)

    def prepare_brain(self, vectors: np.ndarray) -> np.ndarray:
        """Prepared brain RDM vectors; rows of NaN stay NaN."""
        if self.method == "tau-a":
            return pairwise_signs(vectors)
        return standardize(self._transform(vectors))

    def prepare_models(self, vectors: np.ndarray, names: list[str] | None = None) -> np.ndarray:
        """Prepared model RDM vectors (residualized first when ``residual``)."""
        if self.method == "tau-a":
            return pairwise_signs(vectors)
        x = self._transform(vectors)
        if self.residual:
            raw = x - x.mean(axis=1, keepdims=True)
            x = residualize(x)
            share = np.linalg.norm(x, axis=1) / np.maximum(np.linalg.norm(raw, axis=1), 1e-300)
            if (share < 1e-6).any():
                bad = [names[i] if names else str(i) for i in np.flatnonzero(share < 1e-6)]
                raise EggError(f"layers {bad}: their RDMs are fully explained by the other layers; nothing unique is left to map")
        prepared = standardize(x)
        if np.isnan(prepared).any():
            bad = [names[i] if names else str(i) for i in np.flatnonzero(np.isnan(prepared).any(1))]
            raise EggError(f"model RDMs of {bad} are constant; expected dissimilarities that vary between image pairs")
        return prepared

    def score(self, brain: np.ndarray, models: np.ndarray) -> np.ndarray:
        """(n, L) statistics from prepared brain (n, P) and models (L, P); also (n, B, L) for models (B, L, P)."""
        scale = brain.shape[-1] if self.method == "tau-a" else 1.0
        if models.ndim == 2:
            return brain @ models.T / scale
        return np.einsum("np,blp->nbl", brain, models, optimize=True) / scale


def pair_permutation(permutation: np.ndarray) -> np.ndarray:
    """Index map of RDM upper-triangle entries when conditions are relabelled by ``permutation``.

    ``v[:, pair_permutation(perm)]`` is the upper triangle of ``D[perm][:, perm]``.
    """
    k = len(permutation)
    rows, cols = np.triu_indices(k, 1)
    index = np.zeros((k, k), dtype=np.int64)
    index[rows, cols] = np.arange(len(rows))
    index = index + index.T
    return index[permutation[rows], permutation[cols]]
