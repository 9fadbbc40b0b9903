"""Residual method: map what each layer's RDM adds beyond all other layers.

Formulation (for L layer RDMs over K conditions, P = K(K-1)/2 pairs):

1. Take each layer's upper-triangle vector ``m_l`` (on ranks for ``comparison=spearman``).
2. Regress ``m_l`` on an intercept and all other layers' vectors by least squares across the P
   pairs; the residual ``e_l = m_l - [1, M_-l] beta_l`` is the part of layer l's geometry that no
   linear combination of the other layers reproduces. ``1 - |e_l|^2 / |m_l - mean|^2`` is the
   share of layer l's RDM variance the others explain (reported as ``explained_by_others``).
3. In every searchlight, correlate the brain RDM (ranked for spearman) with ``e_l``: the
   semi-partial correlation of brain and layer l controlling the layer side for the others.
   This keeps the brain RDM untouched, so the statistic stays comparable across layers and
   searchlights, and layers whose unique part the region does not carry drop towards 0.
4. The permutation test shuffles condition labels of all layer RDMs together; since least
   squares commutes with a common reordering of the pairs, the residuals of permuted RDMs are the
   permuted residuals, so the same max-statistic machinery as ``rsm map`` applies.

The comparison itself lives in :class:`egg_cli.rsm.compare.Comparison` (``residual=True``).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from egg_cli.rsm.compare import residualize


def explained_by_others(model_vectors: np.ndarray, method: str = "spearman") -> np.ndarray:
    """Share (R^2) of each layer's RDM vector that the other layers explain linearly (ranks for spearman)."""
    x = stats.rankdata(model_vectors, axis=1) if method == "spearman" else np.asarray(model_vectors, dtype=np.float64)
    centred = x - x.mean(1, keepdims=True)
    residual = residualize(x)
    return 1.0 - (residual**2).sum(1) / np.maximum((centred**2).sum(1), 1e-300)


def residual_vectors(model_vectors: np.ndarray, method: str = "spearman") -> np.ndarray:
    """Residual RDM vectors e_l (L, P) used by the residual method."""
    x = stats.rankdata(model_vectors, axis=1) if method == "spearman" else np.asarray(model_vectors, dtype=np.float64)
    return residualize(x)
