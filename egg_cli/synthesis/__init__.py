"""Synthesis: objectives, the generator-to-model adapter, GA, EGG, XDream, CMA-ES, batching and results.

Library use (the CLI ``egg synth`` is a thin wrapper over these)::

    from egg_cli.synthesis import GradientAscent, NeuronObjective, synthesize
    result = synthesize(GradientAscent(steps=1000), NeuronObjective(model, [3, 7]), seeds=[0, 1, 2],
                        device=torch.device("cpu"))
"""

from egg_cli.synthesis.adapter import ImageAdapter, contrast_norm, project_norm
from egg_cli.synthesis.cmaes import CMAES
from egg_cli.synthesis.egg import EnergyGuidedDiffusion
from egg_cli.synthesis.ga import GradientAscent
from egg_cli.synthesis.objectives import NeuronObjective, Objective, ReconstructionObjective, select_neurons
from egg_cli.synthesis.reference import natural_reference
from egg_cli.synthesis.results import SynthesisResult, read_synthesis, write_synthesis
from egg_cli.synthesis.runner import rescore, synthesize
from egg_cli.synthesis.xdream import XDream

__all__ = [
    "CMAES",
    "EnergyGuidedDiffusion",
    "GradientAscent",
    "ImageAdapter",
    "NeuronObjective",
    "Objective",
    "ReconstructionObjective",
    "SynthesisResult",
    "contrast_norm",
    "natural_reference",
    "project_norm",
    "read_synthesis",
    "rescore",
    "select_neurons",
    "synthesize",
    "write_synthesis",
    "XDream",
]
