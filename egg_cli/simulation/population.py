"""Draw a random V4-like population and calibrate it to realistic rates on natural images."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from egg_cli.errors import EggError
from egg_cli.simulation.families import BUILDERS, FAMILIES, Layout, suppressive_terms
from egg_cli.simulation.neurons import CROSS_ORIENTATION, ENERGY, OPPONENCY, V4Population, channel_index

NEURON_KINDS = ("shape", "texture")  # families of the summing (version-1) world
MODELS = ("sum", "conjunction")


@dataclass
class PopulationConfig:
    """How neurons are drawn; lengths are in normalized image units (the image spans [-1, 1])."""

    orientations: int = 8
    cycles_per_image: Sequence[float] = (16.0, 8.0, 4.0)  # Gabor carrier frequencies
    sigma_per_wavelength: float = 0.5
    stride: int = 2
    rf_center_range: float = 0.4
    rf_sigma_range: Sequence[float] = (0.15, 0.3)
    texture_fraction: float = 0.35
    excitatory_subunits: Sequence[int] = (2, 3)
    inhibitory_subunits: Sequence[int] = (1, 2)
    inhibition_strength: Sequence[float] = (0.3, 0.8)
    c50_range: Sequence[float] = (0.1, 0.5)
    threshold_range: Sequence[float] = (0.25, 1.25)
    slope: float = 1.5
    mean_rate: float = 2.5
    rate_spread: float = 0.5
    saturation: float = 2.0  # maximum rate / 99th percentile rate on the calibration images
    model: str = "sum"  # sum: subunits summed (grating-like world) | conjunction: V4-like families of soft-AND terms
    family_fractions: Sequence[float] = (0.1, 0.25, 0.25, 0.2, 0.2)  # conjunction: shares of FAMILIES
    suppressive_terms: Sequence[int] = (1, 2)  # conjunction: inhibitory energy terms per neuron, inclusive range
    surround_scale: Sequence[float] = (1.5, 2.5)  # conjunction: normalization pool sigma / RF sigma
    subunit_c50_quantile: Sequence[float] = (0.5, 0.8)  # conjunction: subunit semi-saturation, natural-image quantile
    cross_orientation: bool = False  # conjunction: divide each subunit by the energy of all orientations under its window
    cross_orientation_c50: float = 0.25  # its semi-saturation / the all-orientation pool's median on natural images
    cross_orientation_opponency: float = (
        0.5  # share of the all-orientation pool subtracted (0: purely divisive; near 1 leaves no gradient)
    )

    def check(self) -> None:
        """Raise EggError on values that cannot make a population."""

        def need(ok: bool, key: str, expected: str) -> None:
            if not ok:
                raise EggError(f"simulation.neurons.{key}={getattr(self, key)!r} is not allowed; expected {expected}")

        need(self.orientations >= 1, "orientations", "a positive integer")
        need(len(self.cycles_per_image) >= 1 and min(self.cycles_per_image) > 0, "cycles_per_image", "a list of positive numbers")
        need(self.stride >= 1, "stride", "a positive integer")
        need(0 < self.rf_sigma_range[0] <= self.rf_sigma_range[1], "rf_sigma_range", "[lo, hi] with 0 < lo <= hi")
        need(
            all(float(v).is_integer() for v in self.excitatory_subunits)
            and 1 <= self.excitatory_subunits[0] <= self.excitatory_subunits[1],
            "excitatory_subunits",
            "integers [lo, hi] with 1 <= lo <= hi",
        )
        need(
            all(float(v).is_integer() for v in self.inhibitory_subunits)
            and 0 <= self.inhibitory_subunits[0] <= self.inhibitory_subunits[1],
            "inhibitory_subunits",
            "integers [lo, hi] with 0 <= lo <= hi",
        )
        need(self.mean_rate > 0, "mean_rate", "a positive number of spikes per trial")
        need(0 <= self.texture_fraction <= 1, "texture_fraction", "a number in [0, 1]")
        need(self.saturation > 1, "saturation", "a number > 1 (maximum rate relative to the 99th percentile on natural images)")
        need(self.model in MODELS, "model", f"one of {', '.join(MODELS)}")
        need(
            len(self.family_fractions) == len(FAMILIES) and min(self.family_fractions) >= 0 and sum(self.family_fractions) > 0,
            "family_fractions",
            f"{len(FAMILIES)} non-negative shares of {', '.join(FAMILIES)}",
        )
        need(
            all(float(v).is_integer() for v in self.suppressive_terms)
            and 0 <= self.suppressive_terms[0] <= self.suppressive_terms[1],
            "suppressive_terms",
            "integers [lo, hi] with 0 <= lo <= hi",
        )
        need(0 < self.surround_scale[0] <= self.surround_scale[1], "surround_scale", "[lo, hi] with 0 < lo <= hi")
        need(
            0 < self.subunit_c50_quantile[0] <= self.subunit_c50_quantile[1] < 1,
            "subunit_c50_quantile",
            "[lo, hi] with 0 < lo <= hi < 1",
        )
        need(not self.cross_orientation or self.model == "conjunction", "cross_orientation", "false unless model is conjunction")
        need(self.cross_orientation_c50 > 0, "cross_orientation_c50", "a positive number")
        need(0 <= self.cross_orientation_opponency <= 1, "cross_orientation_opponency", "a number in [0, 1]")


def _sum_world_subunits(
    rf_center: np.ndarray,
    rf_sigma: np.ndarray,
    wavelengths: np.ndarray,
    to_norm: float,
    config: PopulationConfig,
    rng: np.random.Generator,
) -> tuple[list[str], dict[str, np.ndarray]]:
    """The grating world's neurons: kind per neuron and their subunits (``subunit_*`` arrays).

    *Shape* neurons combine a few locally pooled simple/complex subunits at nearby positions
    and related orientations; *texture* neurons combine complex-cell energy of different
    orientations and frequencies pooled over the whole field; both get inhibitory subunits.
    """
    n_ori, n_freq = config.orientations, len(wavelengths)
    kinds, sub_neuron, sub_channel, sub_center, sub_sigma, sub_weight = [], [], [], [], [], []
    for n in range(len(rf_center)):
        kind = "texture" if rng.random() < config.texture_fraction else "shape"
        kinds.append(kind)
        base_ori = int(rng.integers(n_ori))
        base_freq = int(rng.integers(n_freq))
        n_exc = int(rng.integers(int(config.excitatory_subunits[0]), int(config.excitatory_subunits[1]) + 1))
        n_inh = int(rng.integers(int(config.inhibitory_subunits[0]), int(config.inhibitory_subunits[1]) + 1))
        used = set()
        for k in range(n_exc + n_inh):
            excitatory = k < n_exc
            if k == 0:
                ori, freq = base_ori, base_freq
            elif excitatory and kind == "shape":
                # neighbouring orientation -> curvature / angle; same frequency mostly
                ori = (base_ori + int(rng.choice([-2, -1, 1, 2, n_ori // 2]))) % n_ori
                freq = base_freq if rng.random() < 0.7 else int(np.clip(base_freq + rng.choice([-1, 1]), 0, n_freq - 1))
            elif excitatory:
                ori = int(rng.integers(n_ori))
                freq = int(rng.integers(n_freq))
            else:
                ori = (
                    (base_ori + n_ori // 2 + int(rng.integers(-1, 2))) % n_ori if rng.random() < 0.6 else int(rng.integers(n_ori))
                )
                freq = int(rng.integers(n_freq))
            if kind == "texture" or not excitatory:
                cell = ENERGY
                center = rf_center[n] + rng.normal(0, 0.3 * rf_sigma[n], size=2)
                sigma = rf_sigma[n] * rng.uniform(0.6, 1.0)
            else:
                cell = ENERGY if rng.random() < 0.5 else int(rng.integers(ENERGY))
                offset = rng.normal(0, 0.6 * rf_sigma[n], size=2) if k else rng.normal(0, 0.2 * rf_sigma[n], size=2)
                center = rf_center[n] + offset
                sigma = wavelengths[freq] * to_norm * rng.uniform(0.5, 1.0)
            if (ori, freq, cell, excitatory) in used:
                continue
            used.add((ori, freq, cell, excitatory))
            weight = (1.0 if k == 0 else rng.uniform(0.4, 1.0)) if excitatory else -rng.uniform(*config.inhibition_strength)
            sub_neuron.append(n)
            sub_channel.append(channel_index(freq, ori, cell, n_ori))
            sub_center.append(center)
            sub_sigma.append(sigma)
            sub_weight.append(weight)

    subunits = {
        "subunit_neuron": np.array(sub_neuron, dtype=np.int64),
        "subunit_channel": np.array(sub_channel, dtype=np.int64),
        "subunit_center": np.array(sub_center, dtype=np.float64).reshape(-1, 2),
        "subunit_sigma": np.array(sub_sigma, dtype=np.float64),
        "subunit_weight": np.array(sub_weight, dtype=np.float64),
    }
    return kinds, subunits


def draw_population(
    n_neurons: int,
    image_shape: tuple[int, int, int],
    pixel_mean: float,
    pixel_std: float,
    config: PopulationConfig,
    rng: np.random.Generator,
) -> tuple[V4Population, dict[str, np.ndarray]]:
    """Draw receptive fields and subunits; return the (uncalibrated) module and per-neuron metadata.

    ``config.model`` picks the world: ``sum`` (grating-like shape and texture neurons,
    :func:`_sum_world_subunits`) or ``conjunction`` (V4-like families, :func:`_conjunction_population`).
    """
    config.check()
    if n_neurons < 1:
        raise EggError(f"simulation.n_neurons={n_neurons} is not allowed; expected a positive integer")
    channels, height, width = image_shape
    if height != width:
        raise EggError(f"image size {height}x{width} is not square; expected square images")
    wavelengths = np.array([width / c for c in config.cycles_per_image], dtype=np.float64)
    if wavelengths.min() < 3:
        raise EggError(
            f"simulation.neurons.cycles_per_image={list(config.cycles_per_image)} gives a wavelength of {wavelengths.min():.2g} px "
            f"at image size {width}; expected at most {width / 3:.3g} cycles per image (wavelengths of 3 px or more)"
        )
    to_norm = 2.0 / width  # pixels -> normalized units
    rf_center = rng.uniform(-config.rf_center_range, config.rf_center_range, size=(n_neurons, 2))
    rf_sigma = rng.uniform(*config.rf_sigma_range, size=n_neurons)
    if config.model == "conjunction":
        return _conjunction_population(
            rf_center, rf_sigma, wavelengths * to_norm, image_shape, pixel_mean, pixel_std, config, rng
        )
    kinds, subunits = _sum_world_subunits(rf_center, rf_sigma, wavelengths, to_norm, config, rng)
    spec = _population_spec(rf_center, rf_sigma, subunits, wavelengths, image_shape, pixel_mean, pixel_std, config, rng)
    meta = {
        "kind": np.array(kinds),
        "rf_center": rf_center,
        "rf_sigma": rf_sigma,
        "n_excitatory": np.bincount(subunits["subunit_neuron"][subunits["subunit_weight"] > 0], minlength=n_neurons),
        "n_inhibitory": np.bincount(subunits["subunit_neuron"][subunits["subunit_weight"] < 0], minlength=n_neurons),
    }
    return V4Population(spec), meta


def _conjunction_population(
    rf_center: np.ndarray,
    rf_sigma: np.ndarray,
    wavelengths_norm: np.ndarray,
    image_shape: tuple[int, int, int],
    pixel_mean: float,
    pixel_std: float,
    config: PopulationConfig,
    rng: np.random.Generator,
) -> tuple[V4Population, dict[str, np.ndarray]]:
    """The V4-like world: per neuron, one family's excitatory conjunction term plus inhibitory energy terms."""
    n_neurons = len(rf_center)
    shares = np.asarray(config.family_fractions, dtype=np.float64)
    families = rng.choice(len(FAMILIES), size=n_neurons, p=shares / shares.sum())
    columns: dict[str, list] = {k: [] for k in ("neuron", "channel", "center", "sigma", "term")}
    term_neuron, term_weight, n_exc, n_inh = [], [], np.zeros(n_neurons, int), np.zeros(n_neurons, int)
    for n in range(n_neurons):
        layout = Layout(int(config.orientations), wavelengths_norm, rf_center[n], float(rf_sigma[n]))
        excitatory = BUILDERS[FAMILIES[families[n]]](layout, rng)
        lo, hi = (int(v) for v in config.suppressive_terms)
        inhibitory = suppressive_terms(layout, int(rng.integers(lo, hi + 1)), rng)
        weights = [1.0] + [rng.uniform(0.4, 1.0) for _ in excitatory[1:]]
        weights += [-rng.uniform(*config.inhibition_strength) for _ in inhibitory]
        for parts, weight in zip([*excitatory, *inhibitory], weights):
            for part in parts:
                columns["neuron"].append(n)
                columns["channel"].append(part.channel)
                columns["center"].append(part.center)
                columns["sigma"].append(part.sigma)
                columns["term"].append(len(term_neuron))
            term_neuron.append(n)
            term_weight.append(weight)
        n_exc[n], n_inh[n] = sum(len(t) for t in excitatory), len(inhibitory)
    subunits = {
        "subunit_neuron": np.array(columns["neuron"], dtype=np.int64),
        "subunit_channel": np.array(columns["channel"], dtype=np.int64),
        "subunit_center": np.array(columns["center"], dtype=np.float64).reshape(-1, 2),
        "subunit_sigma": np.array(columns["sigma"], dtype=np.float64),
        "subunit_weight": np.array(term_weight, dtype=np.float64)[np.array(columns["term"], dtype=np.int64)],
        "subunit_term": np.array(columns["term"], dtype=np.int64),
        "term_neuron": np.array(term_neuron, dtype=np.int64),
        "term_weight": np.array(term_weight, dtype=np.float64),
        "pool_sigma": rf_sigma * rng.uniform(*config.surround_scale, size=n_neurons),
        "subunit_c50": np.ones(len(columns["term"])),  # set by calibrate_subunits
    }
    if config.cross_orientation:
        subunits[CROSS_ORIENTATION] = np.ones(len(columns["term"]))  # set by calibrate_subunits
        subunits[OPPONENCY] = float(config.cross_orientation_opponency)
    width = image_shape[2]
    spec = _population_spec(
        rf_center, rf_sigma, subunits, wavelengths_norm * width / 2, image_shape, pixel_mean, pixel_std, config, rng
    )
    meta = {
        "kind": np.array([FAMILIES[f] for f in families]),
        "rf_center": rf_center,
        "rf_sigma": rf_sigma,
        "n_excitatory": n_exc,
        "n_inhibitory": n_inh,
    }
    return V4Population(spec), meta


