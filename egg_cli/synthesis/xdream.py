"""XDream's genetic algorithm over generator codes (Xiao & Kreiman 2020) as an egg synth method.

The algorithm is :class:`~egg_cli.synthesis.blackbox.genetic.GeneticOptimizer`; generator,
scorer, search loop, curves and resume are :class:`~egg_cli.synthesis.blackbox.gradient_free.GradientFreeMethod`'s.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

import numpy as np

from egg_cli.errors import EggError
from egg_cli.synthesis.blackbox.base import CodeOptimizer
from egg_cli.synthesis.blackbox.generators import CodeGenerator
from egg_cli.synthesis.blackbox.genetic import GeneticOptimizer, GeneticSettings
from egg_cli.synthesis.blackbox.gradient_free import GradientFreeMethod


class XDream(GradientFreeMethod):
    """XDream's genetic algorithm over generator codes (``method=xdream``).

    ``settings`` holds the :class:`GeneticSettings` fields (population_size, selectivity, ...) and
    the search loop's (:class:`GradientFreeMethod`: generator, scorer, ...); ``init_std`` null
    starts from the generator's code scale.
    """

    name = "xdream"

    def __init__(self, budget: int = 3000, init_std: float | None = None, **settings: Any) -> None:
        names = {f.name for f in fields(GeneticSettings)}
        self.genetic = GeneticSettings(**{k: settings.pop(k) for k in list(settings) if k in names})
        if init_std is not None and not init_std > 0:
            raise EggError(f"method.init_std={init_std} must be positive or null (the generator's code scale)")
        self.init_std = None if init_std is None else float(init_std)
        super().__init__(budget=budget, **settings)

    @property
    def population_size(self) -> int:
        return int(self.genetic.population_size)

    def optimizer_settings(self) -> dict[str, Any]:
        return {**asdict(self.genetic), "init_std": self.init_std}

    def make_optimizer(self, rng: np.random.Generator, generator: CodeGenerator) -> CodeOptimizer:
        init_std = self.init_std if self.init_std is not None else generator.code_std
        return GeneticOptimizer(generator.code_dim, rng, init_std, **asdict(self.genetic))
