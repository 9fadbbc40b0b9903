"""CMA-ES over generator codes (Hansen's ``cma`` package) and a sphere-constrained variant.

:class:`CMAOptimizer` wraps ``cma.CMAEvolutionStrategy``: population 40, start at code 0 with
step size ``sigma0`` (Wang & Ponce 2022 recommend 2-3 for budgets up to about 3,000 images).
The full covariance is learned up to ``full_covariance_max_dim`` dimensions; above it the
diagonal (separable) CMA of the same package is used, because the full update costs O(D^2)
memory and eigendecompositions (measured: 1.2 s per generation at D=4096 against 0.009 s for
the diagonal form, per neuron, on one CPU core). Every instance draws from its own
``numpy.random.Generator`` (the package's ``seed`` option would reseed numpy's global
generator, coupling neurons run side by side). The package's stopping rules are switched off:
the budget alone ends a search. Unscored images (NaN) are ranked last.

:class:`SphereCMA` (``variant=sphere``, written here because ``cma`` has no manifold version)
searches on the sphere of radius ``sphere_radius`` (the code norm; 300 for DeePSiM codes) after
Wang & Ponce's SphereCMA: candidates are exponential-map steps from the mean direction along
random tangent directions at an angle that decays geometrically from ``angle_start`` (50
degrees) to ``angle_end`` (7.3 degrees) over the planned generations; the mean moves along the
log-rank weighted sum of the best half's tangent steps. It adapts no covariance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from egg_cli.errors import EggError
from egg_cli.runtime import optional_import
from egg_cli.synthesis.blackbox.base import CodeOptimizer, finite_scores

COVARIANCES = ("auto", "full", "diagonal")


class _Randn:
    """``randn(*shape)`` drawn from one element's generator (picklable, for ``cma``'s ``randn`` option)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def __call__(self, *shape: int) -> np.ndarray:
        return self.rng.standard_normal(shape)


def _rank_last(scores: np.ndarray) -> np.ndarray:
    """Scores with NaN replaced by a value below every finite score (or 0 when none is finite)."""
    scores, ok = finite_scores(scores)
    if ok.all():
        return scores
    if not ok.any():
        return np.zeros_like(scores)
    low, high = scores[ok].min(), scores[ok].max()
    return np.where(ok, scores, low - max(1.0, high - low))


@dataclass(frozen=True)
class CMASettings:
    """Settings of :class:`CMAOptimizer` (Wang & Ponce 2022: population 40, sigma0 2-3); bad values raise EggError."""

    population_size: int = 40
    sigma0: float = 3.0
    covariance: str = "auto"  # auto: full up to full_covariance_max_dim dimensions, diagonal above
    full_covariance_max_dim: int = 1024

    def __post_init__(self) -> None:
        if int(self.population_size) < 2:
            raise EggError(f"method.population_size={self.population_size} must be at least 2 (Wang & Ponce: 40)")
        if not self.sigma0 > 0:
            raise EggError(f"method.sigma0={self.sigma0} must be positive (Wang & Ponce: 2-3)")
        if self.covariance not in COVARIANCES:
            raise EggError(f"method.covariance={self.covariance!r} unknown; expected one of {COVARIANCES}")


class CMAOptimizer(CodeOptimizer):
    """CMA-ES from the ``cma`` package for one (problem, seed) element (maximizes scores);
    ``settings`` are :class:`CMASettings` fields."""

    name = "cmaes"

    def __init__(self, dim: int, rng: np.random.Generator, **settings: Any) -> None:
        settings_ = CMASettings(**settings)
        cma = optional_import("cma", "cmaes", "method=cmaes")
        self.dim = int(dim)
        self.population_size = int(settings_.population_size)
        self.sigma0 = float(settings_.sigma0)
        covariance = settings_.covariance
        diagonal = covariance == "diagonal" or (covariance == "auto" and self.dim > int(settings_.full_covariance_max_dim))
        self.covariance = "diagonal" if diagonal else "full"
        options: dict[str, Any] = {
            "popsize": self.population_size,
            "randn": _Randn(rng),
            "CMA_diagonal": diagonal,
            "verbose": -9,
            "maxiter": math.inf,
            "maxfevals": math.inf,
            "tolx": 0.0,
            "tolfun": 0.0,
            "tolfunhist": 0.0,
            "tolfunrel": 0.0,
            "tolflatfitness": 10**9,
            "tolstagnation": 10**9,
            "tolconditioncov": math.inf,
            "tolupsigma": math.inf,
        }
        self.es = cma.CMAEvolutionStrategy(np.zeros(self.dim), self.sigma0, options)
        self._pending: np.ndarray | None = None

    def ask(self) -> np.ndarray:
        if self._pending is None:
            self._pending = np.asarray(self.es.ask(), dtype=np.float64)
        return self._pending.copy()

    def tell(self, codes: np.ndarray, scores: np.ndarray) -> None:
        if self._pending is None:
            raise EggError("cmaes: tell() without ask(); expected one tell per generation")
        scores, ok = finite_scores(scores)
        if len(scores) != len(self._pending):
            raise EggError(f"cmaes: got {len(scores)} scores for {len(self._pending)} codes; expected one per code")
        if ok.any():
            self.es.tell(list(self._pending), list(-_rank_last(scores)))
        self._pending = None

    def recommendation(self) -> np.ndarray:
        """The mean of the search distribution."""
        return np.asarray(self.es.mean, dtype=np.float64).copy()

    @property
    def sigma(self) -> float:
        return float(self.es.sigma)


