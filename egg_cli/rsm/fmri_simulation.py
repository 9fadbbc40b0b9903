"""Simulated fMRI with a known layer-to-region assignment (ground truth for ``rsm map``).

Geometry: a ``shape`` grid of isotropic ``voxel_size`` mm voxels, RAS+ affine with the origin at
the grid centre; the brain mask is an ellipsoid filling ``brain_fraction`` of each axis. Each
listed layer gets ``regions_per_layer`` spherical regions of radius ``region_radius_mm`` placed at
random inside the mask without touching each other.

Signal: image k's features in layer l are z-scored across features (so inner products are
Pearson correlations, the model RSM) and projected onto the region's voxels with a fixed random
Gaussian matrix (variance 1/D): voxel patterns across images then have the layer's RSM up to
sampling noise of the projection, scaled so that the voxels' standard deviation across images
(the condition-related part; the pattern shared by all images can be much larger) averages
``signal_std``. Noise: every volume (one image in one
run) gets Gaussian noise smoothed with a Gaussian of ``noise_fwhm_mm`` and rescaled to
``noise_std`` per voxel, plus an optional white component. Runs show every image once in random
order. The truth volume holds 1 + the layer's index in ``layers`` inside its regions, 0 elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from egg_cli.errors import EggError

FWHM_TO_SIGMA = 1.0 / np.sqrt(8 * np.log(2))


@dataclass
class FmriSimulationConfig:
    """Settings of the simulated volume (see the module docstring)."""

    shape: tuple[int, int, int] = (32, 38, 32)
    voxel_size: float = 3.0
    brain_fraction: float = 0.9
    region_radius_mm: float = 10.0
    regions_per_layer: int = 1
    n_runs: int = 4
    signal_std: float = 1.0
    noise_std: float = 2.0
    white_noise_std: float = 0.0
    noise_fwhm_mm: float = 6.0
    seed: int = 0

    def __post_init__(self) -> None:
        """Range checks (one line each), before any simulation: both output formats build on these."""
        for key in ("voxel_size", "region_radius_mm", "brain_fraction"):
            if not getattr(self, key) > 0:
                raise EggError(f"volume.{key}={getattr(self, key)}; expected a positive number")
        for key in ("signal_std", "noise_std", "white_noise_std", "noise_fwhm_mm"):
            if not getattr(self, key) >= 0:
                raise EggError(f"volume.{key}={getattr(self, key)}; expected zero or a positive number")


@dataclass
class SimulatedFmri:
    """Volumes (X, Y, Z, T) with one row of ``conditions``/``runs`` per volume, and the ground truth."""

    bold: np.ndarray
    conditions: np.ndarray
    runs: np.ndarray
    mask: np.ndarray
    truth: np.ndarray
    affine: np.ndarray
    layers: list[str]
    regions: list[dict] = field(default_factory=list)


def grid_affine(shape: Sequence[int], voxel_size: float) -> np.ndarray:
    """Isotropic RAS+ affine with world origin (0, 0, 0) at the grid centre."""
    affine = np.diag([voxel_size, voxel_size, voxel_size, 1.0])
    affine[:3, 3] = -voxel_size * (np.asarray(shape, dtype=np.float64) - 1) / 2
    return affine


def ellipsoid_mask(shape: Sequence[int], fraction: float) -> np.ndarray:
    """Ellipsoid with semi-axes ``fraction`` times half of each grid dimension."""
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    return sum(g**2 for g in grids) <= fraction**2


def place_regions(
    mask: np.ndarray, n_regions: int, radius_vox: float, rng: np.random.Generator, attempts: int = 20000
) -> list[np.ndarray]:
    """Centres (voxel coordinates) of ``n_regions`` non-touching spheres lying wholly inside ``mask``."""
    inner = ndimage.binary_erosion(mask, iterations=int(np.ceil(radius_vox)))
    candidates = np.argwhere(inner)
    centres: list[np.ndarray] = []
    for _ in range(attempts):
        if len(centres) == n_regions:
            break
        if not len(candidates):
            break
        c = candidates[rng.integers(len(candidates))]
        if all(np.linalg.norm(c - o) >= 2 * radius_vox + 2 for o in centres):
            centres.append(c)
    if len(centres) < n_regions:
        raise EggError(
            f"only {len(centres)} of {n_regions} regions of radius {radius_vox:.1f} voxels fit in the mask; "
            "expected a larger shape, a smaller region_radius_mm or fewer regions"
        )
    return centres


def smooth_noise(shape: Sequence[int], fwhm_vox: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance Gaussian noise smoothed with a Gaussian of ``fwhm_vox`` voxels."""
    noise = rng.standard_normal(shape)
    if fwhm_vox > 0:
        noise = ndimage.gaussian_filter(noise, fwhm_vox * FWHM_TO_SIGMA, mode="wrap")
    return noise / noise.std()


