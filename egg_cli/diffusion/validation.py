"""Held-out denoising loss: how well a prior's denoiser predicts images it was not trained on.

For images ``x0`` and timesteps ``t_1..t_K`` evenly spaced over the chain, each image gets noise
``eps`` from a fixed seed and ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps``; the loss is the
training objective (``GaussianDiffusion.training_losses``, e.g. min-SNR-weighted v-prediction error)
averaged over images and the K timesteps, and ``x0_mse`` the per-pixel squared error of the
predicted ``x0`` averaged the same way. With the same images, seed and timesteps, two priors of the
same diffusion flags are compared on identical noisy inputs.
"""

from __future__ import annotations

import torch

from egg_cli.diffusion.calibration import noisy_batches
from egg_cli.diffusion.gaussian import GaussianDiffusion
from egg_cli.diffusion.schedules import space_timesteps


@torch.no_grad()
def denoising_loss(
    model: torch.nn.Module,
    diffusion: GaussianDiffusion,
    images: torch.Tensor,
    weighting: str = "min_snr",
    min_snr_gamma: float = 5.0,
    timesteps: int = 50,
    batch_size: int = 128,
    seed: int = 0,
) -> dict[str, float]:
    """Mean training loss and x0 MSE of ``model`` on ``images`` (in [-1, 1]) at ``timesteps`` evenly
    spaced timesteps of the unrespaced ``diffusion``; noise from ``seed``."""
    if diffusion.num_timesteps != diffusion.original_num_steps:
        raise ValueError("denoising_loss needs the unrespaced diffusion")
    device = next(model.parameters()).device
    loss, x0_error, count = 0.0, 0.0, 0
    seen: dict[str, torch.Tensor] = {}

    def denoiser(x_t: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
        """The model, keeping its last input and output (one forward pass gives loss and x0)."""
        seen["x_t"], seen["out"] = x_t, model(x_t, ts)
        return seen["out"]

    points = sorted(space_timesteps(diffusion.num_timesteps, str(timesteps)))
    for x0, noise, t in noisy_batches(images, points, batch_size, seed, device):
        loss += diffusion.training_losses(denoiser, x0, t, noise, weighting, min_snr_gamma)["loss"].sum().item()
        pred = diffusion.pred_xstart(seen["out"].float()[:, : x0.shape[1]], seen["x_t"], t)
        x0_error += (pred - x0).pow(2).mean(dim=(1, 2, 3)).sum().item()
        count += len(x0)
    return {"loss": loss / count, "x0_mse": x0_error / count}
