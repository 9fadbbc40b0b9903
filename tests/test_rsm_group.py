"""Group inference: sign-flip max-statistic FWER on pure-noise subjects, power, noise ceiling."""

import numpy as np
import pytest
from scipy import ndimage

from egg_cli.errors import EggError
from egg_cli.rsm.group import noise_ceiling, one_sample_t, sign_flip_test, tfce


def _noise_maps(rng, n_subjects=8, shape=(8, 8, 6), n_layers=2):
    """Spatially smooth, heavy-tailed but symmetric subject maps (S, V, L) with no effect anywhere."""
    raw = rng.standard_t(3, size=(n_subjects, n_layers, *shape))
    smooth = ndimage.gaussian_filter(raw, sigma=(0, 0, 1.0, 1.0, 1.0))
    return smooth.reshape(n_subjects, n_layers, -1).transpose(0, 2, 1)


@pytest.mark.parametrize("max_over", ["voxels", "all"])
def test_familywise_error_on_pure_noise_subjects_is_near_five_percent(max_over):
    rng = np.random.default_rng(0)
    n_sims, alpha = 300, 0.05
    errors = []
    for sim in range(n_sims):
        test = sign_flip_test(_noise_maps(rng), n_permutations=1000, seed=sim, max_over=max_over)
        errors.append((test.p_fwer < alpha).any(0))  # per layer (voxels) / per layer of one shared family (all)
    errors = np.array(errors)
    rate = errors.mean() if max_over == "voxels" else errors.any(1).mean()
    # exact test with 2^8 = 256 flips: P(p < 0.05) = 12/256 = 0.047; binomial sd over 600 (300) families ~ 0.009 (0.012)
    assert 0.02 < rate < 0.085, rate


def test_random_flips_also_control_familywise_error():
    rng = np.random.default_rng(1)
    errors = [
        (sign_flip_test(_noise_maps(rng, 12, n_layers=1), n_permutations=199, seed=s).p_fwer < 0.05).any() for s in range(200)
    ]
    assert 0.015 < np.mean(errors) < 0.1


def test_a_planted_group_effect_is_found_only_where_it_is():
    rng = np.random.default_rng(2)
    maps = _noise_maps(rng)
    maps[:, :20, 0] += 1.0  # layer 0, first 20 voxels: positive in every subject
    test = sign_flip_test(maps, n_permutations=1000)
    assert test.exhaustive and test.n_flips == 256
    assert (test.p_fwer[:20, 0] < 0.05).mean() > 0.9
    assert (test.p_fwer[20:, 0] < 0.05).mean() < 0.01 and not (test.p_fwer[:, 1] < 0.05).any()
    np.testing.assert_allclose(test.t, one_sample_t(maps))


def test_one_subject_is_rejected():
    with pytest.raises(EggError, match="expected at least 2"):
        sign_flip_test(np.zeros((1, 5, 2)))


def test_noise_ceiling_bounds():
    rng = np.random.default_rng(3)
    signal = rng.standard_normal((1, 50, 45))
    same = np.repeat(signal, 6, 0)
    lower, upper = noise_ceiling(same)
    np.testing.assert_allclose(lower, 1.0, atol=1e-12)
    np.testing.assert_allclose(upper, 1.0, atol=1e-12)
    noisy = signal + 1.0 * rng.standard_normal((6, 50, 45))
    lower, upper = noise_ceiling(noisy)
    assert np.all(lower < upper)
    assert 0.4 < lower.mean() < 0.8 and 0.6 < upper.mean() < 0.9  # r(signal + noise, signal) = 0.71
    lower, upper = noise_ceiling(rng.standard_normal((6, 50, 45)))
    assert abs(lower.mean()) < 0.05 and 0.3 < upper.mean() < 0.5  # upper ~ 1 / sqrt(S) without shared signal


def test_tfce_of_a_flat_cluster_is_its_closed_form():
    mask = np.ones((6, 6, 6), dtype=bool)
    values = np.zeros((6, 6, 6))
    values[1:3, 1:4, 2:4] = 2.0  # one cluster of 12 voxels at height 2
    values[5, 5, 5] = 1.0  # a single voxel, separate (not 26-connected)
    out = tfce(values[mask], mask, steps=10).reshape(6, 6, 6)
    dh = 0.2
    expected = np.sqrt(12) * sum((k * dh) ** 2 * dh for k in range(1, 11))
    np.testing.assert_allclose(out[1:3, 1:4, 2:4], expected)
    np.testing.assert_allclose(out[5, 5, 5], sum((k * dh) ** 2 * dh for k in range(1, 6)))
    assert out[0, 0, 0] == 0


