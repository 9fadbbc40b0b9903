"""Simulate a neural dataset with known ground truth: natural crops, V4-like neurons, noisy trials."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from egg_cli.data.hdf5 import write_dataset
from egg_cli.data.natural import IMAGE_SOURCES, natural_images
from egg_cli.data.schema import pixel_statistics
from egg_cli.errors import EggError
from egg_cli.metrics import correlation, oracle_correlation, split_half_reliability
from egg_cli.simulation.grating_likeness import GratingLikeness, grating_likeness
from egg_cli.simulation.neurons import MODEL_KIND, V4Population
from egg_cli.simulation.population import PopulationConfig, calibrate, calibrate_subunits, draw_population, numerator_and_pool
from egg_cli.simulation.tuning import grating_tuning

log = logging.getLogger(__name__)


@dataclass
class SimulationConfig:
    """What to simulate (the ``dataset`` config group of ``egg simulate``)."""

    n_neurons: int = 100
    image_size: int = 64
    image_source: str = "bundled"  # bundled | dead_leaves | mixed | a folder of images
    grayscale: bool = True
    crop_scale: tuple[float, float] = (0.25, 1.0)
    n_train: int = 5000
    n_validation: int = 500
    n_test: int = 75
    test_repeats: int = 10
    overdispersion: float = 0.1  # variance of a per-trial multiplicative gain (0: pure Poisson)
    neurons: PopulationConfig = field(default_factory=PopulationConfig)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], prefix: str = "simulation") -> SimulationConfig:
        """Build from a plain mapping; unknown keys raise EggError naming the key."""
        values = dict(values)
        values.pop("name", None)
        neurons = dict(values.pop("neurons", {}) or {})
        _check_keys(values, cls, prefix, exclude={"neurons"})
        _check_keys(neurons, PopulationConfig, f"{prefix}.neurons")
        cfg = cls(**values, neurons=PopulationConfig(**neurons))
        cfg.check(prefix)
        return cfg

    def check(self, prefix: str = "simulation") -> None:
        """Raise EggError on values that cannot be simulated."""
        for key in ("n_neurons", "image_size", "n_train", "n_validation", "n_test"):
            if int(getattr(self, key)) < 1:
                raise EggError(f"{prefix}.{key}={getattr(self, key)!r} is not allowed; expected a positive integer")
        if self.image_size < 8:
            raise EggError(f"{prefix}.image_size={self.image_size} is too small; expected at least 8 pixels")
        if self.test_repeats < 2:
            raise EggError(
                f"{prefix}.test_repeats={self.test_repeats} is not allowed; expected at least 2 so a noise ceiling exists"
            )
        if self.overdispersion < 0:
            raise EggError(f"{prefix}.overdispersion={self.overdispersion} is not allowed; expected a number >= 0")
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise EggError(
                f"{prefix}.crop_scale={list(self.crop_scale)} is not allowed; expected [lo, hi] with 0 < lo <= hi <= 1"
            )
        self.neurons.check()
        finest = self.image_size / max(self.neurons.cycles_per_image)
        if finest < 3:
            raise EggError(
                f"{prefix}.neurons.cycles_per_image={list(self.neurons.cycles_per_image)} gives a wavelength of {finest:.2g} px "
                f"at image size {self.image_size}; expected at most {self.image_size / 3:.3g} cycles per image (wavelengths of 3 px or more)"
            )


def _check_keys(values: dict[str, Any], cls: type, prefix: str, exclude: set[str] = frozenset()) -> None:
    """Reject unknown keys and values whose type differs from the field's default (in place: lists -> tuples)."""
    defaults = {f.name: f.default for f in dataclasses.fields(cls) if f.name not in exclude}
    unknown = sorted(set(values) - set(defaults))
    if unknown:
        raise EggError(f"{prefix}.{unknown[0]} is not a setting; expected one of {', '.join(sorted(defaults))}")
    for key, value in values.items():
        default = defaults[key]
        if isinstance(default, bool):
            ok, expected = isinstance(value, bool), "true or false"
        elif isinstance(default, int):
            ok, expected = isinstance(value, int) and not isinstance(value, bool), "an integer"
        elif isinstance(default, float):
            ok, expected = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
        elif isinstance(default, tuple):
            ok = isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            expected = "a list of numbers"
            if ok and len(default) == 2 and len(value) != 2:
                ok, expected = False, "a list of two numbers [lo, hi]"
            if ok:
                values[key] = tuple(value)
        else:
            ok, expected = isinstance(value, str), "a string"
        if not ok:
            raise EggError(f"{prefix}.{key}={value!r} is not allowed; expected {expected}")


