"""Gaussian readout (neuralpredictors FullGaussian2d conventions).

Each neuron has a position mean ``mu`` in [-1, 1]^2 (grid_sample coordinates: x along width,
y along height, ``align_corners=True``) and a covariance factor ``sigma``. During training the
position is sampled as ``mu + sigma @ z`` (z standard normal, one draw per image and neuron);
in evaluation it is fixed at ``mu``. The feature vector at that position is read by bilinear
interpolation and weighted by per-neuron feature weights (initialized to 1/C) plus a bias.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from egg_cli.errors import require

GAUSS_TYPES = ("full", "isotropic")


class GaussianReadout(nn.Module):
    """Per-neuron learned Gaussian position, bilinear sampling, feature weights and bias."""

    def __init__(
        self,
        in_shape: Sequence[int],
        n_neurons: int,
        bias_init: torch.Tensor | None = None,
        gauss_type: str = "full",
        init_mu_range: float = 0.4,
        init_sigma: float = 0.6,
        gamma_features: float = 0.01,
    ) -> None:
        super().__init__()
        require(gauss_type in GAUSS_TYPES, f"model.readout.gauss_type={gauss_type!r} is invalid; expected one of {GAUSS_TYPES}")
        require(0 < init_mu_range <= 1, f"model.readout.init_mu_range={init_mu_range} is invalid; expected in (0, 1]")
        require(init_sigma > 0, f"model.readout.init_sigma={init_sigma} is invalid; expected > 0")
        require(gamma_features >= 0, f"model.readout.gamma_features={gamma_features} is invalid; expected >= 0")
        channels = int(in_shape[0])
        self.in_shape = tuple(int(s) for s in in_shape)
        self.n_neurons = n_neurons
        self.gauss_type = gauss_type
        self.gamma_features = gamma_features
        self.mu = nn.Parameter(torch.empty(n_neurons, 2).uniform_(-init_mu_range, init_mu_range))
        if gauss_type == "full":
            self.sigma = nn.Parameter(torch.empty(n_neurons, 2, 2).uniform_(-init_sigma, init_sigma))
        else:
            self.sigma = nn.Parameter(torch.full((n_neurons, 1), init_sigma))
        self.features = nn.Parameter(torch.full((n_neurons, channels), 1.0 / channels))
        self.bias = nn.Parameter(
            torch.zeros(n_neurons) if bias_init is None else torch.as_tensor(bias_init, dtype=torch.float32).clone()
        )

    def grid(self, batch_size: int, sample: bool) -> torch.Tensor:
        """Sampling positions ``(B, n, 1, 2)`` in [-1, 1]; random around ``mu`` when ``sample``."""
        mu = self.mu[None, :, None, :].expand(batch_size, -1, 1, -1)
        if not sample:
            return mu.clamp(-1, 1)
        z = torch.randn(batch_size, self.n_neurons, 1, 2, device=self.mu.device, dtype=self.mu.dtype)
        if self.gauss_type == "full":
            offset = torch.einsum("nij,bnkj->bnki", self.sigma, z)
        else:
            offset = self.sigma[None, :, None, :] * z
        return (mu + offset).clamp(-1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = self.grid(x.shape[0], sample=self.training)
        sampled = F.grid_sample(x, grid, mode="bilinear", align_corners=True)  # (B, C, n, 1)
        return torch.einsum("bcn,nc->bn", sampled[..., 0], self.features) + self.bias

    def regularizer(self) -> torch.Tensor:
        """L1 penalty on the feature weights."""
        return self.gamma_features * self.features.abs().sum()
