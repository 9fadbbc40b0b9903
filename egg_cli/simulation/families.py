"""Neuron families of the V4-like world: conjunctions of stage-one subunits (corners, curves, textures, blobs).

Each family returns the *terms* of one neuron: a term is a list of subunits (stage-one channel,
pooling centre, pooling sigma) whose geometric mean is a soft AND (see
:mod:`egg_cli.simulation.neurons`). A grating drives one orientation at a time, so a term whose
parts need different orientations at different places (a corner, a curved contour fragment) or
several orientations at one place (a texture, a spot) is driven far better by its own
conjunction than by any grating or Gabor patch.

Geometry: positions are normalized image coordinates (x right, y down, the image spans
[-1, 1]); a stage-one filter at orientation theta has bars (and edges) that run along the
direction (cos theta, sin theta).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from egg_cli.simulation.neurons import CELL_TYPES, ENERGY, channel_index

FAMILIES = ("grating", "corner", "curve", "texture", "blob")


@dataclass(frozen=True)
class Subunit:
    """One stage-one channel pooled under a Gaussian window."""

    channel: int
    center: tuple[float, float]
    sigma: float


@dataclass(frozen=True)
class Layout:
    """What a family needs to know about stage one and the neuron's receptive field."""

    orientations: int
    wavelengths: np.ndarray  # normalized units, one per stage-one frequency
    rf_center: np.ndarray  # (2,)
    rf_sigma: float

    def channel(self, freq: int, ori: int, cell: int) -> int:
        return channel_index(freq, ori % self.orientations, cell, self.orientations)

    def orientation_index(self, angle: float) -> int:
        """Nearest stage-one orientation to ``angle`` (radians, modulo pi)."""
        return int(round(angle / (math.pi / self.orientations))) % self.orientations


def _contour_cell(rng: np.random.Generator) -> int:
    """Energy (phase-invariant) or an edge-like odd simple cell of either polarity."""
    return ENERGY if rng.random() < 0.5 else int(rng.choice([CELL_TYPES.index("odd_on"), CELL_TYPES.index("odd_off")]))


def _fine_frequency(layout: Layout, rng: np.random.Generator) -> int:
    """A frequency for contour parts: any but the coarsest when there is a choice."""
    order = np.argsort(layout.wavelengths)
    return int(order[rng.integers(max(1, len(order) - 1))])


def grating(layout: Layout, rng: np.random.Generator) -> list[list[Subunit]]:
    """One orientation and frequency, energy pooled over the field: a grating detector (the easy control)."""
    ori, freq = int(rng.integers(layout.orientations)), int(rng.integers(len(layout.wavelengths)))
    center = layout.rf_center + rng.normal(0, 0.2 * layout.rf_sigma, size=2)
    return [[Subunit(layout.channel(freq, ori, ENERGY), tuple(center), layout.rf_sigma * rng.uniform(0.6, 1.0))]]


def corner(layout: Layout, rng: np.random.Generator) -> list[list[Subunit]]:
    """Two contour arms meeting at a vertex at an angle of 45-135 degrees: an angle or corner detector."""
    freq = _fine_frequency(layout, rng)
    wavelength = layout.wavelengths[freq]
    vertex = layout.rf_center + rng.normal(0, 0.3 * layout.rf_sigma, size=2)
    first = rng.uniform(0, 2 * math.pi)
    opening = rng.uniform(math.pi / 4, 3 * math.pi / 4) * rng.choice([-1, 1])
    arm = wavelength * rng.uniform(0.7, 1.1)
    parts = []
    for direction in (first, first + opening):
        center = vertex + arm * np.array([math.cos(direction), math.sin(direction)])
        channel = layout.channel(freq, layout.orientation_index(direction), _contour_cell(rng))
        parts.append(Subunit(channel, tuple(center), wavelength * rng.uniform(0.45, 0.6)))
    return [parts]


def curve(layout: Layout, rng: np.random.Generator) -> list[list[Subunit]]:
    """Three contour parts tangent to a circular arc (boundary curvature at an angular position)."""
    freq = _fine_frequency(layout, rng)
    wavelength = layout.wavelengths[freq]
    radius = wavelength * rng.uniform(0.9, 1.8)
    middle = rng.uniform(0, 2 * math.pi)  # angular position of the arc's middle around its centre of curvature
    # arc spacing of about one wavelength, and at least one stage-one orientation step between neighbouring tangents
    step = max(rng.uniform(0.6, 0.9) * wavelength / radius, 1.2 * math.pi / layout.orientations)
    point = layout.rf_center + rng.normal(0, 0.3 * layout.rf_sigma, size=2)
    origin = point - radius * np.array([math.cos(middle), math.sin(middle)])
    parts = []
    for k in (-1, 0, 1):
        angle = middle + k * step
        center = origin + radius * np.array([math.cos(angle), math.sin(angle)])
        channel = layout.channel(freq, layout.orientation_index(angle + math.pi / 2), _contour_cell(rng))
        parts.append(Subunit(channel, tuple(center), wavelength * rng.uniform(0.45, 0.6)))
    return [parts]


def texture(layout: Layout, rng: np.random.Generator) -> list[list[Subunit]]:
    """Energy at three different orientations (and possibly frequencies) over a broad window: a texture."""
    orientations = rng.choice(layout.orientations, size=min(3, layout.orientations), replace=False)
    center = layout.rf_center + rng.normal(0, 0.2 * layout.rf_sigma, size=2)
    base = int(rng.integers(len(layout.wavelengths)))
    parts = []
    for ori in orientations:
        freq = base if rng.random() < 0.6 else int(rng.integers(len(layout.wavelengths)))
        parts.append(Subunit(layout.channel(freq, int(ori), ENERGY), tuple(center), layout.rf_sigma * rng.uniform(0.5, 0.8)))
    return [parts]


def blob(layout: Layout, rng: np.random.Generator) -> list[list[Subunit]]:
    """Energy at four evenly spaced orientations in one small window: a spot or ring of one size."""
    freq = int(rng.integers(len(layout.wavelengths)))
    wavelength = layout.wavelengths[freq]
    center = layout.rf_center + rng.normal(0, 0.3 * layout.rf_sigma, size=2)
    sigma = wavelength * rng.uniform(0.5, 0.8)
    step = max(1, layout.orientations // 4)
    first = int(rng.integers(layout.orientations))
    return [[Subunit(layout.channel(freq, first + k * step, ENERGY), tuple(center), sigma) for k in range(4)]]


BUILDERS: dict[str, Callable[[Layout, np.random.Generator], list[list[Subunit]]]] = {
    "grating": grating,
    "corner": corner,
    "curve": curve,
    "texture": texture,
    "blob": blob,
}


def suppressive_terms(layout: Layout, count: int, rng: np.random.Generator) -> list[list[Subunit]]:
    """Single-subunit energy terms over the receptive field that the family's weights make inhibitory."""
    terms = []
    for _ in range(count):
        ori, freq = int(rng.integers(layout.orientations)), int(rng.integers(len(layout.wavelengths)))
        center = layout.rf_center + rng.normal(0, 0.3 * layout.rf_sigma, size=2)
        terms.append([Subunit(layout.channel(freq, ori, ENERGY), tuple(center), layout.rf_sigma * rng.uniform(0.6, 1.0))])
    return terms
