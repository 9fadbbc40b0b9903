"""What every synthesis method provides to the runner."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from egg_cli.synthesis.adapter import ImageAdapter
from egg_cli.synthesis.objectives import Objective

#: called once per optimization step with the number of steps done in the current chunk
StepCallback = Callable[[int], None]


@dataclass
class GeneratorSpace:
    """Shape (C, H, W) and kind (``zscored`` or ``diffusion``) of the images a method produces."""

    shape: tuple[int, int, int]
    space: str


@dataclass
class MethodOutput:
    """One chunk's results; every tensor has the chunk's batch size first."""

    images: torch.Tensor  # what the model saw: (B, C, H, W), z-scored, fixed contrast
    scores: torch.Tensor  # objective of ``images`` in the generating model, (B,)
    trace: torch.Tensor  # objective during the optimization, (B, steps)
    generator_images: torch.Tensor | None = None  # the generator's own output (EGG: RGB in [-1, 1])
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # method-specific (B, ...) arrays, e.g. codes


@dataclass
class MethodInfo:
    """Name and resolved settings of a method, saved with the results."""

    name: str
    settings: dict[str, Any] = field(default_factory=dict)


class SynthesisMethod:
    """Optimizes images for an objective; subclasses implement ``prepare``, ``run`` and ``probe``."""

    name = "method"
    #: True when batch elements of one problem interact (diversity): chunks then hold whole problems
    couples_seeds = False

    def prepare(self, objective: Objective, model_shape: Sequence[int], device: torch.device) -> GeneratorSpace:
        """Resolve settings that depend on the objective and load what the method needs."""
        raise NotImplementedError

    def run(
        self,
        objective: Objective,
        problem: torch.Tensor,
        seeds: Sequence[int],
        adapter: ImageAdapter,
        device: torch.device,
        on_step: StepCallback | None = None,
    ) -> MethodOutput:
        """Optimize one chunk: element ``b`` works on ``problem[b]`` from seed ``seeds[b]``."""
        raise NotImplementedError

    def probe(self, objective: Objective, adapter: ImageAdapter, device: torch.device, batch: int = 1) -> None:
        """One step's forward and backward pass at batch size ``batch`` (for memory estimates)."""
        raise NotImplementedError

    @property
    def steps(self) -> int:
        raise NotImplementedError

    def info(self) -> MethodInfo:
        raise NotImplementedError
