"""Simulated BOLD time series of several subjects with planted layer representations.

Geometry, region patterns and spatial noise follow :mod:`egg_cli.rsm.fmri_simulation`; here each
subject gets the template's regions shifted by a random offset (Gaussian, ``jitter_mm`` per axis,
whole voxels, kept inside the mask) and its own random projection of the layer features. Every
run shows each of the K images ``repeats`` times in random order (onsets after a ``lead_in``,
stimulus-onset asynchrony uniform in [``soa_min``, ``soa_max``] s, ``trial_duration`` s each). A
mask voxel's time series is

    y(t) = baseline + sum_k x_k(t) p_k + drift(t) + motion(t) w + e(t)

with ``x_k`` the canonical-HRF regressor of image k (:mod:`egg_cli.rsm.design`), ``p_k`` the
voxel's planted response (std ``signal_std`` across images inside regions, 0 outside), drift a
random mix of the cosines with periods above 100 s (std ``drift_std``), six motion parameters (random walks,
written to the confounds file) mixed with random weights per voxel (std ``motion_std``), and AR(1)
noise ``e(t) = phi e(t-1) + sqrt(1 - phi^2) u(t)`` whose innovations ``u`` are spatially smooth
(``noise_fwhm_mm``) with std ``noise_std`` (here, not the pattern simulation's), plus optional white noise. Units: percent of the baseline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from egg_cli.errors import EggError
from egg_cli.rsm.design import Events, cosine_drift, event_regressors, frame_times
from egg_cli.rsm.fmri_simulation import (
    FmriSimulationConfig,
    ellipsoid_mask,
    grid_affine,
    place_regions,
    plant_patterns,
    smooth_noise,
)

MOTION = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")
DRIFT_CUTOFF_HZ = 0.01  # drift: cosines with periods above 100 s
HEAD_RADIUS_MM = 50.0  # rotations to displacement for framewise displacement (Power et al. 2012)


@dataclass
class BoldSimulationConfig:
    """Acquisition and time-series settings (see the module docstring)."""

    n_subjects: int = 6
    tr: float = 2.0
    repeats: int = 3
    trial_duration: float = 1.0
    soa_min: float = 4.0
    soa_max: float = 8.0
    lead_in: float = 10.0
    lead_out: float = 16.0
    hrf_model: str = "glover"
    baseline: float = 100.0
    noise_std: float = 1.0
    ar1: float = 0.3
    drift_std: float = 1.0
    motion_std: float = 0.5
    jitter_mm: float = 3.0


@dataclass
class SimulatedRun:
    """One run: (N, V) float32 data at the mask voxels, its events and its confound columns."""

    data: np.ndarray
    events: Events
    confounds: dict[str, np.ndarray]


@dataclass
class SimulatedSubject:
    """A subject's runs, planted responses (K, V) at the mask voxels, truth volume (0 or 1 + layer index), regions."""

    label: str
    runs: list[SimulatedRun]
    responses: np.ndarray
    truth: np.ndarray
    regions: list[dict] = field(default_factory=list)


