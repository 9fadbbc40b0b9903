"""Gradient-free synthesis machinery: code optimizers, generators, scorers, the search loop, curves.

The methods built on it are :class:`egg_cli.synthesis.xdream.XDream` and
:class:`egg_cli.synthesis.cmaes.CMAES`. See docs/synthesis.md (``method=xdream|cmaes``) and
docs/closed_loop.md (the rig protocol).
"""

from egg_cli.synthesis.blackbox.base import CodeOptimizer, element_rng
from egg_cli.synthesis.blackbox.cma_optimizers import CMAOptimizer, SphereCMA
from egg_cli.synthesis.blackbox.curves import CurveWriter
from egg_cli.synthesis.blackbox.generators import (
    CodeGenerator,
    DeePSiMFc6,
    DeePSiMGenerator,
    PixelGenerator,
    PriorGenerator,
    deepsim_generator,
    pixel_generator,
    prior_generator,
)
from egg_cli.synthesis.blackbox.genetic import GeneticOptimizer
from egg_cli.synthesis.blackbox.gradient_free import GradientFreeMethod
from egg_cli.synthesis.blackbox.scorers import (
    ObjectiveScorer,
    PoissonScorer,
    Scorer,
    ScorerContext,
    ground_truth_scorer,
    model_scorer,
    with_noise,
)
from egg_cli.synthesis.blackbox.search import SearchOutcome, render, run_search

__all__ = [
    "CMAOptimizer",
    "CodeGenerator",
    "CodeOptimizer",
    "CurveWriter",
    "DeePSiMFc6",
    "DeePSiMGenerator",
    "GeneticOptimizer",
    "GradientFreeMethod",
    "ObjectiveScorer",
    "PixelGenerator",
    "PoissonScorer",
    "PriorGenerator",
    "Scorer",
    "ScorerContext",
    "SearchOutcome",
    "SphereCMA",
    "deepsim_generator",
    "element_rng",
    "ground_truth_scorer",
    "model_scorer",
    "pixel_generator",
    "prior_generator",
    "render",
    "run_search",
    "with_noise",
]
