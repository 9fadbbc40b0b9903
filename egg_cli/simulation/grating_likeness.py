"""How grating-like a response model's neurons are: best Gabor patch vs the neuron's own optimum.

For neuron n at a fixed L2 norm (contrast) ``c`` in z-scored units::

    grating_likeness_n = max_{g in Gabors} r_n(g) / r_n(MEI_n)

where ``MEI_n`` is the fixed-norm gradient-ascent optimum of the model itself and the Gabors are
patches ``exp(-|p - p0|^2 / 2 s^2) cos(2 pi <p - p0, u_theta> / lambda + phi)`` (and full-field
gratings, s = inf), each rescaled to norm ``c``. The search is a grid over position, orientation,
wavelength, phase and envelope size, then a gradient refinement of the continuous parameters of
each neuron's best grid entries. A ratio near 1 means a Gabor patch drives the neuron as well as
anything of that contrast (a grating detector); a low ratio means the optimum needs structure a
Gabor lacks (corners, curves, textures, spots).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from egg_cli.simulation.ascent import fixed_norm_ascent, rescale_to_norm


@dataclass
class GaborGrid:
    """The grid of Gabor patches searched first (sizes relative to the image side)."""

    orientations: int = 8
    wavelengths: int = 6  # geometric from 3 px to the image side / 1.5
    phases: int = 2
    envelopes: tuple[float, ...] = (0.5, 1.0, math.inf)  # envelope sigma / wavelength; inf: full-field grating
    positions: int = 4  # per axis, evenly over [-0.6, 0.6]
    refine_top: int = 1  # best grid entries per neuron refined by gradient ascent (position, angle, phase, size)
    refine_steps: int = 60


def gabor_images(params: torch.Tensor, size: int, norm: float) -> torch.Tensor:
    """Gabor patches (B, 1, size, size) at L2 norm ``norm`` from parameters (B, 6).

    Columns: x0, y0 (normalized [-1, 1] coordinates), theta (radians), log wavelength (pixels),
    phase (radians), log envelope sigma (pixels; > log(10 * size) gives a full-field grating).
    """
    coords = (2 * torch.arange(size, dtype=params.dtype, device=params.device) + 1) / size - 1
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    x0, y0, theta, log_wl, phase, log_sigma = (params[:, k, None, None] for k in range(6))
    half = size / 2  # pixels per normalized unit
    dx, dy = (x - x0) * half, (y - y0) * half
    across = -dx * torch.sin(theta) + dy * torch.cos(theta)
    envelope = torch.exp(-(dx**2 + dy**2) / (2 * torch.exp(2 * log_sigma)))
    patch = envelope * torch.cos(2 * math.pi * across / torch.exp(log_wl) + phase)
    return rescale_to_norm(patch[:, None], norm)


def grid_parameters(size: int, grid: GaborGrid) -> torch.Tensor:
    """Every grid point as a row of Gabor parameters (see :func:`gabor_images`)."""
    wavelengths = np.geomspace(3.0, size / 1.5, grid.wavelengths)
    rows = []
    positions = np.linspace(-0.6, 0.6, grid.positions) if grid.positions > 1 else np.zeros(1)
    for theta in np.arange(grid.orientations) * math.pi / grid.orientations:
        for wl in wavelengths:
            for phase in np.arange(grid.phases) * 2 * math.pi / grid.phases:
                for env in grid.envelopes:
                    if math.isinf(env):  # a full-field grating has no position
                        rows.append((0.0, 0.0, theta, math.log(wl), phase, math.log(100.0 * size)))
                        continue
                    for y0 in positions:
                        for x0 in positions:
                            rows.append((x0, y0, theta, math.log(wl), phase, math.log(env * wl)))
    return torch.tensor(rows, dtype=torch.float32)


def best_gabor(
    model: nn.Module,
    norm: float,
    neurons: torch.Tensor,
    grid: GaborGrid | None = None,
    batch_size: int = 256,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Per entry of ``neurons`` (indices), the highest response to a Gabor patch at norm ``norm``
    and that patch's parameters (k, 6)."""
    grid = grid or GaborGrid()
    channels, size, _ = model.input_shape
    device = _device_of(model)
    params = grid_parameters(size, grid)
    top_k, k = max(1, grid.refine_top), len(neurons)
    best_r = torch.full((k, top_k), -math.inf)
    best_i = torch.zeros((k, top_k), dtype=torch.long)
    with torch.no_grad():
        for start in tqdm(range(0, len(params), batch_size), desc="gabor grid", disable=not progress, leave=False):
            chunk = params[start : start + batch_size]
            resp = model(gabor_images(chunk.to(device), size, norm).expand(-1, channels, -1, -1))[:, neurons.to(device)]
            r = torch.cat([best_r, resp.T.cpu()], 1)
            i = torch.cat([best_i, torch.arange(start, start + len(chunk)).expand(k, -1)], 1)
            best_r, order = r.topk(top_k, dim=1)
            best_i = i.gather(1, order)
    starts = params[best_i.flatten()].to(device)  # (k * top_k, 6)
    refined, rates = _refine(model, starts, neurons.repeat_interleave(top_k).to(device), norm, grid.refine_steps)
    rates = torch.maximum(rates.view(k, top_k).cpu(), best_r)  # refinement never reports less than its grid start
    pick = rates.argmax(1)
    chosen = refined.view(k, top_k, 6).cpu()[torch.arange(k), pick]
    return rates.max(1).values.numpy().astype(np.float64), chosen.numpy()


