"""Scorers for gradient-free search: who answers "how strongly does this image drive the neuron?".

A scorer sees the images exactly as the model would (z-scored, fixed contrast, the output of the
synth adapter) together with the element (problem, seed) each image belongs to, and returns one
score per image (NaN: not scored).

- :class:`ObjectiveScorer`: the synth objective in any response model (an egg model or
  ensemble, or the ground-truth neurons of a simulated dataset via ``objective.with_model``).
- :class:`PoissonScorer`: spike-count noise on top of a rate scorer. Rates are scaled per
  problem so that the reference rate (the neuron's best natural image at the synthesis contrast)
  gives ``max_count`` expected spikes; a count is drawn from each image's Poisson distribution
  and reported back in rate units (count x reference / max_count), so scores stay comparable
  across noise levels. Xiao & Kreiman 2020 used 20 expected spikes.
- :class:`~egg_cli.synthesis.blackbox.closed_loop.ClosedLoopScorer`: a recording rig.

``configs/scorer/*.yaml`` name one builder each (``_target_``: :func:`model_scorer`,
:func:`ground_truth_scorer`, :func:`~egg_cli.synthesis.blackbox.closed_loop.closed_loop_scorer`),
called by the method as ``builder(context, **options)`` with a :class:`ScorerContext`;
:func:`with_noise` adds ``method.noise`` on top.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from egg_cli.errors import EggError
from egg_cli.synthesis.adapter import ImageAdapter
from egg_cli.synthesis.blackbox.base import element_rng
from egg_cli.synthesis.objectives import NeuronObjective, Objective


class Scorer:
    """Base class: ``begin`` once per search, then ``score`` once per generation."""

    name = "scorer"
    noisy = False

    def begin(self, problem: torch.Tensor, seeds: Sequence[int]) -> None:
        """Elements of the search: element ``b`` optimizes ``problem[b]`` from ``seeds[b]``."""
        self.problem = problem.detach().cpu().long()
        self.seeds = [int(s) for s in seeds]

    def score(self, images: torch.Tensor, element: np.ndarray, generation: int) -> np.ndarray:
        """Scores (N,) of model-input images (N, C, H, W); ``element[i]`` is the element of image i."""
        raise NotImplementedError

    def expected(self, images: torch.Tensor, element: np.ndarray) -> np.ndarray | None:
        """Noise-free scores where the scorer knows them (models, simulations), else None."""
        return None

    def state(self) -> Any:
        """Random state to save with the search (resume)."""
        return None

    def load_state(self, state: Any) -> None:
        """Restore what :meth:`state` returned."""

    def finish(self) -> None:
        """Called once when the search ends."""

    def settings(self) -> dict[str, Any]:
        return {"scorer": self.name}


class ObjectiveScorer(Scorer):
    """The objective's score in its model, evaluated in batches without gradients."""

    name = "model"

    def __init__(self, objective: Objective, device: torch.device, batch_size: int = 64, name: str = "model") -> None:
        if int(batch_size) < 1:
            raise EggError(f"method.eval_batch_size={batch_size} must be a positive integer")
        self.objective = objective
        self.device = device
        self.batch_size = int(batch_size)
        self.name = name

    @torch.no_grad()
    def score(self, images: torch.Tensor, element: np.ndarray, generation: int = 0) -> np.ndarray:
        problem = self.problem[torch.as_tensor(np.asarray(element), dtype=torch.long)]
        out = []
        for i in range(0, len(images), self.batch_size):
            batch = images[i : i + self.batch_size].to(self.device)
            out.append(self.objective(batch, problem[i : i + self.batch_size].to(self.device)).float().cpu())
        return torch.cat(out).double().numpy() if out else np.zeros(0)

    def expected(self, images: torch.Tensor, element: np.ndarray) -> np.ndarray:
        return self.score(images, element)


