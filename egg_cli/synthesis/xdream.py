"""XDream's genetic algorithm over generator codes (Xiao & Kreiman 2020) as an egg synth method.

The algorithm is :class:`~egg_cli.synthesis.blackbox.genetic.GeneticOptimizer`; generator,
scorer, search loop, curves and resume are :class:`~egg_cli.synthesis.blackbox.gradient_free.GradientFreeMethod`'s.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from egg_cli.errors import EggError
from egg_cli.synthesis.blackbox.base import CodeOptimizer
from egg_cli.synthesis.blackbox.generators import CodeGenerator
from egg_cli.synthesis.blackbox.genetic import GeneticOptimizer, check_settings
from egg_cli.synthesis.blackbox.gradient_free import GradientFreeMethod


class XDream(GradientFreeMethod):
    """XDream's genetic algorithm over generator codes (``method=xdream``)."""

    name = "xdream"

    def __init__(
        self,
        budget: int = 3000,
        population_size: int = 20,
        selectivity: float = 2.0,
        heritability: float = 0.5,
        mutation_rate: float = 0.5,
        mutation_size: float = 0.5,
        n_elites: int = 2,
        clip_percentile: float | None = 95.0,
        init_std: float | None = None,
        **common: Any,
    ) -> None:
        check_settings(population_size, selectivity, heritability, mutation_rate, mutation_size, n_elites, clip_percentile)
        if init_std is not None and not init_std > 0:
            raise EggError(f"method.init_std={init_std} must be positive or null (the generator's code scale)")
        self.population_size = int(population_size)
        self.selectivity = float(selectivity)
        self.heritability = float(heritability)
        self.mutation_rate = float(mutation_rate)
        self.mutation_size = float(mutation_size)
        self.n_elites = int(n_elites)
        self.clip_percentile = None if clip_percentile is None else float(clip_percentile)
        self.init_std = None if init_std is None else float(init_std)
        super().__init__(budget=budget, **common)

    def optimizer_settings(self) -> dict[str, Any]:
        return {
            "population_size": self.population_size,
            "selectivity": self.selectivity,
            "heritability": self.heritability,
            "mutation_rate": self.mutation_rate,
            "mutation_size": self.mutation_size,
            "n_elites": self.n_elites,
            "clip_percentile": self.clip_percentile,
            "init_std": self.init_std,
        }

    def make_optimizer(self, rng: np.random.Generator, generator: CodeGenerator) -> CodeOptimizer:
        init_std = self.init_std if self.init_std is not None else generator.code_std
        return GeneticOptimizer(
            generator.code_dim,
            rng,
            self.population_size,
            self.selectivity,
            self.heritability,
            self.mutation_rate,
            self.mutation_size,
            self.n_elites,
            self.clip_percentile,
            init_std,
        )
