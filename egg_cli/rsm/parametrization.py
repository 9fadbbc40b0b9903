"""Image parametrizations for RSM synthesis: Fourier (1/f-preconditioned) or pixel, with decorrelated colour.

Both map free parameters to K RGB images in [0, 1] through a sigmoid. With ``decorrelate`` the
three parameter channels are independent colour axes: ``rgb = M @ channels`` where ``M`` is the
square root of the RGB covariance of natural photographs (principal axes scaled by their standard
deviations, normalized to a largest column norm of 1), so a unit step moves along natural
colour directions (luminance first) rather than along R, G, B separately.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn

from egg_cli.errors import EggError
from egg_cli.synthesis.filters import spectrum_scale


@functools.lru_cache(maxsize=1)
def natural_colour_matrix(max_pixels: int = 200_000, seed: int = 0) -> np.ndarray:
    """Square root (3, 3) of the RGB pixel covariance of the bundled colour photographs."""
    from egg_cli.data.natural import load_photographs

    photos = [p for p in load_photographs(grayscale=False) if not np.allclose(p[..., 0], p[..., 1])]
    if not photos:
        raise EggError("no colour photographs found to estimate the colour decorrelation; expected scikit-image data")
    pixels = np.concatenate([p.reshape(-1, 3) for p in photos]).astype(np.float64)
    rng = np.random.default_rng(seed)
    pixels = pixels[rng.choice(len(pixels), size=min(max_pixels, len(pixels)), replace=False)]
    u, s, _ = np.linalg.svd(np.cov(pixels.T))
    u = u * np.sign(u.sum(0, keepdims=True))  # luminance axis with positive weights
    root = u * np.sqrt(s)[None, :]
    return (root / np.linalg.norm(root, axis=0).max()).astype(np.float32)


class ImageParametrization(nn.Module):
    """Base: ``forward() -> (K, 3, H, W)`` images in [0, 1] from free parameters."""

    def __init__(self, n_images: int, size: int, decorrelate: bool) -> None:
        super().__init__()
        self.n_images, self.size = n_images, size
        colour = natural_colour_matrix() if decorrelate else np.eye(3, dtype=np.float32)
        self.register_buffer("colour", torch.from_numpy(np.ascontiguousarray(colour)))

    def channels(self) -> torch.Tensor:
        raise NotImplementedError

    def forward(self) -> torch.Tensor:
        x = torch.einsum("ij,kjhw->kihw", self.colour, self.channels())
        return torch.sigmoid(x)


class PixelImages(ImageParametrization):
    """One free parameter per pixel and colour channel."""

    def __init__(
        self, n_images: int, size: int, decorrelate: bool = True, init_std: float = 0.5, generator: torch.Generator | None = None
    ) -> None:
        super().__init__(n_images, size, decorrelate)
        self.pixels = nn.Parameter(init_std * torch.randn(n_images, 3, size, size, generator=generator))

    def channels(self) -> torch.Tensor:
        return self.pixels


class FourierImages(ImageParametrization):
    """Free Fourier coefficients scaled by ``1/f**decay`` (natural-image spectrum as preconditioner).

    The gain is normalized to unit root-mean-square, so white coefficients of standard deviation
    ``s`` give pixels of standard deviation about ``s`` with a natural 1/f spectrum.
    """

    def __init__(
        self,
        n_images: int,
        size: int,
        decorrelate: bool = True,
        decay: float = 1.0,
        init_std: float = 0.5,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(n_images, size, decorrelate)
        scale = spectrum_scale(size, size, decay)
        self.register_buffer("gain", scale / scale.pow(2).mean().sqrt())
        shape = (n_images, 3, size, size // 2 + 1, 2)
        self.coefficients = nn.Parameter(init_std * torch.randn(shape, generator=generator) / np.sqrt(2))

    def channels(self) -> torch.Tensor:
        spectrum = torch.view_as_complex(self.coefficients) * self.gain
        return torch.fft.irfft2(spectrum, s=(self.size, self.size), norm="ortho")


def make_parametrization(
    kind: str, n_images: int, size: int, decorrelate: bool = True, decay: float = 1.0, init_std: float = 0.5, seed: int = 0
) -> ImageParametrization:
    """``kind`` = ``fourier`` or ``pixel``; parameters drawn from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    if kind == "fourier":
        return FourierImages(n_images, size, decorrelate, decay, init_std, generator)
    if kind == "pixel":
        return PixelImages(n_images, size, decorrelate, init_std, generator)
    raise EggError(f"parametrization={kind!r} is not supported; expected fourier or pixel")
