"""Spectral prior: exact Wiener denoiser against a direct posterior computation; fitted exponent."""

import numpy as np
import pytest
import torch

from egg_cli.diffusion import SpectralModel, SpectralPrior, fit_spectral_model
from egg_cli.diffusion.spectrum import spectral_slope


def _model(channels: int, size: int = 4) -> SpectralModel:
    if channels == 1:
        basis = np.eye(1)
    else:
        basis, _ = np.linalg.qr(np.array([[1.0, 0.3, 0.2], [1.0, -0.5, 0.1], [1.0, 0.2, -0.6]]))
    return SpectralModel(
        mean=np.linspace(-0.2, 0.1, channels),
        basis=basis,
        amplitude=np.array([0.5, 0.1, 0.05][:channels]),
        exponent=np.array([2.4, 2.0, 1.5][:channels]),
        dc_power=np.array([3.0, 0.5, 0.2][:channels]),
        image_size=size,
    )


@pytest.mark.parametrize("channels", [1, 3])
def test_spectral_denoiser_equals_direct_gaussian_posterior_mean(channels):
    model = _model(channels)
    prior = SpectralPrior.from_config(model, "50", torch.device("cpu"))
    sigma = model.covariance()
    mu = np.repeat(model.mean, 16)
    x_t = torch.randn(2, channels, 4, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    for i in (0, 20, 49):
        abar = prior.diffusion.alphas_cumprod[i]
        out = prior.p_mean_variance(x_t, i)
        for b in range(2):
            xt = x_t[b].numpy().ravel()
            gain = np.sqrt(abar) * sigma @ np.linalg.inv(abar * sigma + (1 - abar) * np.eye(len(mu)))
            x0 = mu + gain @ (xt - np.sqrt(abar) * mu)
            np.testing.assert_allclose(out["pred_xstart"][b].numpy().ravel(), x0, atol=1e-10)
            d = prior.diffusion
            mean = d.posterior_mean_coef1[i] * x0 + d.posterior_mean_coef2[i] * xt
            np.testing.assert_allclose(out["mean"][b].numpy().ravel(), mean, atol=1e-10)
        # exact reverse transition: posterior variance + coef1^2 * posterior covariance of x0
        post_cov = sigma - abar * sigma @ np.linalg.inv(abar * sigma + (1 - abar) * np.eye(len(mu))) @ sigma
        full = d.posterior_variance[i] + d.posterior_mean_coef1[i] ** 2 * np.diag(post_cov)
        np.testing.assert_allclose(out["variance"][0].numpy().ravel(), full, rtol=1e-8)


def test_fitted_exponent_and_dc_power_recovered_from_samples_of_a_known_spectrum():
    truth = SpectralModel(np.zeros(1), np.eye(1), np.array([0.2]), np.array([2.5]), np.array([4.0]), 32)
    prior = SpectralPrior.from_config(truth, "50", torch.device("cpu"))
    z = torch.randn(400, 1, 32, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    spectra = torch.from_numpy(truth.spectra())
    samples = torch.fft.ifft2(torch.fft.fft2(z, norm="ortho") * spectra.sqrt(), norm="ortho").real
    fitted = fit_spectral_model(samples)
    assert fitted.exponent[0] == pytest.approx(2.5, abs=0.15)
    assert fitted.dc_power[0] == pytest.approx(4.0, rel=0.2)
    assert spectral_slope(samples) == pytest.approx(-2.5, abs=0.2)
    assert prior.num_steps == 50


def test_spectral_prior_samples_have_the_fitted_slope():
    truth = SpectralModel(np.array([0.1]), np.eye(1), np.array([0.3]), np.array([2.2]), np.array([2.0]), 16)
    prior = SpectralPrior.from_config(truth, "20", torch.device("cpu"))
    samples = prior.sample(64, seed=0)
    assert samples.shape == (64, 1, 16, 16)
    assert samples.mean().item() == pytest.approx(0.1, abs=0.1)
    assert spectral_slope(samples) == pytest.approx(spectral_slope(_exact_samples(truth, 64)), abs=0.2)


def _exact_samples(model: SpectralModel, n: int) -> torch.Tensor:
    z = torch.randn(n, 1, model.image_size, model.image_size, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    s = torch.from_numpy(model.spectra()).sqrt()
    return model.mean[0] + torch.fft.ifft2(torch.fft.fft2(z, norm="ortho") * s, norm="ortho").real
