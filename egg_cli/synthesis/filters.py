"""Image-space filters used by the optimizers: separable Gaussian blur with reflect padding."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gaussian_kernel1d(sigma: float, truncate: float = 4.0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Normalized 1-D Gaussian of standard deviation ``sigma`` truncated at ``truncate`` sigmas.

    The radius is ``int(truncate * sigma + 0.5)`` as in ``scipy.ndimage.gaussian_filter``.
    """
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return (kernel / kernel.sum()).to(dtype)


def gaussian_blur(images: torch.Tensor, sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """Blur each channel of ``images`` (B, C, H, W) with a Gaussian; borders use reflect padding.

    The image is reflected about its edge pixel (``scipy`` mode ``mirror``); where the kernel is
    wider than the image the radius is cut to ``min(H, W) - 1`` (reflection needs that). Each
    image and channel is filtered on its own, so nothing couples the images of a batch.
    """
    if sigma <= 0:
        return images
    b, c, h, w = images.shape
    kernel = gaussian_kernel1d(sigma, truncate, images.dtype).to(images.device)
    radius = min(kernel.numel() // 2, h - 1, w - 1)
    if radius < 1:
        return images
    full = kernel.numel() // 2
    kernel = kernel[full - radius : full + radius + 1]
    kernel = kernel / kernel.sum()
    flat = images.reshape(b * c, 1, h, w)
    flat = F.pad(flat, (radius, radius, radius, radius), mode="reflect")
    flat = F.conv2d(flat, kernel.view(1, 1, 1, -1))
    flat = F.conv2d(flat, kernel.view(1, 1, -1, 1))
    return flat.reshape(b, c, h, w)


def radial_frequency(height: int, width: int, device: torch.device | None = None) -> torch.Tensor:
    """Radial spatial frequency (cycles per pixel) of each ``rfft2`` coefficient, shape (H, W//2+1)."""
    fy = torch.fft.fftfreq(height, device=device)[:, None]
    fx = torch.fft.rfftfreq(width, device=device)[None, :]
    return torch.sqrt(fy**2 + fx**2)


def spectrum_scale(height: int, width: int, decay: float = 1.0, device: torch.device | None = None) -> torch.Tensor:
    """Per-coefficient gain ``1 / max(f, 1/max(H, W)) ** decay`` for Fourier preconditioning.

    Normalized to a largest gain of 1, so a preconditioned step is never longer in pixel space
    than a plain one; the DC term gets the gain of the lowest nonzero frequency.
    """
    f = radial_frequency(height, width, device).clamp_min(1.0 / max(height, width))
    scale = f ** (-decay)
    return scale / scale.max()