@dataclass
class Simulation:
    """A simulated dataset in memory, with its ground truth and per-neuron statistics."""

    images: np.ndarray  # (N, C, H, W) uint8
    tiers: np.ndarray  # (N,)
    responses: np.ndarray  # (T, n) spike counts
    trial_image: np.ndarray  # (T,)
    rates: np.ndarray  # (N, n) expected spikes per trial (noise-free)
    population: V4Population
    neurons: dict[str, np.ndarray]  # per-neuron metadata and statistics
    pixel_stats: dict[str, float]
    tuning_curves: np.ndarray  # (n, O)
    tuning_orientations: np.ndarray  # (O,) degrees
    optimum: GratingLikeness | None = None  # the ground truth's own optimum and best Gabor (measure_optimum)

    def headline(self) -> dict[str, float]:
        """Population summary numbers (file attrs, summary.json)."""
        return {
            "mean_rate": float(self.responses.mean()),
            "median_split_half_reliability": float(np.median(self.neurons["split_half_reliability"])),
            "median_oracle_correlation": float(np.median(self.neurons["oracle_correlation"])),
            "median_ground_truth_correlation": float(np.median(self.neurons["ground_truth_correlation"])),
        }


def simulate(config: SimulationConfig, seed: int = 0, device: torch.device | str = "cpu", progress: bool = True) -> Simulation:
    """Draw images, neurons and noisy trials; every random choice comes from ``seed``."""
    rng = np.random.default_rng(seed)
    image_rng, neuron_rng, noise_rng = (np.random.default_rng(s) for s in rng.integers(0, 2**63, size=3))
    source = config.image_source
    if source is not None and source not in IMAGE_SOURCES:
        source = os.path.expanduser(str(source))
    counts = {"train": config.n_train, "validation": config.n_validation, "test": config.n_test}
    n_images = sum(counts.values())
    log.info("drawing %d natural images (%s) of %dx%d", n_images, source, config.image_size, config.image_size)
    crops = natural_images(
        source, n_images, config.image_size, image_rng, scale_range=tuple(config.crop_scale), grayscale=config.grayscale
    )
    images = np.round(crops * 255).astype(np.uint8)
    tiers = np.concatenate([np.full(c, tier) for tier, c in counts.items()])
    stats = pixel_statistics(images, tiers)

    population, meta = draw_population(
        config.n_neurons, images.shape[1:], stats["pixel_mean"], stats["pixel_std"], config.neurons, neuron_rng
    )
    images_z = (images.astype(np.float32) - stats["pixel_mean"]) / stats["pixel_std"]
    if population.conjunctive:
        calibrate_subunits(population, images_z[tiers == "train"][:1000], config.neurons, neuron_rng, device=device)
    numerator, pool = numerator_and_pool(population, images_z, device=device, progress=progress)
    population.cpu()  # calibration, rates and tuning are cheap: on the CPU
    train = tiers == "train"
    calibrate(population, numerator[train], pool[train], config.neurons, neuron_rng)
    with torch.no_grad():
        rates = population.rate(torch.as_tensor(numerator, dtype=torch.float32), torch.as_tensor(pool, dtype=torch.float32))
    rates = rates.numpy().astype(np.float64)

    repeats = np.where(tiers == "test", config.test_repeats, 1)
    trial_image = noise_rng.permutation(np.repeat(np.arange(n_images), repeats))
    responses = sample_trials(rates[trial_image], config.overdispersion, noise_rng)

    test = tiers[trial_image] == "test"
    meta["mean_rate"] = responses.mean(0)
    meta["split_half_reliability"] = split_half_reliability(responses[test], trial_image[test], seed=seed)
    meta["oracle_correlation"] = oracle_correlation(responses[test], trial_image[test])
    meta["ground_truth_correlation"] = correlation(rates[trial_image[test]], responses[test])
    tuning = grating_tuning(population, population.bank.wavelengths)
    for key in ("pref_orientation", "pref_wavelength", "orientation_selectivity"):
        meta[key] = tuning[key]
    return Simulation(
        images=images,
        tiers=tiers,
        responses=responses.astype(np.float32),
        trial_image=trial_image,
        rates=rates,
        population=population,
        neurons=meta,
        pixel_stats=stats,
        tuning_curves=tuning["curve"],
        tuning_orientations=tuning["orientations"],
    )


