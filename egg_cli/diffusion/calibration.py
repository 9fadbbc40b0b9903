"""Calibrated reverse variances for fixed-variance priors (Bao et al. 2022, Analytic-DPM).

The exact reverse step p(x_{t-1} | x_t) has covariance ``posterior_variance + coef1^2
Cov[x0 | x_t]``. A denoiser trained with fixed (posterior) variance ignores the second term,
which under-disperses few-step ancestral samples (too smooth, too little contrast); beta
(fixed large) over-disperses them (residual noise). Here ``Cov[x0 | x_t]`` is estimated per
pixel by the denoiser's own mean squared x0 error on training crops, measured at a grid of
timesteps and interpolated to every timestep.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch

from egg_cli.diffusion.gaussian import GaussianDiffusion
from egg_cli.diffusion.schedules import space_timesteps


def noisy_batches(
    images: torch.Tensor, timesteps: Iterable[int], batch_size: int, seed: int, device: torch.device
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """For each timestep in order, the images in batches as ``(x0, noise, t)`` on ``device``, the noise
    drawn on the CPU from one generator seeded with ``seed`` (so results do not depend on the device)."""
    g = torch.Generator().manual_seed(seed)
    for t_value in timesteps:
        for start in range(0, len(images), batch_size):
            x0 = images[start : start + batch_size].to(device)
            noise = torch.randn(x0.shape, generator=g).to(device)
            yield x0, noise, torch.full((len(x0),), t_value, dtype=torch.long, device=device)


@torch.no_grad()
def x0_mse_table(
    model: torch.nn.Module,
    diffusion: GaussianDiffusion,
    images: torch.Tensor,
    grid: str = "50",
    batch_size: int = 128,
    seed: int = 0,
) -> np.ndarray:
    """Per-pixel mean squared x0 error of ``model`` on ``images`` (in [-1, 1]) for every timestep
    of the unrespaced ``diffusion``: measured at the ``grid`` respacing, linear in between,
    capped at the images' variance (the error of predicting the mean)."""
    if diffusion.num_timesteps != diffusion.original_num_steps:
        raise ValueError("x0_mse_table needs the unrespaced diffusion")
    points = space_timesteps(diffusion.num_timesteps, grid)
    device = next(model.parameters()).device
    totals, counts = dict.fromkeys(points, 0.0), dict.fromkeys(points, 0)
    for x0, noise, t in noisy_batches(images, points, batch_size, seed, device):
        x_t = diffusion.q_sample(x0, t, noise)
        out = model(x_t, diffusion.model_timesteps(t)).float()
        pred = diffusion.pred_xstart(out[:, : x0.shape[1]], x_t, t)
        totals[int(t[0])] += (pred - x0).pow(2).sum().item()
        counts[int(t[0])] += x0.numel()
    errors = [totals[p] / counts[p] for p in points]
    table = np.interp(np.arange(diffusion.num_timesteps), points, errors)
    return np.minimum(table, images.double().var().item())


def calibrate_checkpoint(checkpoint: dict, images: torch.Tensor, grid: str = "50", seed: int = 0) -> np.ndarray:
    """``x0_mse_table`` of the EMA weights of an egg train-prior checkpoint (dict) on ``images``."""
    from egg_cli.diffusion.checkpoint import ema_denoiser

    model, diffusion = ema_denoiser(checkpoint)
    return x0_mse_table(model, diffusion, images, grid, seed=seed)
