"""V4-like two-stage ground-truth neurons as a differentiable torch module.

Stage one (``GaborBank``): Gabor filters at several orientations and spatial frequencies on
the luminance of the z-scored image; per filter pair, four half-wave rectified simple cells
(even/odd phase, ON/OFF sign) and one complex cell (quadrature energy).

Stage two (``V4Population``): each neuron sums a few stage-one *subunits* (a channel pooled
under a small Gaussian window at a position inside the neuron's receptive field) with
excitatory and inhibitory weights, divides by a normalization pool (mean complex-cell energy
under the receptive-field Gaussian, plus a constant) and passes the standardized result through
a softplus scaled to spikes per trial, saturating smoothly at a maximum rate::

    drive = sum_s w_s * pooled_s / (c_n + pool_n)
    g     = gain_n * softplus(slope * ((drive - mu_n) / sd_n - theta_n)) / slope
    rate  = max_rate_n * tanh(g / max_rate_n)

With conjunction terms (model version 2, the V4-like default world), each pooled subunit first
saturates (Naka-Rushton with a semi-saturation ``subunit_c50`` calibrated on natural images),
subunits are grouped into *terms*, a term is the geometric mean of its saturated subunits (a soft
AND: every part must be present, and contrast spent beyond saturation on one part is wasted),
terms are summed with excitatory and inhibitory weights, and the normalization pool is the energy
under a wider Gaussian (``pool_sigma``: receptive field plus suppressive surround)::

    a_s     = pooled_s^2 / (pooled_s^2 + c50_s^2)
    term_t  = exp( mean_{s in t} log(a_s + eps_t) )
    drive   = sum_t w_t * term_t / (c_n + pool_n)

A term of one subunit is that subunit; a population without terms is the version-1 world.

With cross-orientation normalization (model version 3, the default world), a subunit's pooled
value is first compared with the same cells at *all* orientations under its window: with ``C``
the subunit's cell type (complex-cell energy or a rectified simple cell) at its frequency
``f_s``, ``alpha`` the opponency in [0, 1] (0: purely divisive) and ``k_s`` a semi-saturation
calibrated on natural images::

    L_s      = sum_p map_s(p) * mean_theta C(f_s, theta, p)
    pooled_s <- max(0, pooled_s - alpha * L_s) / (k_s + L_s)

A subunit so signals how far its orientation exceeds the local mean over orientations: a
broadband spot (a small Gabor patch, a high-contrast blob) drives every orientation about
equally and hence each one weakly, while an oriented contour part drives its own subunit fully.

Positions are normalized image coordinates in [-1, 1] (x to the right, y down; the convention
of ``grid_sample`` with ``align_corners=False``), as used by Gaussian readouts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from egg_cli.errors import EggError

CELL_TYPES = ("even_on", "even_off", "odd_on", "odd_off", "energy")
ENERGY = CELL_TYPES.index("energy")
MODEL_KIND = "v4_two_stage"
MODEL_VERSION = 3  # 1: subunits summed; 2: conjunction terms; 3: terms + cross-orientation normalization
TERM_ARRAYS = ("subunit_term", "term_neuron", "term_weight", "pool_sigma", "subunit_c50")
CROSS_ORIENTATION = "subunit_cross_c50"  # version 3: per-subunit semi-saturation of the all-orientation pool
OPPONENCY = "cross_orientation_opponency"  # version 3: alpha, the share of the all-orientation pool subtracted
TERM_EPS = 1e-3  # floor of a saturated subunit (in [0, 1]) inside a term's geometric mean
CALIBRATION = ("norm_constant", "drive_mean", "drive_std", "threshold", "gain", "max_rate")
_EPS = 1e-6


def channel_index(frequency: int, orientation: int, cell_type: int, orientations: int) -> int:
    """Stage-one channel index for (frequency, orientation, cell type) with ``orientations`` per frequency."""
    return (frequency * len(CELL_TYPES) + cell_type) * orientations + orientation


def gabor_pair(wavelength: float, orientation: float, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Even and odd Gabor kernels (zero mean, unit L2 norm); bars run along ``orientation`` (radians)."""
    radius = max(1, int(math.ceil(2.5 * sigma)))
    y, x = np.mgrid[-radius : radius + 1, -radius : radius + 1].astype(np.float64)
    across = -x * math.sin(orientation) + y * math.cos(orientation)  # distance across the bars
    envelope = np.exp(-(x**2 + y**2) / (2 * sigma**2))
    even = envelope * np.cos(2 * math.pi * across / wavelength)
    even -= envelope * even.sum() / envelope.sum()
    odd = envelope * np.sin(2 * math.pi * across / wavelength)
    return even / np.linalg.norm(even), odd / np.linalg.norm(odd)


