"""The spectral prior: a stationary Gaussian with a 1/f^a power spectrum and an exact denoiser.

Model: ``x0 = mu + U y`` where ``U`` diagonalizes the colour covariance of the training crops
and each colour component ``y_c`` is a periodic stationary Gaussian field with power spectrum
``S_c(f) = A_c |f|^-a_c`` (``|f|`` in cycles per image, orthonormal DFT) and ``S_c(0) = D_c``.
Because the DFT diagonalizes the covariance, the posterior given ``x_t = sqrt(abar) x0 +
sqrt(1-abar) eps`` is Gaussian with, per frequency and component,

    E[Y0 | Yt] = sqrt(abar) S / (abar S + 1 - abar) * Yt        (Wiener filter)
    Var[Y0 | Yt] = S (1 - abar) / (abar S + 1 - abar)

so ``p_mean_variance`` is exact, and the ancestral step draws from the exact reverse transition
p(x_{t-1} | x_t) (covariance ``posterior_variance + coef1^2 Var[Y0|Yt]`` per frequency), which
samples the Gaussian exactly for any respacing. The reported ``variance`` is the per-pixel
marginal variance of that transition. EGG with this prior against the learned prior shows
what the learned prior adds beyond the second-order image statistics.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from egg_cli.diffusion.config import DiffusionConfig
from egg_cli.diffusion.gaussian import GaussianDiffusion
from egg_cli.diffusion.prior import Prior
from egg_cli.diffusion.spectrum import power_spectrum, radial_frequency, radial_profile
from egg_cli.errors import EggError


@dataclass
class SpectralModel:
    """Parameters of the Gaussian: per-channel mean, colour basis and per-component spectra."""

    mean: np.ndarray  # (C,)
    basis: np.ndarray  # (C, C) orthogonal; columns are colour components
    amplitude: np.ndarray  # (C,) A_c
    exponent: np.ndarray  # (C,) a_c
    dc_power: np.ndarray  # (C,) D_c
    image_size: int

    @property
    def channels(self) -> int:
        return len(self.mean)

    def spectra(self) -> np.ndarray:
        """S_c(f) on the FFT grid: (C, H, W) float64."""
        f = radial_frequency(self.image_size)
        safe = np.where(f > 0, f, 1.0)
        s = self.amplitude[:, None, None] * safe[None] ** (-self.exponent[:, None, None])
        s[:, 0, 0] = self.dc_power
        return s

    def covariance(self) -> np.ndarray:
        """Dense pixel covariance (C*H*W)^2 (for tests on small images)."""
        n = self.image_size
        f1 = np.fft.fft(np.eye(n), norm="ortho")
        f2 = np.kron(f1, f1)  # orthonormal 2D DFT acting on row-major flattened images
        blocks = [np.real(f2.conj().T @ np.diag(s.ravel()) @ f2) for s in self.spectra()]
        u = self.basis
        return sum(np.kron(np.outer(u[:, c], u[:, c]), blocks[c]) for c in range(self.channels))


def fit_spectral_model(crops: torch.Tensor) -> SpectralModel:
    """Fit mean, colour basis and per-component power laws to crops (N, C, H, W) in [-1, 1].

    The AC spectrum is the Hann-windowed periodogram averaged over crops and over rings of
    integer radius 1..H/2, fitted by a line in log-log coordinates; the DC power is the
    variance of the crops' means times H*W (orthonormal DFT).
    """
    x = crops.detach().double()
    if x.dim() != 4 or x.shape[-1] != x.shape[-2] or len(x) < 2:
        raise EggError(f"spectral prior needs at least 2 square crops (N, C, H, W); got shape {tuple(x.shape)}")
    n, c, h, _ = x.shape
    mean = x.mean(dim=(0, 2, 3))
    centered = x - mean.view(1, c, 1, 1)
    pix = centered.permute(1, 0, 2, 3).reshape(c, -1)
    cov = (pix @ pix.T / pix.shape[1]).numpy()
    evals, basis = np.linalg.eigh(cov)
    basis = basis[:, ::-1].copy()
    comps = torch.einsum("kc,nkhw->nchw", torch.from_numpy(basis), centered)
    amps, exps, dcs = [], [], []
    for k in range(c):
        spec = power_spectrum(comps[:, k : k + 1])[0].numpy()
        radii, power = radial_profile(spec)
        slope, intercept = np.polyfit(np.log(radii), np.log(power), 1)
        amps.append(np.exp(intercept))
        exps.append(-slope)
        dcs.append(comps[:, k].mean(dim=(1, 2)).var().item() * h * h)
    return SpectralModel(mean.numpy(), basis, np.array(amps), np.array(exps), np.array(dcs), h)


@functools.lru_cache(maxsize=8)
def fitted_to_source(source: str, image_size: int, channels: int, count: int, seed: int) -> SpectralModel:
    """Spectral model fitted to ``count`` images of ``source`` (bundled photograph crops, dead_leaves, mixed or a folder)."""
    from egg_cli.diffusion.data import CropBank

    if image_size < 4 or channels not in (1, 3) or count < 2:
        raise EggError(
            f"prior.image_size={image_size}, prior.channels={channels}, prior.fit_crops={count}: "
            "expected an image size of at least 4 pixels, 1 or 3 channels and at least 2 crops to fit"
        )
    bank = CropBank(source, count, image_size, channels, seed=seed)
    return fit_spectral_model(bank.sample(count, seed=seed))


class SpectralPrior(Prior):
    """Gaussian 1/f^a prior with the exact per-frequency Wiener denoiser (``prior=spectral``)."""

    def __init__(self, model: SpectralModel, diffusion: GaussianDiffusion, device: torch.device) -> None:
        self.model = model
        self.diffusion = diffusion
        self.image_size = model.image_size
        self.channels = model.channels
        self.device = torch.device(device)
        self.spectra = torch.from_numpy(model.spectra()).to(self.device)  # float64 (C, H, W)
        self.basis = torch.from_numpy(model.basis).to(self.device)  # float64 (C, C)
        self.mean = torch.from_numpy(model.mean).to(self.device).view(1, -1, 1, 1)  # float64

    @classmethod
    def from_config(
        cls, model: SpectralModel, steps: str, device: torch.device, noise_schedule: str = "cosine", diffusion_steps: int = 1000
    ) -> SpectralPrior:
        config = DiffusionConfig(
            diffusion_steps=diffusion_steps, noise_schedule=noise_schedule, learn_sigma=False, sigma_small=True
        )
        return cls(model, GaussianDiffusion(config, str(steps)), device)

    def _to_components(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("kc,nkhw->nchw", self.basis, x)

    def _from_components(self, y: torch.Tensor) -> torch.Tensor:
        return torch.einsum("kc,nchw->nkhw", self.basis, y)

    def _filter(self, y: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
        return torch.fft.ifft2(torch.fft.fft2(y, norm="ortho") * gain, norm="ortho").real

    def _coefficients(self, i: int) -> tuple[float, float, float, float]:
        d = self.diffusion
        return (
            float(d.alphas_cumprod[i]),
            float(d.posterior_variance[i]),
            float(d.posterior_mean_coef1[i]),
            float(d.posterior_mean_coef2[i]),
        )

    def reverse_variance(self, i: int) -> torch.Tensor:
        """Per-frequency, per-component variance of the exact p(x_{i-1} | x_i): (C, H, W) float64."""
        abar, post_var, coef1, _ = self._coefficients(i)
        s = self.spectra
        return post_var + coef1**2 * s * (1 - abar) / (abar * s + 1 - abar)

    def p_mean_variance(self, x_t: torch.Tensor, i: int) -> dict[str, torch.Tensor]:
        self.check_shape(x_t)
        self._index(x_t, i)
        abar, _, coef1, coef2 = self._coefficients(i)
        s = self.spectra
        gain = abar**0.5 * s / (abar * s + 1 - abar)
        x = x_t.double()
        y0 = self._filter(self._to_components(x - abar**0.5 * self.mean), gain)
        pred_xstart = self.mean + self._from_components(y0)
        mean = coef1 * pred_xstart + coef2 * x
        # diagonal of U diag(mean_f V_c) U^T: the per-pixel marginal variance of each channel
        comp_var = self.reverse_variance(i).mean(dim=(1, 2))
        pixel_var = (self.basis**2 @ comp_var).view(1, -1, 1, 1).expand_as(x)
        dtype = x_t.dtype
        return {
            "mean": mean.to(dtype),
            "variance": pixel_var.to(dtype),
            "log_variance": pixel_var.log().to(dtype),
            "pred_xstart": pred_xstart.to(dtype),
        }

    def ancestral_noise(self, out: dict[str, torch.Tensor], i: int, z: torch.Tensor) -> torch.Tensor:
        """Noise with the exact reverse covariance: white ``z`` coloured per frequency and component."""
        if i == 0:
            return torch.zeros_like(z)
        y = self._filter(self._to_components(z.double()), self.reverse_variance(i).sqrt())
        return self._from_components(y).to(z.dtype)
