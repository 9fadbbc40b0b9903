"""Paired comparisons of two methods over neurons: robust slope through the origin and Wilcoxon.

Normalized activations are ratios to a per-neuron ceiling, so "method B is k times method A"
is a line through the origin. Its robust slope here is the **median of the per-neuron ratios**
``b_i / a_i`` (neurons with ``a_i > 0``): the Theil-Sen estimator restricted to the pairs that
include the origin, which is what remains of Theil-Sen when the intercept is fixed at zero.
It ignores how far a neuron lies from the origin, so a few neurons with large activations do
not dominate it (unlike least squares through the origin). A percentile bootstrap over neurons
gives its 95% interval. The paired test is the two-sided Wilcoxon signed-rank test on
``b_i - a_i`` (scipy, zero differences dropped), with Holm's correction across the comparisons
of one evaluation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from egg_cli.errors import EggError


@dataclass
class PairedComparison:
    """Method B against method A over the same neurons (one generator, one evaluator)."""

    n: int
    mean_a: float
    mean_b: float
    median_difference: float
    fraction_b_better: float
    slope: float
    slope_low: float
    slope_high: float
    wilcoxon_statistic: float
    p_value: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def slope_through_origin(a: np.ndarray, b: np.ndarray) -> float:
    """Median of ``b / a`` over the pairs with ``a > 0`` (NaN when there are none)."""
    a, b = _paired(a, b)
    keep = a > 0
    return float(np.median(b[keep] / a[keep])) if keep.any() else float("nan")


def bootstrap_slope_interval(
    a: np.ndarray, b: np.ndarray, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval (resampling neurons) of :func:`slope_through_origin`."""
    a, b = _paired(a, b)
    keep = a > 0
    ratios = b[keep] / a[keep]
    if len(ratios) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(ratios), size=(n_boot, len(ratios)))
    medians = np.median(ratios[draws], axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(medians, [tail, 100 - tail])
    return float(low), float(high)


def wilcoxon_paired(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Two-sided Wilcoxon signed-rank test of ``b - a``: (statistic, p); NaN when untestable."""
    a, b = _paired(a, b)
    diff = b - a
    if np.count_nonzero(diff) < 1:
        return float("nan"), float("nan")
    result = stats.wilcoxon(diff, zero_method="wilcox", alternative="two-sided")
    return float(result.statistic), float(result.pvalue)


def compare_paired(a: np.ndarray, b: np.ndarray, n_boot: int = 1000, seed: int = 0) -> PairedComparison:
    """All paired statistics of method B against method A."""
    a, b = _paired(a, b)
    stat, p = wilcoxon_paired(a, b)
    low, high = bootstrap_slope_interval(a, b, n_boot, seed)
    return PairedComparison(
        n=len(a),
        mean_a=float(a.mean()),
        mean_b=float(b.mean()),
        median_difference=float(np.median(b - a)),
        fraction_b_better=float(np.mean(b > a)),
        slope=slope_through_origin(a, b),
        slope_low=low,
        slope_high=high,
        wilcoxon_statistic=stat,
        p_value=p,
    )


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (NaN entries stay NaN and are not counted)."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full_like(p, np.nan)
    valid = np.flatnonzero(np.isfinite(p))
    if not len(valid):
        return out
    order = valid[np.argsort(p[valid], kind="stable")]
    m = len(order)
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adjusted
    return out


def _paired(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise EggError(f"paired comparison needs the same neurons in both methods; got {len(a)} and {len(b)} values")
    if len(a) == 0:
        raise EggError("paired comparison of zero neurons; expected at least one neuron in both methods")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise EggError("paired comparison got NaN or inf activations; expected finite values")
    return a, b
