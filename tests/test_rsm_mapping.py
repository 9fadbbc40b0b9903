"""Layer maps on small simulated fMRI: planted-layer recovery, permutation test, residual method, chunking."""

import numpy as np
import pytest

from egg_cli.rsm.compare import Comparison
from egg_cli.rsm.fmri_simulation import FmriSimulationConfig, simulate_fmri
from egg_cli.rsm.mapping import dice, map_layers, overlap_statistics, region_recovery
from egg_cli.rsm.matrices import upper
from egg_cli.rsm.searchlight import RdmCalculator, volume_searchlights
from egg_cli.rsm.volume import BrainPatterns

K = 16
LAYERS = ["early", "middle", "late"]


def _features(shared: float, seed: int = 0) -> dict[str, np.ndarray]:
    """Per-layer (K, D) features: a common factor (weight ``shared``) plus a layer-specific one."""
    rng = np.random.default_rng(seed)
    common = rng.standard_normal((K, 30))
    return {name: np.hstack([shared * common, rng.standard_normal((K, 30))]) for name in LAYERS}


def _model_vectors(features):
    return np.stack([upper(1 - np.corrcoef(features[n])) for n in LAYERS])


def _simulate(features, noise=1.0, seed=0):
    cfg = FmriSimulationConfig(
        shape=(20, 22, 20),
        voxel_size=3.0,
        region_radius_mm=9.0,
        n_runs=4,
        signal_std=1.0,
        noise_std=noise,
        noise_fwhm_mm=6.0,
        seed=seed,
    )
    sim = simulate_fmri(features, LAYERS, cfg)
    patterns = BrainPatterns(
        data=sim.bold[sim.mask].T.astype(np.float64), conditions=sim.conditions, runs=sim.runs, mask=sim.mask, affine=sim.affine
    )
    return sim, patterns


def _maps(features, comparison="spearman", residual=False, n_perm=100, chunk=500, noise=1.0, distance="correlation"):
    sim, patterns = _simulate(features, noise)
    sl = volume_searchlights(sim.mask, 6.5, sim.affine, threshold=0.5, min_voxels=5)
    calc = RdmCalculator(patterns, sl, distance)
    maps = map_layers(
        calc,
        _model_vectors(features),
        LAYERS,
        Comparison(comparison, residual),
        n_permutations=n_perm,
        seed=0,
        chunk_size=chunk,
        progress=False,
    )
    truth_at_centres = sim.truth[sim.mask][sl.centers]
    return sim, maps, truth_at_centres


@pytest.mark.parametrize("distance", ["correlation", "crossnobis"])
def test_planted_layers_are_recovered_per_region(distance):
    features = _features(shared=0.5)
    sim, maps, truth = _maps(features, distance=distance)
    rows = region_recovery(maps, truth, {i + 1: n for i, n in enumerate(LAYERS)})
    assert [r["planted_layer"] for r in rows] == LAYERS
    for row in rows:
        assert row["recovered"], row
        assert row["fraction_best_is_planted"] > 0.6, row
        assert row["fraction_significant_planted"] > 0.3, row
    outside = truth == 0
    assert maps.significant(0.05)[outside].mean() < 0.05


def test_noise_only_data_are_not_significant():
    features = _features(shared=0.5)
    sim, patterns = _simulate(features)
    patterns.data = np.random.default_rng(5).standard_normal(patterns.data.shape)
    sl = volume_searchlights(sim.mask, 6.5, sim.affine, threshold=0.5, min_voxels=5)
    maps = map_layers(
        RdmCalculator(patterns, sl),
        _model_vectors(features),
        LAYERS,
        Comparison("spearman"),
        n_permutations=100,
        seed=1,
        progress=False,
    )
    assert maps.significant(0.05).sum() <= 0.01 * maps.significant(0.05).size
    assert np.nanmin(maps.p_fwer) > 0.01
    assert np.nanmedian(maps.p_uncorrected) > 0.2


def test_chunk_size_does_not_change_the_maps():
    features = _features(shared=0.5)
    _, small, _ = _maps(features, n_perm=30, chunk=97)
    _, large, _ = _maps(features, n_perm=30, chunk=100000)
    np.testing.assert_allclose(small.stats, large.stats, atol=1e-12)
    np.testing.assert_allclose(small.p_fwer, large.p_fwer)
    np.testing.assert_allclose(small.null_max, large.null_max, atol=1e-5)


def test_residual_method_separates_correlated_layers():
    features = _features(shared=1.6)  # layer RDMs strongly correlated
    vectors = _model_vectors(features)
    assert np.corrcoef(vectors)[np.triu_indices(3, 1)].min() > 0.6
    names = {i + 1: n for i, n in enumerate(LAYERS)}
    _, plain, truth = _maps(features, residual=False, noise=0.7)
    _, resid, _ = _maps(features, residual=True, noise=0.7)
    plain_rows = region_recovery(plain, truth, names)
    resid_rows = region_recovery(resid, truth, names)
    other_plain = np.mean([r["fraction_significant_other_layers"] for r in plain_rows])
    other_resid = np.mean([r["fraction_significant_other_layers"] for r in resid_rows])
    assert other_plain > 0.3  # correlated layers light up in each other's regions
    assert other_resid < 0.5 * other_plain
    assert all(r["recovered"] for r in resid_rows)
    sig_plain, sig_resid = plain.significant(), resid.significant()
    assert (
        overlap_statistics(sig_resid, LAYERS)["mean_pairwise_dice"] < overlap_statistics(sig_plain, LAYERS)["mean_pairwise_dice"]
    )


def test_overlap_statistics_counts():
    sig = np.array([[1, 1, 0], [1, 0, 0], [0, 1, 0], [1, 1, 1], [0, 0, 0]], dtype=bool)
    stats = overlap_statistics(sig, LAYERS)
    assert stats["dice"][0, 1] == pytest.approx(2 * 2 / (3 + 3))
    assert stats["dice"][0, 2] == pytest.approx(2 * 1 / (3 + 1))
    assert stats["n_significant_any"] == 4
    assert stats["fraction_multi_layer"] == pytest.approx(2 / 4)
    assert np.isnan(dice(np.zeros(3, bool), np.zeros(3, bool)))


@pytest.mark.parametrize("method,residual", [("spearman", False), ("pearson", True), ("spearman", True)])
def test_reindexed_permuted_models_equal_recomputed_ones(method, residual):
    from egg_cli.rsm.compare import pair_permutation
    from egg_cli.rsm.mapping import permuted_models

    vectors = _model_vectors(_features(shared=1.0))
    cmp = Comparison(method, residual)
    perms = [np.random.default_rng(i).permutation(K) for i in range(5)]
    fast = permuted_models(cmp, cmp.prepare_models(vectors), vectors, LAYERS, perms)
    slow = np.stack([cmp.prepare_models(vectors[:, pair_permutation(p)]) for p in perms])
    np.testing.assert_allclose(fast, slow, atol=1e-6)