def measure_optimum(
    sim: Simulation, rms_contrast: float, max_neurons: int, steps: int = 200, progress: bool = False
) -> GratingLikeness:
    """Find the ground-truth optimum at RMS contrast ``rms_contrast`` (L2 norm ``rms_contrast *
    sqrt(C*H*W)`` in z-scored units) and the best Gabor patch of up to ``max_neurons`` evenly spaced
    neurons; keep both on ``sim`` (per-neuron ``optimum_rate``, ``best_gabor_rate``,
    ``grating_likeness``, NaN where not measured; the images go to the ground-truth group)."""
    if rms_contrast <= 0:
        raise EggError(f"report.optimum.rms_contrast={rms_contrast} is not allowed; expected a positive number")
    if max_neurons < 1 or steps < 1:
        raise EggError(f"report.optimum.neurons={max_neurons}, steps={steps}: expected positive integers")
    n = sim.population.n_neurons
    neurons = np.unique(np.linspace(0, n - 1, min(max_neurons, n)).round().astype(int))
    norm = rms_contrast * float(np.sqrt(np.prod(sim.population.input_shape)))
    result = grating_likeness(sim.population, norm, steps=steps, neurons=neurons, progress=progress)
    sim.optimum = result
    for key, values in (
        ("optimum_rate", result.mei_rate),
        ("best_gabor_rate", result.gabor_rate),
        ("grating_likeness", result.ratio),
    ):
        column = np.full(n, np.nan)
        column[neurons] = values
        sim.neurons[key] = column
    return result


def sample_trials(rates: np.ndarray, overdispersion: float, rng: np.random.Generator) -> np.ndarray:
    """Spike counts: Poisson around ``rates`` times a Gamma gain (mean 1, variance ``overdispersion``)."""
    if overdispersion > 0:
        gain = rng.gamma(1.0 / overdispersion, overdispersion, size=(rates.shape[0], 1))
        rates = rates * gain
    return rng.poisson(rates).astype(np.float32)


def ground_truth_content(population: V4Population, optimum: GratingLikeness | None = None) -> dict[str, Any]:
    """The ``ground_truth`` group: the module spec plus its kind and version, and the optimum
    images (``optimum_images``, z-scored, at L2 norm ``optimum_norm``) when measured."""
    content: dict[str, Any] = {"kind": MODEL_KIND, "version": population.version}
    for key, value in population.spec().items():
        content[key] = np.asarray(value) if isinstance(value, np.ndarray) else value
    if optimum is not None:
        content["optimum_images"] = optimum.mei.astype(np.float32)
        content["optimum_neurons"] = optimum.neurons.astype(np.int64)
        content["optimum_norm"] = optimum.norm
    return content


def write_simulation(sim: Simulation, path: str | os.PathLike, attrs: Mapping[str, Any] | None = None) -> None:
    """Write the simulated dataset with its ground truth to one HDF5 file (atomically)."""
    all_attrs = {"source": "egg simulate", **sim.headline(), **dict(attrs or {})}
    write_dataset(
        path,
        sim.images,
        sim.responses,
        sim.trial_image,
        sim.tiers,
        sim.population.neuron_ids,
        neurons=sim.neurons,
        attrs=all_attrs,
        ground_truth=ground_truth_content(sim.population, sim.optimum),
    )
