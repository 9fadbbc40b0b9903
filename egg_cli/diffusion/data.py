"""Training images for diffusion priors: a bank of random natural crops drawn once, in [-1, 1]."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from egg_cli.data.natural import load_photographs, random_crops
from egg_cli.errors import EggError


class CropBank:
    """``size`` crops of photographs at random positions and scales, stored as uint8.

    Drawing the crops once (about 1,000 crops/s on one core) and reusing them with random
    horizontal flips keeps the CPU for the network; a bank of 50,000 32x32 crops holds 50 MB.
    """

    def __init__(
        self,
        source: str | None,
        count: int,
        image_size: int,
        channels: int,
        scale_range: Sequence[float] = (0.25, 1.0),
        seed: int = 0,
    ) -> None:
        if channels not in (1, 3):
            raise EggError(f"data.channels={channels}: expected 1 (grayscale) or 3 (RGB)")
        if count < 1:
            raise EggError(f"data.bank_size={count}: expected a positive number of crops")
        lo, hi = (float(v) for v in scale_range)
        if not 0 < lo <= hi <= 1:
            raise EggError(f"data.scale_range={list(scale_range)}: expected 0 < low <= high <= 1 (fractions of the shorter side)")
        photos = load_photographs(source, grayscale=channels == 1)
        crops = random_crops(photos, count, image_size, np.random.default_rng(seed), (lo, hi), flip=True)
        self.images = torch.from_numpy(np.round(crops * 255.0).astype(np.uint8))

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, size: int, generator: torch.Generator, flip: bool = True) -> torch.Tensor:
        """A random batch in [-1, 1] (float32), each image flipped left-right with probability 1/2."""
        idx = torch.randint(len(self.images), (size,), generator=generator)
        x = self.images[idx].float() / 127.5 - 1.0
        if flip:
            mask = torch.rand(size, generator=generator) < 0.5
            x = torch.where(mask.view(-1, 1, 1, 1), x.flip(-1), x)
        return x

    def sample(self, count: int, seed: int = 0) -> torch.Tensor:
        """``count`` crops in [-1, 1] chosen with a fixed seed (for statistics and figures)."""
        g = torch.Generator().manual_seed(seed)
        return self.batch(min(count, len(self.images)), g, flip=False)
