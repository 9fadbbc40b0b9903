"""Diffusion priors: ADM UNet, Gaussian diffusion with respacing, learned and spectral priors.

``load_prior(name_or_path, steps, device, **options)`` returns a :class:`Prior` (see
docs/architecture.md, "Diffusion priors", and docs/prior.md).
"""

from egg_cli.diffusion.config import DiffusionConfig, UNetConfig
from egg_cli.diffusion.gaussian import GaussianDiffusion
from egg_cli.diffusion.loading import ADM256_FLAGS, DEFAULT_WEIGHTS, build_prior, load_prior, prior_config
from egg_cli.diffusion.prior import LearnedPrior, Prior
from egg_cli.diffusion.schedules import beta_schedule, space_timesteps
from egg_cli.diffusion.spectral import SpectralModel, SpectralPrior, fit_spectral_model
from egg_cli.diffusion.unet import UNetModel

__all__ = [
    "ADM256_FLAGS",
    "DEFAULT_WEIGHTS",
    "DiffusionConfig",
    "GaussianDiffusion",
    "LearnedPrior",
    "Prior",
    "SpectralModel",
    "SpectralPrior",
    "UNetConfig",
    "UNetModel",
    "beta_schedule",
    "build_prior",
    "fit_spectral_model",
    "load_prior",
    "prior_config",
    "space_timesteps",
]
