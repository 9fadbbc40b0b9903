"""Searchlight layer maps: statistic per centre and layer, permutation test with max-statistic
correction, best-layer labels, overlap between layer maps and recovery of planted layers.

Permutation test: the condition labels of the model RDMs are shuffled (the same shuffle for all
layers), which leaves each searchlight's RDM intact and breaks its link to the models. For each
permutation the largest statistic over all searchlights (per layer, or over layers too with
``max_over="all"``) forms the null distribution; a centre's family-wise corrected p-value is
``(1 + #{null max >= observed}) / (1 + n_permutations)`` (one-sided: positive relation).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from egg_cli.errors import EggError
from egg_cli.rsm.compare import Comparison, pair_permutation
from egg_cli.rsm.searchlight import RdmCalculator

log = logging.getLogger(__name__)


@dataclass
class LayerMaps:
    """Per-centre statistics (n_centers, L); NaN rows are searchlights whose RDM is undefined."""

    layers: list[str]
    stats: np.ndarray
    valid: np.ndarray
    p_fwer: np.ndarray | None = None
    p_uncorrected: np.ndarray | None = None
    null_max: np.ndarray | None = None
    brain_rdms: np.ndarray | None = None  # (n_centers, pairs) float32 searchlight RDMs, when kept

    @property
    def best_layer(self) -> np.ndarray:
        """Index of the layer with the largest statistic per centre (-1 where invalid)."""
        filled = np.where(self.valid[:, None], self.stats, -np.inf)
        return np.where(self.valid, filled.argmax(1), -1)

    def significant(self, alpha: float = 0.05, threshold: float | None = None) -> np.ndarray:
        """(n_centers, L) significance: FWER p < alpha, or statistic > ``threshold`` when given."""
        if threshold is not None:
            return self.valid[:, None] & (np.nan_to_num(self.stats, nan=-np.inf) > threshold)
        if self.p_fwer is None:
            raise EggError("significance needs permutations (n_permutations > 0) or an explicit overlap_threshold")
        return self.valid[:, None] & (self.p_fwer < alpha)


def map_layers(
    calculator: RdmCalculator,
    model_vectors: np.ndarray,
    layers: list[str],
    comparison: Comparison,
    n_permutations: int = 1000,
    seed: int = 0,
    chunk_size: int = 2000,
    max_over: str = "voxels",
    permutation_batch: int = 100,
    progress: bool = True,
    keep_rdms: bool = False,
) -> LayerMaps:
    """Compare every searchlight RDM with every layer RDM and run the permutation test, chunk by chunk.

    ``keep_rdms`` keeps every searchlight's RDM vector (float32) for group noise ceilings.
    """
    if max_over not in ("voxels", "all"):
        raise EggError(f"max_over={max_over!r} is not supported; expected voxels (per layer) or all (voxels and layers)")
    k = calculator.k
    if model_vectors.shape[1] != k * (k - 1) // 2:
        raise EggError(
            f"model RDMs have {model_vectors.shape[1]} pairs but the data have {k} conditions "
            f"({k * (k - 1) // 2} pairs); expected one model condition per data condition"
        )
    models = comparison.prepare_models(model_vectors, layers)
    rng = np.random.default_rng(seed)
    permutations = [rng.permutation(k) for _ in range(n_permutations)]
    n, n_layers = calculator.searchlights.n_centers, len(layers)
    stats = np.full((n, n_layers), np.nan)
    valid = np.zeros(n, dtype=bool)
    null_max = np.full((n_permutations, n_layers), -np.inf)
    exceed = np.zeros((n, n_layers), dtype=np.int64)
    kept = np.zeros((n, k * (k - 1) // 2), dtype=np.float32) if keep_rdms else None
    chunks = list(calculator.chunks(chunk_size))
    for chunk in tqdm(chunks, desc="searchlights", disable=not progress, leave=False):
        rdms, ok = calculator.rdms(chunk)
        if kept is not None:
            kept[chunk] = np.where(ok[:, None], rdms, 0.0)
        brain = comparison.prepare_brain(np.where(ok[:, None], rdms, 0.0))
        ok &= np.isfinite(brain).all(1)
        brain = np.where(ok[:, None], brain, 0)
        observed = comparison.score(brain, models)
        stats[chunk] = np.where(ok[:, None], observed, np.nan)
        valid[chunk] = ok
        if not ok.any():
            continue
        good = brain[ok].astype(np.float32)
        for start in range(0, n_permutations, permutation_batch):
            batch = permutations[start : start + permutation_batch]
            permuted = permuted_models(comparison, models, model_vectors, layers, batch)
            null = comparison.score(good, permuted)  # (n_ok, B, L)
            null_max[start : start + len(batch)] = np.maximum(null_max[start : start + len(batch)], null.max(0))
            exceed[chunk[ok]] += (null >= observed[ok][:, None, :] - 1e-6).sum(1)
    result = LayerMaps(layers=list(layers), stats=stats, valid=valid, brain_rdms=kept)
    n_bad = int((~valid).sum())
    if n_bad:
        log.warning("%d of %d searchlights have an undefined RDM (no pattern variance): left out of the maps", n_bad, n)
    if n_permutations:
        reference = null_max if max_over == "voxels" else np.repeat(null_max.max(1, keepdims=True), n_layers, 1)
        sorted_null = np.sort(reference, axis=0)
        counts = np.stack(
            [n_permutations - np.searchsorted(sorted_null[:, l], stats[:, l] - 1e-6, side="left") for l in range(n_layers)], 1
        )
        result.p_fwer = np.where(valid[:, None], (1 + counts) / (1 + n_permutations), np.nan)
        result.p_uncorrected = np.where(valid[:, None], (1 + exceed) / (1 + n_permutations), np.nan)
        result.null_max = reference
    return result


def permuted_models(
    comparison: Comparison, prepared: np.ndarray, model_vectors: np.ndarray, layers: list[str], permutations: list[np.ndarray]
) -> np.ndarray:
    """Prepared model vectors (B, L, ·) for condition-label permutations, as float32.

    Ranking, standardization and residualization all commute with a common reordering of the RDM
    entries, so for pearson/spearman (plain or residual) the prepared vectors are just reindexed;
    tau-a's pair signs are recomputed from the permuted RDMs.
    """
    if comparison.method == "tau-a":
        out = [comparison.prepare_models(model_vectors[:, pair_permutation(p)], layers) for p in permutations]
    else:
        out = [prepared[:, pair_permutation(p)] for p in permutations]
    return np.stack(out).astype(np.float32)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice coefficient of two boolean sets (NaN when both are empty)."""
    total = a.sum() + b.sum()
    return float(2 * (a & b).sum() / total) if total else float("nan")


