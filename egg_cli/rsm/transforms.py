"""Jitter-type transforms applied before every forward pass of RSM synthesis.

Each image gets its own random translation, isotropic scaling and rotation, applied in one
bilinear resampling with reflected borders, so the optimized RSM structure cannot rest on
pixel-exact patterns that the fMRI presentation (or eye movements) would not preserve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Jitter:
    """Random per-image affine jitter: ``shift`` in pixels, ``scale`` as a +/- fraction, ``rotate`` in degrees."""

    shift: float = 4.0
    scale: float = 0.05
    rotate: float = 5.0

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.shift == 0 and self.scale == 0 and self.rotate == 0:
            return images
        k, _, h, w = images.shape

        def uniform(low: float, high: float) -> torch.Tensor:
            return low + (high - low) * torch.rand(k, generator=generator, dtype=torch.float64)

        angle = uniform(-self.rotate, self.rotate) * math.pi / 180
        zoom = uniform(1 - self.scale, 1 + self.scale)
        tx = uniform(-self.shift, self.shift) * 2 / w
        ty = uniform(-self.shift, self.shift) * 2 / h
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
        grid = F.affine_grid(theta.to(images), list(images.shape), align_corners=False)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
