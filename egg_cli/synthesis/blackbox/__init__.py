"""Gradient-free synthesis for black boxes: XDream and CMA-ES over generator codes, closed loop.

See docs/synthesis.md (``method=xdream|cmaes``) and docs/closed_loop.md (the rig protocol).
"""

from egg_cli.synthesis.blackbox.base import CodeOptimizer, element_rng
from egg_cli.synthesis.blackbox.cmaes import CMAOptimizer, SphereCMA
from egg_cli.synthesis.blackbox.generators import (
    CodeGenerator,
    DeePSiMFc6,
    DeePSiMGenerator,
    PixelGenerator,
    PriorGenerator,
    build_generator,
)
from egg_cli.synthesis.blackbox.methods import CMAES, XDream
from egg_cli.synthesis.blackbox.scorers import ObjectiveScorer, PoissonScorer, Scorer
from egg_cli.synthesis.blackbox.search import SearchOutcome, render, run_search
from egg_cli.synthesis.blackbox.xdream import GeneticOptimizer

__all__ = [
    "CMAES",
    "CMAOptimizer",
    "CodeGenerator",
    "CodeOptimizer",
    "DeePSiMFc6",
    "DeePSiMGenerator",
    "GeneticOptimizer",
    "ObjectiveScorer",
    "PixelGenerator",
    "PoissonScorer",
    "PriorGenerator",
    "Scorer",
    "SearchOutcome",
    "SphereCMA",
    "XDream",
    "build_generator",
    "element_rng",
    "render",
    "run_search",
]