def _population_spec(
    rf_center: np.ndarray,
    rf_sigma: np.ndarray,
    subunits: dict[str, np.ndarray],
    wavelengths: np.ndarray,
    image_shape: tuple[int, int, int],
    pixel_mean: float,
    pixel_std: float,
    config: PopulationConfig,
    rng: np.random.Generator,
) -> dict:
    """The module spec: receptive fields, subunits, thresholds (drawn here), uncalibrated gains, stage-one settings."""
    n_neurons = len(rf_center)
    channels, height, width = image_shape
    ones = np.ones(n_neurons)
    return {
        "neuron_ids": np.arange(n_neurons, dtype=np.int64),
        "rf_center": rf_center,
        "rf_sigma": rf_sigma,
        "norm_constant": ones.copy(),
        "drive_mean": np.zeros(n_neurons),
        "drive_std": ones.copy(),
        "threshold": rng.uniform(*config.threshold_range, size=n_neurons),
        "gain": ones.copy(),
        "max_rate": np.full(n_neurons, np.inf),
        **subunits,
        "wavelengths": wavelengths,
        "image_height": height,
        "image_width": width,
        "in_channels": channels,
        "orientations": config.orientations,
        "sigma_per_wavelength": config.sigma_per_wavelength,
        "stride": config.stride,
        "slope": config.slope,
        "pixel_mean": pixel_mean,
        "pixel_std": pixel_std,
    }