def exp_map(mean: np.ndarray, tangent: np.ndarray) -> np.ndarray:
    """Points on the unit sphere reached from unit ``mean`` along tangent vectors (rows; length = angle)."""
    angle = np.linalg.norm(tangent, axis=-1, keepdims=True)
    direction = tangent / np.maximum(angle, 1e-300)
    return np.cos(angle) * mean + np.sin(angle) * direction


class SphereCMA(CodeOptimizer):
    """Sphere-constrained evolution strategy (after Wang & Ponce's SphereCMA) for one element."""

    name = "cmaes_sphere"

    def __init__(
        self,
        dim: int,
        rng: np.random.Generator,
        generations: int,
        population_size: int = 40,
        sphere_radius: float = 1.0,
        angle_start: float = 50.0,
        angle_end: float = 7.3,
    ) -> None:
        if int(population_size) < 2:
            raise EggError(f"method.population_size={population_size} must be at least 2")
        if not sphere_radius > 0:
            raise EggError(f"method.sphere_radius={sphere_radius} must be positive")
        if not 0 < angle_end <= angle_start < 180:
            raise EggError(
                f"method.angle_start={angle_start} and angle_end={angle_end} must satisfy 0 < end <= start < 180 (degrees)"
            )
        self.dim = int(dim)
        self.rng = rng
        self.population_size = int(population_size)
        self.radius = float(sphere_radius)
        self.generations = max(1, int(generations))
        self.angle_start = math.radians(angle_start)
        self.angle_end = math.radians(angle_end)
        start = rng.standard_normal(self.dim)
        self.mean = start / np.linalg.norm(start)
        self.generation = 0
        mu = self.population_size // 2
        weights = np.log(mu + 0.5) - np.log(np.arange(1, mu + 1))
        self.weights = weights / weights.sum()
        self._tangents: np.ndarray | None = None

    def angle(self) -> float:
        """Angular step (radians) of the current generation: geometric decay start -> end."""
        frac = min(1.0, self.generation / max(1, self.generations - 1))
        return self.angle_start * (self.angle_end / self.angle_start) ** frac

    def ask(self) -> np.ndarray:
        if self._tangents is None:
            z = self.rng.standard_normal((self.population_size, self.dim))
            z -= (z @ self.mean)[:, None] * self.mean[None, :]
            z /= np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-300)
            self._tangents = z * self.angle()
        return self.radius * exp_map(self.mean, self._tangents)

    def tell(self, codes: np.ndarray, scores: np.ndarray) -> None:
        if self._tangents is None:
            raise EggError("cmaes (sphere): tell() without ask(); expected one tell per generation")
        scores, ok = finite_scores(scores)
        if len(scores) != self.population_size:
            raise EggError(f"cmaes (sphere): got {len(scores)} scores for {self.population_size} codes")
        if ok.any():
            order = np.argsort(-_rank_last(scores), kind="stable")[: len(self.weights)]
            step = self.weights @ self._tangents[order]
            new = exp_map(self.mean, step[None, :])[0]
            self.mean = new / np.linalg.norm(new)
        self.generation += 1
        self._tangents = None

    def recommendation(self) -> np.ndarray:
        """The mean direction on the sphere, at the sphere's radius."""
        return self.radius * self.mean.copy()
