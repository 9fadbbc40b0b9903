"""Pictures of diffusion priors: sample grids and spectra."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from egg_cli.io import atomic_path


def image_grid(images: torch.Tensor, nrow: int | None = None, border: int = 1) -> np.ndarray:
    """Tile (B, C, H, W) images in [-1, 1] into one (rows*H, cols*W[, 3]) array in [0, 1]."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) / 2).numpy()
    b, c, h, w = x.shape
    cols = nrow or int(math.ceil(math.sqrt(b)))
    rows = int(math.ceil(b / cols))
    grid = np.ones((rows * (h + border) + border, cols * (w + border) + border, c), dtype=np.float32)
    for k in range(b):
        r, q = divmod(k, cols)
        y0, x0 = border + r * (h + border), border + q * (w + border)
        grid[y0 : y0 + h, x0 : x0 + w] = x[k].transpose(1, 2, 0)
    return grid[..., 0] if c == 1 else grid


def save_image_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None, zoom: int = 2) -> None:
    """Write a PNG grid of images in [-1, 1] (each pixel repeated ``zoom`` times), atomically."""
    import matplotlib.pyplot as plt

    grid = image_grid(images, nrow)
    if zoom > 1:
        grid = grid.repeat(zoom, axis=0).repeat(zoom, axis=1)
    with atomic_path(path) as tmp:
        plt.imsave(tmp, grid, cmap="gray" if grid.ndim == 2 else None, vmin=0, vmax=1, format="png")


def save_training_curves(metrics: list[dict], path: str | Path) -> None:
    """Training loss (and the held-out loss where measured) against step and, where sampled, the
    samples' spectral slope against the crops'."""
    import matplotlib.pyplot as plt

    from egg_cli.io import save_figure

    fig, (ax_loss, ax_slope) = plt.subplots(1, 2, figsize=(8, 3))
    ax_loss.plot([m["step"] for m in metrics], [m["loss"] for m in metrics], label="training")
    held = [m for m in metrics if m.get("heldout_loss") is not None]
    if held:
        ax_loss.plot([m["step"] for m in held], [m["heldout_loss"] for m in held], "o-", label="held-out")
        ax_loss.legend()
    ax_loss.set(xlabel="step", ylabel="loss", yscale="log", title="denoising loss")
    sampled = [m for m in metrics if m.get("sample_slope") is not None]
    if sampled:
        ax_slope.plot([m["step"] for m in sampled], [m["sample_slope"] for m in sampled], "o-", label="samples")
        ax_slope.axhline(sampled[-1]["crop_slope"], color="k", ls="--", label="crops")
        ax_slope.legend()
    ax_slope.set(xlabel="step", ylabel="spectral slope", title="power spectrum slope")
    save_figure(fig, path)
