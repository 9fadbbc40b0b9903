"""Grating tuning of response models: preferred orientation, spatial frequency, selectivity."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn


def gratings(size: int, orientations: np.ndarray, wavelengths: Sequence[float], phases: int, rms: float) -> np.ndarray:
    """Full-field sinusoidal gratings (O, F, P, size, size) in z-scored units with RMS contrast ``rms``.

    Bars run along the orientation (radians, 0 = horizontal bars), as in ``gabor_pair``.
    """
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    out = np.empty((len(orientations), len(wavelengths), phases, size, size), dtype=np.float32)
    for i, angle in enumerate(orientations):
        across = -x * math.sin(angle) + y * math.cos(angle)
        for j, wavelength in enumerate(wavelengths):
            for k in range(phases):
                out[i, j, k] = math.sqrt(2) * rms * np.cos(2 * math.pi * across / wavelength + 2 * math.pi * k / phases)
    return out


@torch.no_grad()
def grating_tuning(
    model: nn.Module,
    wavelengths: Sequence[float],
    n_orientations: int = 16,
    phases: int = 4,
    rms: float = 1.0,
    device: torch.device | str = "cpu",
) -> dict[str, np.ndarray]:
    """Responses to gratings and the preferences they imply, per neuron.

    Returns ``orientations`` (degrees), ``curve`` (n, O: phase-averaged response at each
    neuron's preferred wavelength), ``pref_orientation`` (degrees, [0, 180)),
    ``pref_wavelength`` (pixels) and ``orientation_selectivity`` (1 - circular variance).
    """
    channels, size, _ = model.input_shape
    angles = np.arange(n_orientations) * math.pi / n_orientations
    stim = gratings(size, angles, wavelengths, phases, rms)
    flat = torch.as_tensor(stim.reshape(-1, 1, size, size)).expand(-1, channels, -1, -1).to(device)
    resp = torch.cat([model(flat[i : i + 64]) for i in range(0, len(flat), 64)]).cpu().numpy().astype(np.float64)
    resp = resp.reshape(n_orientations, len(wavelengths), phases, -1).mean(2)  # (O, F, n)
    best_freq = resp.max(0).argmax(0)  # (n,)
    curve = resp[:, best_freq, np.arange(resp.shape[-1])].T  # (n, O)
    doubled = np.exp(2j * angles)
    vector = (curve * doubled).sum(1) / np.maximum(curve.sum(1), 1e-12)
    return {
        "orientations": np.degrees(angles),
        "curve": curve,
        "pref_orientation": np.degrees(angles[curve.argmax(1)]),
        "pref_wavelength": np.asarray(wavelengths, dtype=np.float64)[best_freq],
        "orientation_selectivity": np.abs(vector),
    }