def grid_coordinates(size: int, stride: int) -> np.ndarray:
    """Normalized coordinates of the stage-one output positions along one image axis."""
    pixels = np.arange(0, size, stride, dtype=np.float64)
    return (2 * pixels + 1) / size - 1


def gaussian_maps(centers: np.ndarray, sigmas: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Isotropic Gaussians (K, h, w) at ``centers`` (K, 2: x, y), each summing to one on the grid."""
    dx = coords[None, None, :] - centers[:, 0, None, None]
    dy = coords[None, :, None] - centers[:, 1, None, None]
    maps = np.exp(-(dx**2 + dy**2) / (2 * sigmas[:, None, None] ** 2))
    return maps / np.maximum(maps.sum((1, 2), keepdims=True), 1e-12)


class GaborBank(nn.Module):
    """Stage one: simple and complex cells at ``orientations`` x ``wavelengths`` (pixels)."""

    def __init__(self, orientations: int, wavelengths: Sequence[float], sigma_per_wavelength: float, stride: int):
        super().__init__()
        self.orientations = int(orientations)
        self.wavelengths = [float(w) for w in wavelengths]
        self.sigma_per_wavelength = float(sigma_per_wavelength)
        self.stride = int(stride)
        angles = np.arange(self.orientations) * math.pi / self.orientations
        for f, wavelength in enumerate(self.wavelengths):
            pairs = [gabor_pair(wavelength, a, self.sigma_per_wavelength * wavelength) for a in angles]
            kernel = np.stack([p[0] for p in pairs] + [p[1] for p in pairs])[:, None]  # (evens then odds, 1, k, k)
            self.register_buffer(f"kernel{f}", torch.tensor(kernel, dtype=torch.float32))

    @property
    def n_channels(self) -> int:
        return len(self.wavelengths) * self.orientations * len(CELL_TYPES)

    def channel(self, frequency: int, orientation: int, cell_type: int) -> int:
        """Index of a stage-one channel; channels are ordered (frequency, cell type, orientation)."""
        return channel_index(frequency, orientation, cell_type, self.orientations)

    def energy_channels(self) -> list[int]:
        return [self.channel(f, o, ENERGY) for f in range(len(self.wavelengths)) for o in range(self.orientations)]

    def forward(self, images_z: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) z-scored images -> (B, n_channels, ceil(H/stride), ceil(W/stride)) non-negative."""
        luminance = images_z.mean(1, keepdim=True)
        cells = []
        for f in range(len(self.wavelengths)):
            kernel = getattr(self, f"kernel{f}")
            out = F.conv2d(luminance, kernel, stride=self.stride, padding=kernel.shape[-1] // 2)
            even, odd = out[:, : self.orientations], out[:, self.orientations :]
            energy = torch.sqrt(even**2 + odd**2 + _EPS)
            cells += [F.relu(even), F.relu(-even), F.relu(odd), F.relu(-odd), energy]  # order of CELL_TYPES
        return torch.cat(cells, 1)


class V4Population(nn.Module):
    """Ground-truth V4-like neurons: ``forward(images_z) -> (B, n_neurons)`` expected spikes per trial.

    Built from a *spec* (plain arrays and numbers, see ``spec()``), which is what the dataset
    file stores; ``V4Population(spec)`` rebuilds an identical module.
    """

    SPEC_ARRAYS = (
        "neuron_ids",
        "rf_center",
        "rf_sigma",
        "norm_constant",
        "drive_mean",
        "drive_std",
        "threshold",
        "gain",
        "max_rate",
        "subunit_neuron",
        "subunit_channel",
        "subunit_center",
        "subunit_sigma",
        "subunit_weight",
        "wavelengths",
    )
    SPEC_SCALARS = (
        "image_height",
        "image_width",
        "in_channels",
        "orientations",
        "sigma_per_wavelength",
        "stride",
        "slope",
        "pixel_mean",
        "pixel_std",
    )

    def __init__(self, spec: Mapping[str, Any]):
        super().__init__()
        missing = [k for k in (*self.SPEC_ARRAYS, *self.SPEC_SCALARS) if k not in spec]
        if missing:
            raise EggError(f"ground-truth spec lacks {missing}; expected every field of a {MODEL_KIND} population")
        present = [k for k in TERM_ARRAYS if k in spec]
        if present and len(present) != len(TERM_ARRAYS):
            raise EggError(f"ground-truth spec has {present} but not all of {list(TERM_ARRAYS)}; expected all or none")
        self.conjunctive = bool(present)
        self.cross_orientation = CROSS_ORIENTATION in spec
        if self.cross_orientation and not self.conjunctive:
            raise EggError(f"ground-truth spec has {CROSS_ORIENTATION!r} without conjunction terms; expected both or neither")
        arrays = {*self.SPEC_ARRAYS, *TERM_ARRAYS, CROSS_ORIENTATION}
        names = (
            *self.SPEC_ARRAYS,
            *(TERM_ARRAYS if self.conjunctive else ()),
            *((CROSS_ORIENTATION, OPPONENCY) if self.cross_orientation else ()),
            *self.SPEC_SCALARS,
        )
        self._spec = {k: (np.array(spec[k]) if k in arrays else spec[k]) for k in names}
        s = self._spec
        self.input_shape = (int(s["in_channels"]), int(s["image_height"]), int(s["image_width"]))
        self.neuron_ids = s["neuron_ids"]
        self.n_neurons = len(self.neuron_ids)
        self.pixel_mean = float(s["pixel_mean"])
        self.pixel_std = float(s["pixel_std"])
        self.slope = float(s["slope"])
        self.bank = GaborBank(int(s["orientations"]), s["wavelengths"], float(s["sigma_per_wavelength"]), int(s["stride"]))
        ys = grid_coordinates(self.input_shape[1], self.bank.stride)
        xs = grid_coordinates(self.input_shape[2], self.bank.stride)
        if len(xs) != len(ys):
            raise EggError(f"ground truth needs square images; got {self.input_shape[1]}x{self.input_shape[2]}")
        n_sub = len(s["subunit_channel"])
        if not (len(s["subunit_neuron"]) == len(s["subunit_weight"]) == len(s["subunit_sigma"]) == n_sub):
            raise EggError("ground-truth spec: subunit arrays differ in length; expected one entry per subunit")
        if n_sub and (s["subunit_channel"].max() >= self.bank.n_channels or s["subunit_neuron"].max() >= self.n_neurons):
            raise EggError("ground-truth spec: subunit channel or neuron index out of range")

        def buf(name: str, value: np.ndarray, dtype: torch.dtype = torch.float32) -> None:
            self.register_buffer(name, torch.tensor(np.asarray(value), dtype=dtype))

        # subunits grouped by channel: one batched matmul pools every subunit (no per-subunit copies)
        maps = gaussian_maps(s["subunit_center"].reshape(-1, 2), s["subunit_sigma"], xs).reshape(n_sub, -1)
        used, group = np.unique(s["subunit_channel"], return_inverse=True)
        slot = np.zeros(n_sub, dtype=np.int64)
        for g in range(len(used)):
            members = np.flatnonzero(group == g)
            slot[members] = np.arange(len(members))
        grouped = np.zeros((len(used), maps.shape[1], int(slot.max(initial=0)) + 1))
        grouped[group, :, slot] = maps
        buf("used_channels", used, torch.long)
        buf("subunit_group", group, torch.long)
        buf("subunit_slot", slot, torch.long)
        buf("grouped_maps", grouped)
        if self.conjunctive:
            term, n_terms = s["subunit_term"].astype(np.int64), len(s["term_neuron"])
            if n_sub and (term.max() >= n_terms or s["term_neuron"].max() >= self.n_neurons):
                raise EggError("ground-truth spec: subunit term or term neuron index out of range")
            sizes = np.bincount(term, minlength=n_terms)
            if (sizes == 0).any():
                raise EggError("ground-truth spec: a conjunction term has no subunit; expected at least one per term")
            averaging = np.zeros((n_terms, n_sub))
            averaging[term, np.arange(n_sub)] = 1.0 / sizes[term]
            buf("subunit_to_term", averaging)
            to_neuron = np.zeros((n_terms, self.n_neurons))
            to_neuron[np.arange(n_terms), s["term_neuron"]] = s["term_weight"]
            buf("term_to_neuron", to_neuron)
            pool_sigma = s["pool_sigma"]
            buf("subunit_c50", s["subunit_c50"])
            if self.cross_orientation:
                if len(s[CROSS_ORIENTATION]) != n_sub:
                    raise EggError(
                        f"ground-truth spec: {CROSS_ORIENTATION} has {len(s[CROSS_ORIENTATION])} entries; expected {n_sub}"
                    )
                buf("subunit_maps", maps.T.copy())  # (positions, subunits)
                buf("subunit_type", s["subunit_channel"] // self.bank.orientations, torch.long)  # (frequency, cell type)
                buf(CROSS_ORIENTATION, s[CROSS_ORIENTATION])
                self.opponency = float(s[OPPONENCY])
        else:
            assignment = np.zeros((n_sub, self.n_neurons))
            assignment[np.arange(n_sub), s["subunit_neuron"]] = s["subunit_weight"]
            buf("subunit_to_neuron", assignment)
            pool_sigma = s["rf_sigma"]
        buf("rf_maps", gaussian_maps(s["rf_center"].reshape(-1, 2), pool_sigma, xs).reshape(self.n_neurons, -1).T.copy())
        buf("energy_channels", self.bank.energy_channels(), torch.long)
        for name in CALIBRATION:
            buf(name, s[name])

    @property
    def version(self) -> int:
        """Ground-truth model version (see ``MODEL_VERSION``)."""
        return 3 if self.cross_orientation else 2 if self.conjunctive else 1

    def spec(self) -> dict[str, Any]:
        """Everything needed to rebuild this module (arrays and scalars)."""
        return {k: (np.array(v) if isinstance(v, np.ndarray) else v) for k, v in self._spec.items()}

    def set_calibration(self, **values: np.ndarray) -> None:
        """Update calibration arrays (see ``CALIBRATION``; conjunctive populations also ``subunit_c50``
        and, with cross-orientation normalization, ``subunit_cross_c50``)."""
        for name, value in values.items():
            allowed = (
                CALIBRATION
                + (("subunit_c50",) if self.conjunctive else ())
                + ((CROSS_ORIENTATION,) if self.cross_orientation else ())
            )
            if name not in allowed:
                raise KeyError(name)
            self._spec[name] = np.asarray(value, dtype=np.float64)
            getattr(self, name).copy_(torch.as_tensor(value, dtype=torch.float32))

    def _check_input(self, images_z: torch.Tensor) -> None:
        if images_z.ndim != 4 or tuple(images_z.shape[1:]) != self.input_shape:
            raise EggError(
                f"ground-truth neurons got images of shape {tuple(images_z.shape)}; expected (B, {', '.join(map(str, self.input_shape))})"
            )

    def pooled_subunits(self, images_z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Stage-one features (B, channels, positions) and every subunit's pooled value (subunits, B),
        divided by its all-orientation pool when the population has cross-orientation normalization."""
        self._check_input(images_z)
        features = self.bank(images_z).flatten(2)
        per_channel = torch.bmm(features[:, self.used_channels].transpose(0, 1), self.grouped_maps)  # (used, B, slots)
        pooled = per_channel[self.subunit_group, :, self.subunit_slot]
        if self.cross_orientation:
            local = self.orientation_pool(features)
            pooled = F.relu(pooled - self.opponency * local) / (self.subunit_cross_c50[:, None] + local)
        return features, pooled

    def orientation_pool(self, features: torch.Tensor) -> torch.Tensor:
        """``L_s``: the mean over all orientations of each subunit's cell type at its frequency,
        pooled under its window, (subunits, B)."""
        batch, _, positions = features.shape
        per_type = features.view(batch, -1, self.bank.orientations, positions).mean(2) @ self.subunit_maps  # (B, types, subunits)
        return per_type.gather(1, self.subunit_type.expand(batch, 1, -1)).squeeze(1).T

    def numerator_and_pool(self, images_z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Weighted subunit (or term) sum and normalization pool, each (B, n_neurons)."""
        features, pooled = self.pooled_subunits(images_z)
        if self.conjunctive:
            squared = pooled**2
            saturated = squared / (squared + self.subunit_c50[:, None] ** 2)
            terms = torch.exp(self.subunit_to_term @ torch.log(saturated + TERM_EPS))  # (terms, B) geometric means
            numerator = terms.T @ self.term_to_neuron
        else:
            numerator = pooled.T @ self.subunit_to_neuron
        pool = features[:, self.energy_channels].mean(1) @ self.rf_maps
        return numerator, pool

    def unsaturated_rate(self, numerator: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
        """Normalized, standardized drive through the softplus (before saturation)."""
        drive = numerator / (self.norm_constant + pool)
        u = (drive - self.drive_mean) / self.drive_std
        return self.gain * F.softplus(self.slope * (u - self.threshold)) / self.slope

    def rate(self, numerator: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
        """Stage-two output: expected spikes per trial, saturating at ``max_rate``."""
        return self.max_rate * torch.tanh(self.unsaturated_rate(numerator, pool) / self.max_rate)

    def forward(self, images_z: torch.Tensor) -> torch.Tensor:
        return self.rate(*self.numerator_and_pool(images_z))
