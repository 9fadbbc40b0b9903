"""Training images for diffusion priors: a bank of natural images drawn once, in [-1, 1]."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from egg_cli.data.natural import IMAGE_SOURCES, natural_images
from egg_cli.errors import EggError


class CropBank:
    """``count`` natural images of ``source``, stored as uint8.

    ``source`` is one of the simulation's image sources (``egg_cli.data.natural.natural_images``):
    ``bundled`` photograph crops at random positions and scales, ``dead_leaves`` images, ``mixed``
    (half each: the V4-like world's images) or a folder of images. Drawing the bank once (about
    1,000 crops/s on one core; dead-leaves images about 500/s at 32x32) and reusing it with random
    horizontal flips keeps the CPU for the network; a bank of 50,000 32x32 images holds 50 MB.
    """

    def __init__(
        self,
        source: str,
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
        source = source if source in IMAGE_SOURCES else str(Path(source).expanduser())
        rng = np.random.default_rng(seed)
        crops = natural_images(source, count, image_size, rng, (lo, hi), grayscale=channels == 1)
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

    def all(self) -> torch.Tensor:
        """Every image of the bank, in order, in [-1, 1] (float32)."""
        return self.images.float() / 127.5 - 1.0

    def sample(self, count: int, seed: int = 0) -> torch.Tensor:
        """``count`` crops in [-1, 1] chosen with a fixed seed (for statistics and figures)."""
        g = torch.Generator().manual_seed(seed)
        return self.batch(min(count, len(self.images)), g, flip=False)
