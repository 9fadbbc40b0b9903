"""Gaussian diffusion (DDPM / improved DDPM) on a possibly respaced chain of timesteps.

Follows guided-diffusion's numerics: coefficients are computed in float64, looked up per
timestep and cast to float32. A respaced diffusion keeps the original cumulative alphas at the
kept timesteps; the network is always called with the *original* timestep of a respaced index.

Parametrizations (``mean_type``): ``epsilon`` (noise), ``x0`` (clean image) and ``v``
(``sqrt(abar) eps - sqrt(1-abar) x0``). Variances: learned range (the network's extra
channels interpolate between the posterior variance and beta in log space), fixed small
(posterior) / large (beta), or calibrated: the posterior variance plus ``coef1^2`` times the
denoiser's measured x0 error (``x0_mse``, see :mod:`egg_cli.diffusion.calibration`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from egg_cli.diffusion.config import DiffusionConfig
from egg_cli.diffusion.schedules import beta_schedule, respaced_betas, space_timesteps
from egg_cli.errors import EggError

MEAN_TYPES = ("epsilon", "x0", "v")
Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def extract(arr: np.ndarray, t: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """``arr[t]`` as float32 on ``t``'s device, broadcastable to ``shape``."""
    out = torch.from_numpy(arr).to(device=t.device)[t].float()
    return out.view(-1, *([1] * (len(shape) - 1)))


