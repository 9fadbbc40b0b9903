"""Radially averaged power spectra of image batches and their log-log slope."""

from __future__ import annotations

import numpy as np
import torch


def hann2d(size: int, device: torch.device | None = None) -> torch.Tensor:
    """Separable 2D Hann window (periodic=False), shape (size, size)."""
    w = torch.hann_window(size, periodic=False, dtype=torch.float64, device=device)
    return w[:, None] * w[None, :]


def power_spectrum(images: torch.Tensor, window: bool = True) -> torch.Tensor:
    """Mean 2D power spectrum over a batch (B, C, H, W) -> (C, H, W) float64 (orthonormal FFT).

    Each image's mean is removed; with ``window`` a Hann window tapers the borders (the power is
    divided by the window's mean square so white noise keeps its level).
    """
    x = images.detach().to(torch.float64)
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    if window:
        w = hann2d(x.shape[-1], x.device)
        x = x * w / w.pow(2).mean().sqrt()
    f = torch.fft.fft2(x, norm="ortho")
    return (f.real**2 + f.imag**2).mean(dim=0)


def radial_frequency(size: int) -> np.ndarray:
    """|f| in cycles per image for each 2D FFT bin of a size x size image."""
    f = np.fft.fftfreq(size) * size
    return np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)


def radial_profile(spectrum2d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average of a 2D spectrum over rings of integer radius 1 .. size/2: (radii, power)."""
    size = spectrum2d.shape[-1]
    r = np.rint(radial_frequency(size)).astype(int)
    radii = np.arange(1, size // 2 + 1)
    power = np.array([spectrum2d[r == k].mean() for k in radii])
    return radii, power


def spectral_slope(images: torch.Tensor) -> float:
    """Slope of log power against log frequency (1 .. size/2 cycles/image) of the grayscale
    (channel-mean) images: about -2 for natural images, 0 for white noise."""
    gray = images.float().mean(dim=1, keepdim=True)
    spec = power_spectrum(gray)[0].cpu().numpy()
    radii, power = radial_profile(spec)
    slope, _ = np.polyfit(np.log(radii), np.log(power), 1)
    return float(slope)
