"""Group inference: sign-flip max-statistic FWER on pure-noise subjects, power, noise ceiling."""

import numpy as np
import pytest
from scipy import ndimage

from egg_cli.errors import EggError
from egg_cli.rsa.group import noise_ceiling, one_sample_t, sign_flip_test


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