def overlap_statistics(significant: np.ndarray, layers: list[str]) -> dict:
    """Pairwise Dice and Jaccard of layer maps and how many significant centres more than one layer claims."""
    n_layers = significant.shape[1]
    dice_matrix = np.full((n_layers, n_layers), np.nan)
    jaccard = np.full((n_layers, n_layers), np.nan)
    for i in range(n_layers):
        for j in range(n_layers):
            a, b = significant[:, i], significant[:, j]
            dice_matrix[i, j] = dice(a, b)
            union = (a | b).sum()
            jaccard[i, j] = (a & b).sum() / union if union else np.nan
    upper = dice_matrix[np.triu_indices(n_layers, 1)]
    any_sig = significant.any(1)
    n_claims = significant.sum(1)
    return {
        "layers": layers,
        "n_significant": {name: int(significant[:, i].sum()) for i, name in enumerate(layers)},
        "dice": dice_matrix,
        "jaccard": jaccard,
        "mean_pairwise_dice": float(np.nanmean(upper)) if np.isfinite(upper).any() else float("nan"),
        "n_significant_any": int(any_sig.sum()),
        "fraction_multi_layer": float((n_claims[any_sig] > 1).mean()) if any_sig.any() else float("nan"),
        "mean_layers_per_significant_centre": float(n_claims[any_sig].mean()) if any_sig.any() else float("nan"),
    }


def region_recovery(
    maps: LayerMaps,
    truth_at_centers: np.ndarray,
    truth_names: dict[int, str],
    alpha: float = 0.05,
    threshold: float | None = None,
) -> list[dict]:
    """Per planted region (label > 0 at centres): does the map pick the planted layer?

    Reports the fraction of the region's centres whose best layer is the planted one, the modal
    best layer, and (with permutations) the fraction significant for the planted layer and for others.
    """
    best = maps.best_layer
    rows = []
    sig = None
    if maps.p_fwer is not None or threshold is not None:
        sig = maps.significant(alpha, threshold)
    for label in sorted(set(int(x) for x in np.unique(truth_at_centers)) - {0}):
        planted = truth_names.get(label)
        region = (truth_at_centers == label) & maps.valid
        if planted not in maps.layers or not region.any():
            continue
        l = maps.layers.index(planted)
        votes = np.bincount(best[region], minlength=len(maps.layers))
        row = {
            "region": label,
            "planted_layer": planted,
            "n_centres": int(region.sum()),
            "modal_best_layer": maps.layers[int(votes.argmax())],
            "recovered": bool(votes.argmax() == l),
            "fraction_best_is_planted": float(votes[l] / region.sum()),
            "mean_stat_planted": float(np.nanmean(maps.stats[region, l])),
            "mean_stat_best_other": float(np.nanmax(np.delete(np.nanmean(maps.stats[region], 0), l))),
        }
        if sig is not None:
            row["fraction_significant_planted"] = float(sig[region, l].mean())
            others = np.delete(sig[region], l, axis=1)
            row["fraction_significant_other_layers"] = float(others.mean())
        rows.append(row)
    return rows