class BoldStudy:
    """Template geometry shared by all subjects; ``subject(i)`` simulates subject i (seeded by (seed, i))."""

    def __init__(
        self,
        features: Mapping[str, np.ndarray],
        layers: Sequence[str],
        names: Sequence[str],
        volume: FmriSimulationConfig,
        bold: BoldSimulationConfig,
    ) -> None:
        if not layers:
            raise EggError("rsm simulate: layers is empty; expected at least one layer to plant")
        if len(names) < 3:
            raise EggError(f"rsm simulate: {len(names)} images; expected at least 3 conditions")
        for key, value in (("n_subjects", bold.n_subjects), ("volume.n_runs", volume.n_runs), ("bold.repeats", bold.repeats)):
            if value < 1:
                raise EggError(f"{key}={value}; expected at least 1")
        if not 0 < bold.soa_min <= bold.soa_max:
            raise EggError(f"bold.soa_min={bold.soa_min}, soa_max={bold.soa_max}; expected 0 < soa_min <= soa_max")
        if not 0 <= bold.ar1 < 1:
            raise EggError(f"bold.ar1={bold.ar1}; expected an AR(1) coefficient in [0, 1)")
        self.features, self.layers, self.names = features, list(layers), list(names)
        self.volume, self.bold = volume, bold
        self.shape = tuple(int(s) for s in volume.shape)
        self.affine = grid_affine(self.shape, volume.voxel_size)
        self.mask = ellipsoid_mask(self.shape, volume.brain_fraction)
        self.radius_vox = volume.region_radius_mm / volume.voxel_size
        rng = np.random.default_rng(volume.seed)
        self.centres = place_regions(self.mask, len(self.layers) * volume.regions_per_layer, self.radius_vox, rng)
        _, self.truth, self.regions = plant_patterns(
            features, self.layers, self.centres, self.radius_vox, volume.signal_std, self.affine, self.shape, rng
        )

    def jittered_centres(self, rng: np.random.Generator) -> list[np.ndarray]:
        """Template centres moved by whole-voxel Gaussian offsets that keep each sphere inside the mask."""
        inner = ndimage.binary_erosion(self.mask, iterations=int(np.ceil(self.radius_vox)))
        sigma = self.bold.jitter_mm / self.volume.voxel_size
        out = []
        for centre in self.centres:
            moved = centre
            for _ in range(100):
                candidate = centre + np.rint(rng.normal(0, sigma, 3)).astype(int) if sigma > 0 else centre
                if np.all(candidate >= 0) and np.all(candidate < self.shape) and inner[tuple(candidate)]:
                    moved = candidate
                    break
            out.append(moved)
        return out

    def events(self, rng: np.random.Generator) -> Events:
        """Every image ``repeats`` times in random order with random SOAs."""
        b = self.bold
        trial_type = rng.permutation(np.repeat(np.array(self.names), b.repeats))
        onset = b.lead_in + np.concatenate([[0.0], np.cumsum(rng.uniform(b.soa_min, b.soa_max, len(trial_type) - 1))])
        return Events(onset.round(3), np.full(len(onset), b.trial_duration), trial_type)

    def subject(self, index: int) -> SimulatedSubject:
        """Simulate all runs of subject ``index`` (0-based; label ``index + 1`` zero-padded)."""
        rng = np.random.default_rng([self.volume.seed, index + 1])
        centres = self.jittered_centres(rng)
        signal, truth, regions = plant_patterns(
            self.features, self.layers, centres, self.radius_vox, self.volume.signal_std, self.affine, self.shape, rng
        )
        patterns = signal[self.mask].T  # (K, V)
        runs = [self._run(patterns, rng) for _ in range(self.volume.n_runs)]
        return SimulatedSubject(f"{index + 1:02d}", runs, patterns, truth, regions)

    def _run(self, patterns: np.ndarray, rng: np.random.Generator) -> SimulatedRun:
        b, v = self.bold, self.volume
        events = self.events(rng)
        n_scans = int(np.ceil((events.onset[-1] + b.lead_out) / b.tr))
        times = frame_times(n_scans, b.tr)
        groups = [
            Events(*(a[events.trial_type == name] for a in (events.onset, events.duration, events.trial_type)))
            for name in self.names
        ]
        n_vox = patterns.shape[1]
        data = b.baseline + event_regressors(times, groups, b.hrf_model) @ patterns
        slow = cosine_drift(times, DRIFT_CUTOFF_HZ)[:, :-1]
        if slow.shape[1]:
            data += b.drift_std * slow @ rng.standard_normal((slow.shape[1], n_vox)) / np.sqrt(slow.shape[1] * (slow**2).mean())
        motion = self._motion(n_scans, rng)
        z = np.column_stack([(m - m.mean()) / max(m.std(), 1e-12) for m in motion.values()])
        data += b.motion_std * z @ rng.standard_normal((z.shape[1], n_vox)) / np.sqrt(z.shape[1])
        fwhm_vox = v.noise_fwhm_mm / v.voxel_size
        innovation_scale = np.sqrt(1 - b.ar1**2)
        noise = np.zeros(n_vox)
        for t in range(n_scans):
            u = smooth_noise(self.shape, fwhm_vox, rng)[self.mask]
            noise = b.ar1 * noise + innovation_scale * u if t else u
            data[t] += b.noise_std * noise
            if v.white_noise_std > 0:
                data[t] += v.white_noise_std * rng.standard_normal(n_vox)
        confounds = dict(motion)
        confounds["framewise_displacement"] = framewise_displacement(motion)
        return SimulatedRun(data.astype(np.float32), events, confounds)

    def _motion(self, n_scans: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Six rigid-body parameters as random walks: translations in mm, rotations in radians."""
        steps = {"trans": 0.02, "rot": 0.0004}
        return {name: np.cumsum(rng.normal(0, steps[name[:-2]], n_scans)) for name in MOTION}


def framewise_displacement(motion: Mapping[str, np.ndarray]) -> np.ndarray:
    """Power et al. (2012): sum of absolute frame-to-frame changes, rotations as arc length at 50 mm; NaN first."""
    diffs = [np.abs(np.diff(motion[name])) * (HEAD_RADIUS_MM if name.startswith("rot") else 1.0) for name in MOTION]
    return np.concatenate([[np.nan], np.sum(diffs, axis=0)])
