"""The XDream genetic algorithm over generator codes (Xiao & Kreiman 2020; Ponce et al. 2019).

One generation: the population (default 20 codes) is scored; scores are clipped at their 95th
percentile; fitness is ``exp((score - best) / kT)`` with ``kT = std(scores) / selectivity``; the
``n_elites`` best codes pass unchanged (and are scored again next generation, so a lucky noisy
score does not stick); every other child takes two parents drawn with replacement in proportion
to fitness, each gene from the first parent with probability ``heritability``, and each gene is
mutated with probability ``mutation_rate`` by Gaussian noise of standard deviation
``mutation_size``. Unscored images (NaN) get zero fitness and are never elites.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from egg_cli.errors import EggError
from egg_cli.synthesis.blackbox.base import CodeOptimizer, finite_scores

log = logging.getLogger(__name__)


def xdream_fitness(scores: np.ndarray, selectivity: float, clip_percentile: float | None) -> np.ndarray:
    """Selection probabilities of a generation (NaN scores get 0; all-equal scores: uniform)."""
    scores, ok = finite_scores(scores)
    fitness = np.zeros_like(scores)
    if not ok.any():
        return fitness
    valid = scores[ok]
    if clip_percentile is not None:
        valid = np.minimum(valid, np.percentile(valid, clip_percentile))
    kt = valid.std() / selectivity
    if not kt > 0:
        fitness[ok] = 1.0
    else:
        fitness[ok] = np.exp((valid - valid.max()) / kt)
    return fitness / fitness.sum()


@dataclass(frozen=True)
class GeneticSettings:
    """XDream's settings (defaults of Xiao & Kreiman 2020); out-of-range values raise EggError."""

    population_size: int = 20
    selectivity: float = 2.0
    heritability: float = 0.5
    mutation_rate: float = 0.5
    mutation_size: float = 0.5
    n_elites: int = 2
    clip_percentile: float | None = 95.0

    def __post_init__(self) -> None:
        if int(self.population_size) < 2:
            raise EggError(f"method.population_size={self.population_size} must be at least 2")
        if not self.selectivity > 0:
            raise EggError(f"method.selectivity={self.selectivity} must be positive (XDream: 2)")
        if not 0.0 <= self.heritability <= 1.0:
            raise EggError(f"method.heritability={self.heritability} must be in [0, 1] (XDream: 0.5)")
        if not 0.0 <= self.mutation_rate <= 1.0:
            raise EggError(f"method.mutation_rate={self.mutation_rate} must be in [0, 1] (XDream: 0.5)")
        if self.mutation_size < 0:
            raise EggError(f"method.mutation_size={self.mutation_size} must be non-negative (XDream: 0.5)")
        if not 0 <= int(self.n_elites) < int(self.population_size):
            raise EggError(f"method.n_elites={self.n_elites} must be in [0, population_size={self.population_size})")
        if self.clip_percentile is not None and not 0.0 < self.clip_percentile <= 100.0:
            raise EggError(f"method.clip_percentile={self.clip_percentile} must be in (0, 100] or null (XDream: 95)")


class GeneticOptimizer(CodeOptimizer):
    """XDream's genetic algorithm for one (problem, seed) element; ``settings`` are :class:`GeneticSettings` fields."""

    name = "xdream"

    def __init__(self, dim: int, rng: np.random.Generator, init_std: float = 1.0, **settings: Any) -> None:
        self.settings = GeneticSettings(**settings)
        self.dim = int(dim)
        self.rng = rng
        self.population_size = int(self.settings.population_size)
        self.population = rng.normal(0.0, float(init_std), size=(self.population_size, self.dim))
        self._best = self.population[0].copy()

    def ask(self) -> np.ndarray:
        return self.population.copy()

    def tell(self, codes: np.ndarray, scores: np.ndarray) -> None:
        codes = np.asarray(codes, dtype=np.float64)
        scores, ok = finite_scores(scores)
        if len(scores) != len(codes):
            raise EggError(f"xdream: got {len(scores)} scores for {len(codes)} codes; expected one score per code")
        if not ok.any():
            log.warning("xdream: no image of this generation was scored; the population is shown again")
            self.population = codes.copy()
            return
        ranked = np.argsort(-np.where(ok, scores, -np.inf), kind="stable")
        self._best = codes[ranked[0]].copy()
        n_elites = min(int(self.settings.n_elites), int(ok.sum()))
        elites = codes[ranked[:n_elites]]
        fitness = xdream_fitness(scores, self.settings.selectivity, self.settings.clip_percentile)
        n_children = self.population_size - n_elites
        parents = self.rng.choice(len(codes), size=(n_children, 2), replace=True, p=fitness)
        from_first = self.rng.random((n_children, self.dim)) < self.settings.heritability
        children = np.where(from_first, codes[parents[:, 0]], codes[parents[:, 1]])
        mutate = self.rng.random((n_children, self.dim)) < self.settings.mutation_rate
        children = children + mutate * self.rng.normal(0.0, self.settings.mutation_size, size=children.shape)
        self.population = np.concatenate([elites, children])

    def recommendation(self) -> np.ndarray:
        """The best-scored code of the last generation (an elite of the next one)."""
        return self._best.copy()