def test_tfce_familywise_error_on_pure_noise_and_power_on_a_blob():
    rng = np.random.default_rng(4)
    mask = np.ones((8, 8, 6), dtype=bool)
    errors = [
        (sign_flip_test(_noise_maps(rng, n_layers=1), 256, seed=s, tfce_mask=mask, tfce_steps=10).p_fwer < 0.05).any()
        for s in range(100)
    ]
    assert 0.01 < np.mean(errors) < 0.11, np.mean(errors)
    maps = _noise_maps(rng, n_layers=1).reshape(8, 8, 8, 6)
    maps[:, 2:5, 2:5, 1:4] += 0.8
    test = sign_flip_test(maps.reshape(8, -1, 1), 256, tfce_mask=mask, tfce_steps=20)
    blob = np.zeros((8, 8, 6), dtype=bool)
    blob[2:5, 2:5, 1:4] = True
    assert (test.p_fwer[blob.ravel(), 0] < 0.05).mean() > 0.9 and test.statistic.shape == (384, 1)


def test_t_and_fwer_p_agree_with_nilearn_permuted_ols():
    mass_univariate = pytest.importorskip("nilearn.mass_univariate")
    rng = np.random.default_rng(5)
    values = rng.standard_normal((8, 300))
    values[:, :10] += 1.2
    theirs = mass_univariate.permuted_ols(
        np.ones((8, 1)),
        values,
        model_intercept=False,
        n_perm=5000,
        two_sided_test=False,
        random_state=0,
        output_type="dict",
        verbose=0,
    )
    ours = sign_flip_test(values[:, :, None], n_permutations=1000)  # exact: all 256 flips
    np.testing.assert_allclose(ours.t[:, 0], theirs["t"][0], atol=1e-10)
    # nilearn draws 5000 random flips: Monte Carlo sd of a p-value <= 0.007
    np.testing.assert_allclose(ours.p_fwer[:, 0], 10 ** -theirs["logp_max_t"][0], atol=0.03)
    assert (ours.p_fwer[:10, 0] < 0.05).sum() >= 2 and (ours.p_fwer[10:, 0] < 0.05).sum() == 0


@pytest.mark.slow
def test_familywise_error_through_glm_and_searchlights_on_pure_noise_bold_is_near_five_percent():
    """Subjects whose BOLD carries no image signal: AR(1) GLM t-values -> Spearman searchlight maps -> sign flips."""
    from egg_cli.rsm.bold_simulation import BoldSimulationConfig, BoldStudy
    from egg_cli.rsm.compare import Comparison
    from egg_cli.rsm.fmri_simulation import FmriSimulationConfig
    from egg_cli.rsm.glm import GlmConfig, first_level
    from egg_cli.rsm.layer_rdms import default_condition_names
    from egg_cli.rsm.mapping import map_layers
    from egg_cli.rsm.matrices import upper
    from egg_cli.rsm.searchlight import RdmCalculator, volume_searchlights
    from egg_cli.rsm.volume import BrainPatterns

    k, layers, n_subjects, n_sims = 8, ["a", "b", "c"], 8, 40
    names = default_condition_names(k)
    errors = []
    for sim in range(n_sims):
        rng = np.random.default_rng(1000 + sim)
        features = {name: rng.standard_normal((k, 30)) for name in layers}
        models = np.stack([upper(1 - np.corrcoef(features[name])) for name in layers])
        volume = FmriSimulationConfig(shape=(14, 16, 14), region_radius_mm=4.0, n_runs=2, signal_std=0.0, seed=sim)
        study = BoldStudy(features, layers, names, volume, BoldSimulationConfig(n_subjects=n_subjects, repeats=2))
        searchlights = volume_searchlights(study.mask, 7.0, study.affine, threshold=0.5, min_voxels=10)
        stats = []
        for s in range(n_subjects):
            estimates, conditions, runs = [], [], []
            for r, run in enumerate(study.subject(s).runs):
                values, present = first_level(run.data, 2.0, run.events, names, GlmConfig())
                estimates.append(values)
                conditions.append(present)
                runs.append(np.full(len(present), r))
            patterns = BrainPatterns(
                np.concatenate(estimates), np.concatenate(conditions), np.concatenate(runs), study.mask, study.affine
            )
            calculator = RdmCalculator(patterns, searchlights)
            stats.append(map_layers(calculator, models, layers, Comparison(), n_permutations=0, progress=False).stats)
        errors.append((sign_flip_test(np.stack(stats), 1000, seed=sim).p_fwer < 0.05).any(0))
    rate = np.mean(errors)  # 120 layer families; 400 simulations of a larger grid gave 4.7 % of 1197
    assert 0.005 < rate < 0.13, rate
