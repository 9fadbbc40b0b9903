"""Small response models that satisfy the response-model contract (docs/architecture.md), for tests."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


def gabor(size: int, wavelength: float, theta: float, sigma: float, phase: float = 0.0, center=(0.0, 0.0)) -> torch.Tensor:
    """A Gabor patch of ``size`` x ``size`` pixels (a smooth receptive field)."""
    y, x = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64), indexing="ij")
    x = x - (size - 1) / 2 - center[1]
    y = y - (size - 1) / 2 - center[0]
    xr = x * math.cos(theta) + y * math.sin(theta)
    envelope = torch.exp(-(x**2 + y**2) / (2 * sigma**2))
    return (envelope * torch.cos(2 * math.pi * xr / wavelength + phase)).float()


class LinearNonlinear(nn.Module):
    """r = softplus(<w_k, x> + b_k) per neuron k: the MEI under a fixed norm c is c * w_k / |w_k|."""

    def __init__(self, weights: torch.Tensor, bias: float = 0.0, test_correlation=None) -> None:
        super().__init__()
        self.weight = nn.Parameter(weights.clone().float(), requires_grad=False)
        self.bias = nn.Parameter(torch.full((weights.shape[0],), float(bias)), requires_grad=False)
        self.input_shape = tuple(weights.shape[1:])
        self.n_neurons = int(weights.shape[0])
        self.neuron_ids = np.arange(100, 100 + self.n_neurons)
        self.pixel_mean = 124.3
        self.pixel_std = 70.3
        self.test_correlation = None if test_correlation is None else np.asarray(test_correlation)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.softplus(images.flatten(1) @ self.weight.flatten(1).T + self.bias)


def gabor_neurons(n: int = 4, size: int = 24) -> LinearNonlinear:
    """``n`` LN neurons with Gabor receptive fields of different orientations and positions."""
    weights = torch.stack(
        [gabor(size, wavelength=12.0, theta=k * math.pi / n, sigma=size / 6, center=(k - n / 2, n / 2 - k)) for k in range(n)]
    )
    return LinearNonlinear(weights[:, None] / 10, bias=-1.0, test_correlation=np.linspace(0.2, 0.8, n))


class TinyCNN(nn.Module):
    """A two-layer convolutional model with a linear readout and ELU+1 output (seeded weights)."""

    def __init__(self, n_neurons: int = 6, size: int = 20, channels: int = 1, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.conv1 = nn.Conv2d(channels, 8, 5, padding=2)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.readout = nn.Linear(8 * size * size, n_neurons)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * (0.3 if p.dim() > 1 else 0.05))
            self.readout.weight.mul_(0.05)
        self.requires_grad_(False)
        self.input_shape = (channels, size, size)
        self.n_neurons = n_neurons
        self.neuron_ids = np.arange(n_neurons)
        self.pixel_mean = 120.0
        self.pixel_std = 60.0
        self.test_correlation = np.linspace(0.1, 0.6, n_neurons)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h = F.elu(self.conv1(images))
        h = F.elu(self.conv2(h))
        return F.elu(self.readout(h.flatten(1))) + 1.0
