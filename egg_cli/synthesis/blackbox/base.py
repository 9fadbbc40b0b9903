"""What every gradient-free code optimizer provides: ask / tell on one problem's codes.

One optimizer instance works on one (problem, seed) element; several neurons run in parallel
as several instances whose generations are generated and scored in one batch. Scores are
maximized; NaN marks an image the scorer did not score (a closed-loop rig may skip images).
Optimizers are plain Python objects that pickle with their random state, so a search resumes
exactly where its last saved generation ended.
"""

from __future__ import annotations

import numpy as np


class CodeOptimizer:
    """Base class of the gradient-free optimizers over generator codes."""

    name = "optimizer"
    population_size: int
    dim: int

    def ask(self) -> np.ndarray:
        """Codes of the next generation, (population_size, dim)."""
        raise NotImplementedError

    def tell(self, codes: np.ndarray, scores: np.ndarray) -> None:
        """Report the scores (population_size,) of the codes from the last :meth:`ask` (NaN: unscored)."""
        raise NotImplementedError

    def recommendation(self) -> np.ndarray:
        """The optimizer's current answer, (dim,): its best guess at the optimum."""
        raise NotImplementedError


def element_rng(seed: int, problem: int, stream: int = 0) -> np.random.Generator:
    """The random stream of one (seed, problem) element: independent of what else is in the batch."""
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(problem), int(stream)]))


def finite_scores(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(scores as float64, mask of the finite ones)."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    return scores, np.isfinite(scores)
