"""A tiny neural dataset with known receptive fields, for fast model and training tests.

Each toy neuron is a linear-nonlinear unit plus a little phase-invariant energy (a quadrature
pair of Gabors) at a known position, so its receptive-field centre is exact; responses are
Poisson spikes. Images are smoothed (1/f) noise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _smooth_noise(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    freq = np.fft.fftfreq(size)
    radius = np.sqrt(freq[:, None] ** 2 + freq[None, :] ** 2)
    spectrum = 1.0 / np.maximum(radius, 1.0 / size)
    noise = np.fft.ifft2(np.fft.fft2(rng.standard_normal((n, size, size))) * spectrum).real
    noise /= noise.std(axis=(1, 2), keepdims=True)
    return np.clip(128 + 50 * noise, 0, 255).astype(np.float32)


def toy_neurons(rng: np.random.Generator, n_neurons: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quadrature Gabor pairs ``(n, 2, size, size)``, centres ``(n, 2)`` as (x, y) in [-1, 1], gains."""
    coords = np.linspace(-1, 1, size)
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    centres = rng.uniform(-0.5, 0.5, size=(n_neurons, 2))
    filters = np.zeros((n_neurons, 2, size, size))
    for i, (cx, cy) in enumerate(centres):
        theta = rng.uniform(0, np.pi)
        u = (xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)
        env = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 0.25**2))
        filters[i, 0] = env * np.cos(2 * np.pi * 1.2 * u)
        filters[i, 1] = env * np.sin(2 * np.pi * 1.2 * u)
    filters /= np.sqrt((filters**2).sum(axis=(2, 3), keepdims=True))
    return filters, centres, rng.uniform(1.0, 2.0, size=n_neurons)


def write_toy_dataset(
    path: str | Path,
    n_neurons: int = 12,
    size: int = 32,
    n_train: int = 600,
    n_validation: int = 100,
    n_test: int = 40,
    repeats: int = 4,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Write a toy dataset.h5 with egg_cli.data.write_dataset; return the ground truth (centres, filters)."""
    from egg_cli.data import write_dataset

    rng = np.random.default_rng(seed)
    n_images = n_train + n_validation + n_test
    images = _smooth_noise(rng, n_images, size)
    filters, centres, gains = toy_neurons(rng, n_neurons, size)
    z = (images - 128.0) / 50.0
    drive = np.einsum("nqhw,ihw->inq", filters, z)
    drive /= drive.std(axis=0, keepdims=True)
    rates = gains * np.exp(0.7 * drive[..., 0] + 0.15 * (drive**2).sum(-1) - 0.5)
    tiers = np.array(["train"] * n_train + ["validation"] * n_validation + ["test"] * n_test)
    trial_image = np.concatenate(
        [np.arange(n_train + n_validation), np.repeat(np.arange(n_train + n_validation, n_images), repeats)]
    )
    responses = rng.poisson(rates[trial_image]).astype(np.float32)
    write_dataset(
        path,
        images[:, None],
        responses,
        trial_image,
        tiers,
        np.arange(n_neurons),
        neurons={"rf_center": centres},
        attrs={"source": "tests/models_toys.py"},
    )
    return {"centres": centres, "filters": filters, "rates": rates}