def plant_patterns(
    features: Mapping[str, np.ndarray],
    layers: Sequence[str],
    centres: Sequence[np.ndarray],
    radius_vox: float,
    signal_std: float,
    affine: np.ndarray,
    shape: tuple[int, ...],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Condition patterns (X, Y, Z, K), truth labels and region table for spheres at ``centres``.

    Region r carries layer ``layers[r % L]``: a fixed random projection of its z-scored features.
    """
    k = len(next(iter(features.values())))
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    truth = np.zeros(shape, dtype=np.int16)
    signal = np.zeros(shape + (k,))
    regions = []
    for r, centre in enumerate(centres):
        label = r % len(layers) + 1
        layer = layers[label - 1]
        inside = np.linalg.norm(grid - centre, axis=-1) < radius_vox
        feats = np.asarray(features[layer], dtype=np.float64)
        feats = (feats - feats.mean(1, keepdims=True)) / feats.std(1, keepdims=True).clip(1e-12)
        projection = rng.standard_normal((feats.shape[1], int(inside.sum()))) / np.sqrt(feats.shape[1])
        patterns = feats @ projection  # (K, voxels)
        patterns = signal_std * patterns / patterns.std(axis=0).mean()
        signal[inside] = patterns.T
        truth[inside] = label
        world = affine[:3, :3] @ centre + affine[:3, 3]
        regions.append(
            {
                "region": r + 1,
                "label": label,
                "layer": layer,
                "n_voxels": int(inside.sum()),
                "centre_voxel": np.asarray(centre).tolist(),
                "centre_mm": world.round(2).tolist(),
            }
        )
    return signal, truth, regions


def simulate_fmri(features: Mapping[str, np.ndarray], layers: Sequence[str], cfg: FmriSimulationConfig) -> SimulatedFmri:
    """Simulate volumes for K images whose (K, D) features per layer are given."""
    if not layers:
        raise EggError("rsm simulate: layers is empty; expected at least one layer to plant")
    k = len(next(iter(features.values())))
    if k < 3:
        raise EggError(f"rsm simulate: {k} images; expected at least 3 conditions")
    if cfg.n_runs < 1:
        raise EggError(f"n_runs={cfg.n_runs}; expected at least 1")
    rng = np.random.default_rng(cfg.seed)
    shape = tuple(int(s) for s in cfg.shape)
    affine = grid_affine(shape, cfg.voxel_size)
    mask = ellipsoid_mask(shape, cfg.brain_fraction)
    radius_vox = cfg.region_radius_mm / cfg.voxel_size
    centres = place_regions(mask, len(layers) * cfg.regions_per_layer, radius_vox, rng)
    signal, truth, regions = plant_patterns(features, layers, centres, radius_vox, cfg.signal_std, affine, shape, rng)
    fwhm_vox = cfg.noise_fwhm_mm / cfg.voxel_size
    volumes, conditions, runs = [], [], []
    for run in range(cfg.n_runs):
        for cond in rng.permutation(k):
            noise = cfg.noise_std * smooth_noise(shape, fwhm_vox, rng)
            if cfg.white_noise_std > 0:
                noise += cfg.white_noise_std * rng.standard_normal(shape)
            volumes.append(np.where(mask, signal[..., cond] + noise, 0.0).astype(np.float32))
            conditions.append(int(cond))
            runs.append(run)
    return SimulatedFmri(
        bold=np.stack(volumes, -1),
        conditions=np.array(conditions),
        runs=np.array(runs),
        mask=mask,
        truth=truth,
        affine=affine,
        layers=list(layers),
        regions=regions,
    )