class PoissonScorer(Scorer):
    """Poisson spike counts at ``max_count`` expected spikes for the reference rate, in rate units."""

    noisy = True

    def __init__(self, rates: ObjectiveScorer, max_count: float, reference: np.ndarray | Sequence[float]) -> None:
        objective = rates.objective
        if not isinstance(objective, NeuronObjective) or objective.inhibitory:
            raise EggError(
                f"method.noise.max_count needs firing rates: objective=neuron (excitatory), got objective={objective.name}"
                + (" with inhibitory=true" if getattr(objective, "inhibitory", False) else "")
            )
        if not max_count > 0:
            raise EggError(
                f"method.noise.max_count={max_count} must be positive (expected spikes for the reference rate) or null"
            )
        reference = np.asarray(reference, dtype=np.float64)
        if reference.shape != (objective.n_problems,) or not np.all(reference > 0):
            raise EggError(
                f"noise reference rates must be positive, one per neuron ({objective.n_problems}); got {reference.tolist()}: "
                "a neuron that no natural image drives cannot be given a spike-count scale"
            )
        self.rates = rates
        self.max_count = float(max_count)
        self.reference = reference
        self.name = f"{rates.name}+poisson{self.max_count:g}"
        self.rngs: list[np.random.Generator] = []

    def begin(self, problem: torch.Tensor, seeds: Sequence[int]) -> None:
        super().begin(problem, seeds)
        self.rates.begin(problem, seeds)
        self.rngs = [element_rng(s, int(p), stream=1) for p, s in zip(self.problem.tolist(), self.seeds)]

    def score(self, images: torch.Tensor, element: np.ndarray, generation: int = 0) -> np.ndarray:
        element = np.asarray(element)
        rates = np.clip(self.rates.score(images, element, generation), 0.0, None)
        scale = self.max_count / self.reference[self.problem.numpy()[element]]
        lam = rates * scale
        counts = np.empty_like(lam)
        for b in np.unique(element):  # each element's noise comes from its own stream, in image order
            rows = np.flatnonzero(element == b)
            counts[rows] = self.rngs[b].poisson(lam[rows])
        return counts / scale

    def expected(self, images: torch.Tensor, element: np.ndarray) -> np.ndarray:
        return self.rates.score(images, element)

    def state(self) -> Any:
        return [rng.bit_generator.state for rng in self.rngs]

    def load_state(self, state: Any) -> None:
        if state is None:
            return
        for rng, saved in zip(self.rngs, state):
            rng.bit_generator.state = saved

    def settings(self) -> dict[str, Any]:
        return {"scorer": self.rates.name, "noise_max_count": self.max_count, "noise_reference": self.reference.tolist()}


@dataclass
class ScorerContext:
    """What a scorer builder may need: the objective, the adapter's image units, the run folder."""

    objective: Objective
    adapter: ImageAdapter
    device: torch.device
    batch_size: int
    work_dir: Path | None  # the run folder (closed loop: default exchange folder)
    session: str = ""  # distinguishes the chunks of one run (closed-loop file names)


def dataset_of(objective: Objective, dataset: str | None, what: str) -> str:
    """``dataset`` if set, else the dataset the generating model was trained on."""
    path = dataset or getattr(objective.model, "dataset_path", None)
    if not path:
        raise EggError(f"{what} needs a dataset: set dataset_path=<dataset.h5> (the model records none)")
    return str(path)


def model_scorer(context: ScorerContext) -> ObjectiveScorer:
    """``scorer=model``: the objective in the generating model."""
    return ObjectiveScorer(context.objective, context.device, context.batch_size, name="model")


def ground_truth_scorer(context: ScorerContext, dataset: str | None = None) -> ObjectiveScorer:
    """``scorer=ground_truth``: the objective in the ground-truth neurons of a simulated dataset."""
    from egg_cli.simulation import load_ground_truth

    truth = load_ground_truth(dataset_of(context.objective, dataset, "scorer=ground_truth"), context.device)
    return ObjectiveScorer(context.objective.with_model(truth), context.device, context.batch_size, name="ground_truth")


def with_noise(scorer: Scorer, noise: Mapping[str, Any], context: ScorerContext) -> Scorer:
    """``scorer`` with Poisson spike noise at ``noise["max_count"]`` expected spikes (unchanged when null).

    The reference rate per neuron is ``noise["reference_rates"]`` or the rate of its best natural
    image at the synthesis contrast in the scorer's own model (images of ``noise["dataset"]`` or
    of the model's dataset).
    """
    max_count = noise.get("max_count")
    if max_count is None:
        return scorer
    if not isinstance(scorer, ObjectiveScorer):
        raise EggError("method.noise.max_count applies to the model and ground_truth scorers; a rig brings its own noise")
    rates = noise.get("reference_rates")
    if rates is None:
        from egg_cli.data import load_dataset
        from egg_cli.synthesis.reference import natural_reference

        dataset = load_dataset(dataset_of(context.objective, noise.get("dataset"), "method.noise.max_count"))
        adapter = context.adapter
        reference = natural_reference(
            scorer.objective, np.asarray(dataset.images), adapter.norm, context.device, top_k=1, progress=False
        )
        rates = reference["score"][:, 0]
    return PoissonScorer(scorer, float(max_count), np.asarray(rates, dtype=np.float64))