def normal_kl(mean1: torch.Tensor, logvar1: torch.Tensor, mean2: torch.Tensor, logvar2: torch.Tensor) -> torch.Tensor:
    """KL divergence between two diagonal Gaussians, elementwise (nats)."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def _approx_standard_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def discretized_gaussian_log_likelihood(x: torch.Tensor, means: torch.Tensor, log_scales: torch.Tensor) -> torch.Tensor:
    """Log-likelihood of 8-bit images ``x`` in [-1, 1] under a Gaussian discretized to 256 bins."""
    centered = x - means
    inv_stdv = torch.exp(-log_scales)
    cdf_plus = _approx_standard_normal_cdf(inv_stdv * (centered + 1.0 / 255.0))
    cdf_min = _approx_standard_normal_cdf(inv_stdv * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_cdf_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_cdf_delta))


def mean_flat(x: torch.Tensor) -> torch.Tensor:
    """Mean over all but the batch dimension."""
    return x.mean(dim=list(range(1, x.dim())))


class GaussianDiffusion:
    """A diffusion chain over ``num_timesteps`` (respaced) steps.

    ``timestep_map[i]`` is the original timestep of respaced index ``i``; :meth:`model_timesteps`
    gives what the network is called with.
    """

    def __init__(self, config: DiffusionConfig, respacing: str | None = None, x0_mse: np.ndarray | None = None) -> None:
        if config.mean_type not in MEAN_TYPES:
            raise EggError(f"mean_type={config.mean_type!r} is unknown; expected one of {', '.join(MEAN_TYPES)}")
        self.config = config
        self.original_num_steps = config.diffusion_steps
        base = beta_schedule(config.noise_schedule, config.diffusion_steps)
        spacing = config.timestep_respacing if respacing is None else respacing
        self.timestep_map = space_timesteps(config.diffusion_steps, spacing)
        self.respacing = str(spacing)
        betas = respaced_betas(np.cumprod(1.0 - base), self.timestep_map)
        self._set_betas(betas)
        self.calibrated = None
        if x0_mse is not None:
            x0_mse = np.asarray(x0_mse, dtype=np.float64)
            if x0_mse.shape != (config.diffusion_steps,) or not np.all(np.isfinite(x0_mse)) or x0_mse.min() < 0:
                raise EggError(f"x0_mse must hold {config.diffusion_steps} finite non-negative values, one per timestep")
            # variance of the reverse step when x0 is only known up to the denoiser's error
            # (posterior variance + coef1^2 * E|x0 - x0_hat|^2 per pixel; Bao et al. 2022)
            var = self.posterior_variance + self.posterior_mean_coef1**2 * x0_mse[self.map_array]
            var = np.maximum(var, 1e-20)
            self.calibrated = (var, np.log(np.append(var[1], var[1:])))

    def _set_betas(self, betas: np.ndarray) -> None:
        self.betas = betas
        self.num_timesteps = len(betas)
        alphas = 1.0 - betas
        ac = np.cumprod(alphas)
        self.alphas_cumprod = ac
        self.alphas_cumprod_prev = np.append(1.0, ac[:-1])
        self.alphas_cumprod_next = np.append(ac[1:], 0.0)
        self.sqrt_alphas_cumprod = np.sqrt(ac)
        self.sqrt_one_minus_alphas_cumprod = np.sqrt(1.0 - ac)
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / ac)
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / ac - 1)
        self.posterior_variance = betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - ac)
        self.posterior_log_variance_clipped = np.log(np.append(self.posterior_variance[1], self.posterior_variance[1:]))
        self.posterior_mean_coef1 = betas * np.sqrt(self.alphas_cumprod_prev) / (1.0 - ac)
        self.posterior_mean_coef2 = (1.0 - self.alphas_cumprod_prev) * np.sqrt(alphas) / (1.0 - ac)
        self.log_betas = np.log(betas)
        large = np.append(self.posterior_variance[1], betas[1:])
        self.fixed_large = (large, np.log(large))
        self.map_array = np.array(self.timestep_map, dtype=np.int64)

    # ---- forward process -------------------------------------------------------------
    def model_timesteps(self, t: torch.Tensor) -> torch.Tensor:
        """Timesteps to feed the network for respaced indices ``t`` (original steps, optionally rescaled to 1000)."""
        ts = torch.from_numpy(self.map_array).to(t.device)[t]
        if self.config.rescale_timesteps:
            return ts.float() * (1000.0 / self.original_num_steps)
        return ts

    def q_sample(self, x_start: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Draw x_t ~ q(x_t | x_0)."""
        return (
            extract(self.sqrt_alphas_cumprod, t, x_start.shape) * x_start
            + extract(self.sqrt_one_minus_alphas_cumprod, t, x_start.shape) * noise
        )

    def q_posterior_mean_variance(self, x_start: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor):
        """Mean, variance and clipped log variance of q(x_{t-1} | x_t, x_0)."""
        mean = extract(self.posterior_mean_coef1, t, x_t.shape) * x_start + extract(self.posterior_mean_coef2, t, x_t.shape) * x_t
        return (
            mean,
            extract(self.posterior_variance, t, x_t.shape),
            extract(self.posterior_log_variance_clipped, t, x_t.shape),
        )

    # ---- conversions between parametrizations -------------------------------------------
    def predict_xstart_from_eps(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        return (
            extract(self.sqrt_recip_alphas_cumprod, t, x_t.shape) * x_t
            - extract(self.sqrt_recipm1_alphas_cumprod, t, x_t.shape) * eps
        )

    def predict_eps_from_xstart(self, x_t: torch.Tensor, t: torch.Tensor, pred_xstart: torch.Tensor) -> torch.Tensor:
        return (extract(self.sqrt_recip_alphas_cumprod, t, x_t.shape) * x_t - pred_xstart) / extract(
            self.sqrt_recipm1_alphas_cumprod, t, x_t.shape
        )

    def predict_xstart_from_v(self, x_t: torch.Tensor, t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return (
            extract(self.sqrt_alphas_cumprod, t, x_t.shape) * x_t - extract(self.sqrt_one_minus_alphas_cumprod, t, x_t.shape) * v
        )

    def v_target(self, x_start: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return (
            extract(self.sqrt_alphas_cumprod, t, x_start.shape) * noise
            - extract(self.sqrt_one_minus_alphas_cumprod, t, x_start.shape) * x_start
        )

    # ---- reverse process -----------------------------------------------------------------
    def split_output(self, model_output: torch.Tensor, x: torch.Tensor, t: torch.Tensor):
        """Mean part of the network output, model variance and log variance at ``t``."""
        c = x.shape[1]
        if self.config.learn_sigma:
            if model_output.shape[1] != 2 * c:
                raise EggError(f"learned-variance UNet must output {2 * c} channels, got {model_output.shape[1]}")
            model_output, var_values = model_output.split(c, dim=1)
            min_log = extract(self.posterior_log_variance_clipped, t, x.shape)
            max_log = extract(self.log_betas, t, x.shape)
            frac = (var_values + 1) / 2
            log_variance = frac * max_log + (1 - frac) * min_log
            return model_output, torch.exp(log_variance), log_variance
        if self.calibrated is not None:
            var, log_var = self.calibrated
        elif self.config.sigma_small:
            var, log_var = self.posterior_variance, self.posterior_log_variance_clipped
        else:
            var, log_var = self.fixed_large
        ones = torch.ones_like(x)
        return model_output, extract(var, t, x.shape) * ones, extract(log_var, t, x.shape) * ones

    def pred_xstart(self, model_output: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x0 predicted from the mean part of the network output."""
        if self.config.mean_type == "x0":
            return model_output
        if self.config.mean_type == "v":
            return self.predict_xstart_from_v(x, t, model_output)
        return self.predict_xstart_from_eps(x, t, model_output)

    def p_mean_variance(
        self, model: Model, x: torch.Tensor, t: torch.Tensor, clip_denoised: bool = True
    ) -> dict[str, torch.Tensor]:
        """Mean, variance, log variance and x0 prediction of p(x_{t-1} | x_t) at respaced indices ``t``."""
        model_output = model(x, self.model_timesteps(t)).float()
        mean_part, variance, log_variance = self.split_output(model_output, x, t)
        pred_xstart = self.pred_xstart(mean_part, x, t)
        if clip_denoised:
            pred_xstart = pred_xstart.clamp(-1, 1)
        mean, _, _ = self.q_posterior_mean_variance(pred_xstart, x, t)
        return {"mean": mean, "variance": variance, "log_variance": log_variance, "pred_xstart": pred_xstart}

    def ddim_sample(
        self, x: torch.Tensor, t: torch.Tensor, pred_xstart: torch.Tensor, noise: torch.Tensor, eta: float = 0.0
    ) -> torch.Tensor:
        """One DDIM step from ``x`` at ``t`` given the x0 prediction (``eta=0``: deterministic)."""
        eps = self.predict_eps_from_xstart(x, t, pred_xstart)
        alpha_bar = extract(self.alphas_cumprod, t, x.shape)
        alpha_bar_prev = extract(self.alphas_cumprod_prev, t, x.shape)
        sigma = eta * torch.sqrt((1 - alpha_bar_prev) / (1 - alpha_bar)) * torch.sqrt(1 - alpha_bar / alpha_bar_prev)
        mean = pred_xstart * torch.sqrt(alpha_bar_prev) + torch.sqrt(1 - alpha_bar_prev - sigma**2) * eps
        nonzero = (t != 0).float().view(-1, *([1] * (x.dim() - 1)))
        return mean + nonzero * sigma * noise

    # ---- training ------------------------------------------------------------------------
    def snr(self, t: torch.Tensor) -> torch.Tensor:
        """Signal-to-noise ratio abar / (1 - abar) at ``t`` (float32, shape (B,))."""
        ac = torch.from_numpy(self.alphas_cumprod).to(t.device)[t]
        return (ac / (1 - ac)).float()

    def vb_terms_bpd(
        self, output_mean: torch.Tensor, log_variance: torch.Tensor, x_start: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor
    ) -> torch.Tensor:
        """Variational bound term (bits per dimension) for a model mean and log variance."""
        true_mean, _, true_log_var = self.q_posterior_mean_variance(x_start, x_t, t)
        kl = mean_flat(normal_kl(true_mean, true_log_var, output_mean, log_variance)) / math.log(2.0)
        nll = -mean_flat(discretized_gaussian_log_likelihood(x_start, output_mean, 0.5 * log_variance)) / math.log(2.0)
        return torch.where(t == 0, nll, kl)

    def training_losses(
        self,
        model: Model,
        x_start: torch.Tensor,
        t: torch.Tensor,
        noise: torch.Tensor,
        weighting: str = "uniform",
        min_snr_gamma: float = 5.0,
    ) -> dict[str, torch.Tensor]:
        """Per-example losses: weighted MSE of the parametrization's target plus, for a learned
        variance, the variational bound with the mean held fixed (improved DDPM's hybrid loss).

        ``weighting="min_snr"`` weights each example so the MSE equals ``min(SNR, gamma)`` times
        the x0 error (Hang et al. 2023); ``"uniform"`` is the plain MSE on the target.
        """
        x_t = self.q_sample(x_start, t, noise)
        output = model(x_t, self.model_timesteps(t))
        c = x_start.shape[1]
        terms: dict[str, torch.Tensor] = {}
        if self.config.learn_sigma:
            mean_part, var_values = output.split(c, dim=1)
            frozen = torch.cat([mean_part.detach(), var_values], dim=1)
            frozen_mean_part, _, log_variance = self.split_output(frozen, x_t, t)
            pred = self.pred_xstart(frozen_mean_part, x_t, t)
            mean, _, _ = self.q_posterior_mean_variance(pred, x_t, t)
            terms["vb"] = self.vb_terms_bpd(mean, log_variance, x_start, x_t, t) * (self.num_timesteps / 1000.0)
        else:
            mean_part = output
        target = {"epsilon": noise, "x0": x_start, "v": None}[self.config.mean_type]
        if target is None:
            target = self.v_target(x_start, t, noise)
        mse = mean_flat((target - mean_part) ** 2)
        if weighting == "min_snr":
            snr = self.snr(t)
            clipped = snr.clamp(max=min_snr_gamma)
            weight = {"epsilon": clipped / snr, "x0": clipped, "v": clipped / (snr + 1)}[self.config.mean_type]
            mse = mse * weight
        elif weighting != "uniform":
            raise EggError(f"loss weighting {weighting!r} is unknown; expected uniform or min_snr")
        terms["mse"] = mse
        terms["loss"] = mse + terms.get("vb", torch.zeros_like(mse))
        return terms
