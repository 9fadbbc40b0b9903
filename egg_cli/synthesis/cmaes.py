"""CMA-ES over generator codes (Wang & Ponce 2022) as an egg synth method.

The optimizers are :class:`~egg_cli.synthesis.blackbox.cma_optimizers.CMAOptimizer` (the ``cma``
package) and :class:`~egg_cli.synthesis.blackbox.cma_optimizers.SphereCMA`; generator, scorer,
search loop, curves and resume are :class:`~egg_cli.synthesis.blackbox.gradient_free.GradientFreeMethod`'s.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

import numpy as np

from egg_cli.errors import EggError
from egg_cli.synthesis.blackbox.base import CodeOptimizer
from egg_cli.synthesis.blackbox.cma_optimizers import CMAOptimizer, CMASettings, SphereCMA
from egg_cli.synthesis.blackbox.generators import CodeGenerator
from egg_cli.synthesis.blackbox.gradient_free import GradientFreeMethod


class CMAES(GradientFreeMethod):
    """CMA-ES over generator codes (``method=cmaes``; ``variant=sphere`` for the sphere-constrained one).

    ``settings`` holds the :class:`CMASettings` fields (population_size, sigma0, covariance,
    full_covariance_max_dim) and the search loop's (:class:`GradientFreeMethod`); the sphere
    variant uses population_size with ``sphere_radius`` (null: the generator's code norm) and
    the angle schedule.
    """

    name = "cmaes"

    def __init__(
        self,
        budget: int = 3000,
        variant: str = "standard",
        sphere_radius: float | None = None,
        angle_start: float = 50.0,
        angle_end: float = 7.3,
        **settings: Any,
    ) -> None:
        names = {f.name for f in fields(CMASettings)}
        self.cma = CMASettings(**{k: settings.pop(k) for k in list(settings) if k in names})
        if variant not in ("standard", "sphere"):
            raise EggError(f"method.variant={variant!r} unknown; expected standard or sphere")
        if sphere_radius is not None and not sphere_radius > 0:
            raise EggError(f"method.sphere_radius={sphere_radius} must be positive or null (the generator's code norm)")
        self.variant = variant
        self.sphere_radius = None if sphere_radius is None else float(sphere_radius)
        self.angle_start = float(angle_start)
        self.angle_end = float(angle_end)
        self.scheduled = variant == "sphere"
        super().__init__(budget=budget, **settings)

    @property
    def population_size(self) -> int:
        return int(self.cma.population_size)

    def optimizer_settings(self) -> dict[str, Any]:
        if self.variant == "sphere":
            return {
                "variant": "sphere",
                "population_size": self.population_size,
                "sphere_radius": self.sphere_radius,
                "angle_start": self.angle_start,
                "angle_end": self.angle_end,
            }
        return {"variant": "standard", **asdict(self.cma)}

    def make_optimizer(self, rng: np.random.Generator, generator: CodeGenerator) -> CodeOptimizer:
        if self.variant == "sphere":
            radius = self.sphere_radius if self.sphere_radius is not None else generator.sphere_radius
            return SphereCMA(
                generator.code_dim, rng, self.generations, self.population_size, radius, self.angle_start, self.angle_end
            )
        return CMAOptimizer(generator.code_dim, rng, **asdict(self.cma))