@torch.no_grad()
def numerator_and_pool(
    population: V4Population,
    images_z: np.ndarray,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Stage-two numerator and normalization pool for many images, (N, n) each, in batches.

    The population is moved to ``device`` (and stays there); the results are float64 numpy arrays.
    """
    population = population.to(device)
    nums, pools = [], []
    for start in tqdm(range(0, len(images_z), batch_size), desc="ground truth", disable=not progress, leave=False):
        batch = torch.as_tensor(images_z[start : start + batch_size], dtype=torch.float32, device=device)
        num, pool = population.numerator_and_pool(batch)
        nums.append(num.cpu().numpy())
        pools.append(pool.cpu().numpy())
    return np.concatenate(nums).astype(np.float64), np.concatenate(pools).astype(np.float64)


@torch.no_grad()
def calibrate_subunits(
    population: V4Population,
    images_z: np.ndarray,
    config: PopulationConfig,
    rng: np.random.Generator,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
) -> None:
    """Set each subunit's semi-saturation to a quantile (drawn in ``subunit_c50_quantile``) of its
    pooled value over ``images_z`` (conjunctive populations only); with cross-orientation
    normalization, first set its pool's semi-saturation to ``cross_orientation_c50`` times the
    pool's median over ``images_z``."""
    population = population.to(device)
    batches = [
        torch.as_tensor(images_z[start : start + batch_size], dtype=torch.float32, device=device)
        for start in range(0, len(images_z), batch_size)
    ]
    if population.cross_orientation:
        local = np.concatenate([population.orientation_pool(population.bank(b).flatten(2)).T.cpu().numpy() for b in batches])
        median = np.median(local.astype(np.float64), axis=0)
        population.set_calibration(**{CROSS_ORIENTATION: np.maximum(config.cross_orientation_c50 * median, 1e-6)})
    values = np.concatenate([population.pooled_subunits(b)[1].T.cpu().numpy() for b in batches]).astype(np.float64)
    quantiles = rng.uniform(*config.subunit_c50_quantile, size=values.shape[1])
    c50 = np.array([np.quantile(values[:, s], q) for s, q in enumerate(quantiles)])
    population.set_calibration(subunit_c50=np.maximum(c50, 1e-6))


def calibrate(
    population: V4Population,
    numerator: np.ndarray,
    pool: np.ndarray,
    config: PopulationConfig,
    rng: np.random.Generator,
) -> np.ndarray:
    """Set normalization constants, drive standardization and gains from training images.

    The normalization constant is a random fraction (c50) of each neuron's median pool; the
    drive is standardized over the images; the maximum rate is ``saturation`` times the 99th
    percentile rate on these images; the gain makes each neuron's mean rate on these images equal a
    log-normally drawn target (mean ``mean_rate``, log-sd ``rate_spread``). Returns the targets.
    """
    n = numerator.shape[1]
    norm_constant = rng.uniform(*config.c50_range, size=n) * np.median(pool, axis=0)
    drive = numerator / (norm_constant + pool)
    population.set_calibration(
        norm_constant=norm_constant,
        drive_mean=drive.mean(0),
        drive_std=np.maximum(drive.std(0), 1e-9),
        gain=np.ones(n),
        max_rate=np.full(n, np.inf),
    )
    with torch.no_grad():
        unit = population.unsaturated_rate(
            torch.as_tensor(numerator, dtype=torch.float32), torch.as_tensor(pool, dtype=torch.float32)
        )
    unit = unit.numpy().astype(np.float64)
    target = config.mean_rate * np.exp(rng.normal(0, config.rate_spread, size=n) - config.rate_spread**2 / 2)
    # mean of max * tanh(gain * unit / max) with max = saturation * gain * p99(unit): linear in gain
    shape = np.maximum(np.percentile(unit, 99, axis=0), 1e-12) * config.saturation
    mean_per_gain = (shape * np.tanh(unit / shape)).mean(0)
    gain = target / np.maximum(mean_per_gain, 1e-12)
    population.set_calibration(gain=gain, max_rate=gain * shape)
    return target
