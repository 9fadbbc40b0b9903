"""Robust slope through the origin, bootstrap interval, Wilcoxon and Holm."""

import numpy as np
import pytest
from scipy import stats

from egg_cli.errors import EggError
from egg_cli.evaluation.stats import bootstrap_slope_interval, compare_paired, holm, slope_through_origin, wilcoxon_paired


def test_slope_is_the_median_of_ratios_and_ignores_an_outlier_far_from_the_origin():
    a = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    b = np.array([2.0, 4.0, 6.0, 8.0, 100.0])  # ratios 2, 2, 2, 2, 10
    assert slope_through_origin(a, b) == pytest.approx(2.0)
    least_squares = float(a @ b / (a @ a))
    assert least_squares > 7.0  # the outlier dominates a least-squares fit through the origin


def test_slope_skips_neurons_where_method_a_is_zero():
    assert slope_through_origin(np.array([0.0, 1.0, 2.0, 4.0]), np.array([5.0, 1.5, 3.0, 6.0])) == pytest.approx(1.5)


def test_bootstrap_interval_is_degenerate_for_an_exact_line_and_covers_the_slope_otherwise():
    a = np.linspace(0.5, 2.0, 12)
    assert bootstrap_slope_interval(a, 3 * a) == (pytest.approx(3.0), pytest.approx(3.0))
    rng = np.random.default_rng(0)
    b = 1.5 * a * rng.lognormal(0, 0.2, size=12)
    low, high = bootstrap_slope_interval(a, b, n_boot=500, seed=1)
    assert low < slope_through_origin(a, b) < high
    assert bootstrap_slope_interval(a, b, n_boot=500, seed=1) == (low, high)  # seeded


def test_wilcoxon_matches_scipy_on_the_differences():
    rng = np.random.default_rng(2)
    a = rng.uniform(0.5, 1.5, 20)
    b = a + rng.normal(0.2, 0.3, 20)
    stat, p = wilcoxon_paired(a, b)
    ref = stats.wilcoxon(b - a)
    assert stat == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue)
    assert np.isnan(wilcoxon_paired(a, a)[1])


def test_compare_paired_reports_means_fraction_and_median_difference():
    a = np.array([1.0, 1.0, 2.0, 2.0])
    b = np.array([2.0, 0.5, 3.0, 5.0])
    c = compare_paired(a, b, n_boot=100)
    assert (c.n, c.mean_a, c.mean_b) == (4, 1.5, 2.625)
    assert c.fraction_b_better == 0.75
    assert c.median_difference == pytest.approx(1.0)
    assert c.slope == pytest.approx(np.median([2.0, 0.5, 1.5, 2.5]))


def test_holm_adjusts_in_order_and_keeps_nan():
    p = np.array([0.01, 0.04, np.nan, 0.03])
    np.testing.assert_allclose(holm(p), [0.03, 0.06, np.nan, 0.06])


def test_unpaired_or_non_finite_input_is_refused():
    with pytest.raises(EggError, match="same neurons"):
        compare_paired(np.ones(3), np.ones(4))
    with pytest.raises(EggError, match="NaN or inf"):
        slope_through_origin(np.array([1.0, np.nan]), np.ones(2))