def _refine(
    model: nn.Module, params: torch.Tensor, neurons: torch.Tensor, norm: float, steps: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Adam on the continuous Gabor parameters of each row for its neuron; returns the best seen per row."""
    channels, size, _ = model.input_shape
    rows = torch.arange(len(params), device=params.device)
    params = params.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([params], lr=0.03)
    best = torch.full((len(params),), -math.inf, device=params.device)
    best_params = params.detach().clone()
    for _ in range(steps):
        score = model(gabor_images(params, size, norm).expand(-1, channels, -1, -1))[rows, neurons]
        with torch.no_grad():
            better = score > best
            best = torch.where(better, score, best)
            best_params[better] = params[better]
        optimizer.zero_grad()
        (-score.sum()).backward()
        optimizer.step()
    return best_params, best


def likeness_summary(ratio: np.ndarray) -> dict[str, float]:
    """Median, minimum, share at or below 0.6 and count of the measured (finite) ratios."""
    ratio = np.asarray(ratio, dtype=np.float64)
    ratio = ratio[np.isfinite(ratio)]
    return {
        "median": float(np.median(ratio)),
        "min": float(np.min(ratio)),
        "fraction_at_most_0.6": float(np.mean(ratio <= 0.6)),
        "neurons_measured": int(len(ratio)),
    }


@dataclass
class GratingLikeness:
    """Per measured neuron: the model's own optimum at a fixed norm, the best Gabor patch, and their ratio."""

    norm: float
    neurons: np.ndarray  # (k,) indices of the measured neurons
    mei: np.ndarray  # (k, C, H, W) z-scored
    mei_rate: np.ndarray  # (k,)
    gabor_rate: np.ndarray  # (k,)
    gabor_params: np.ndarray  # (k, 6), see gabor_images
    ratio: np.ndarray  # (k,) gabor_rate / mei_rate

    def summary(self) -> dict[str, float]:
        """Median, minimum and the share of neurons at or below 0.6 (see :func:`likeness_summary`)."""
        return {**likeness_summary(self.ratio), "norm": self.norm}


def grating_likeness(
    model: nn.Module,
    norm: float,
    seeds: tuple[int, ...] = (0,),
    steps: int = 200,
    grid: GaborGrid | None = None,
    neurons: np.ndarray | None = None,
    progress: bool = False,
) -> GratingLikeness:
    """Best-Gabor / optimum ratio for ``neurons`` (indices; default all) of ``model`` at L2 norm
    ``norm`` (see the module docstring)."""
    neurons = torch.arange(model.n_neurons) if neurons is None else torch.as_tensor(np.asarray(neurons), dtype=torch.long)
    best_img, best_rate = None, None
    for seed in seeds:
        images, rates = fixed_norm_ascent(model, neurons, norm, steps=steps, seed=seed)
        images, rates = images.cpu(), rates.cpu()
        if best_rate is None:
            best_img, best_rate = images, rates
        else:
            better = rates > best_rate
            best_img[better], best_rate = images[better], torch.where(better, rates, best_rate)
    gabor_rate, gabor_params = best_gabor(model, norm, neurons, grid, progress=progress)
    mei_rate = np.maximum(best_rate.numpy().astype(np.float64), gabor_rate)  # the optimum is at least the best Gabor
    return GratingLikeness(
        norm=float(norm),
        neurons=neurons.numpy(),
        mei=best_img.numpy(),
        mei_rate=mei_rate,
        gabor_rate=gabor_rate,
        gabor_params=gabor_params,
        ratio=gabor_rate / np.maximum(mei_rate, 1e-12),
    )


def _device_of(model: nn.Module) -> torch.device:
    tensors = [*model.parameters(), *model.buffers()]
    return tensors[0].device if tensors else torch.device("cpu")
