"""Objectives: a batch of model-input images and a problem index per image -> one score each.

A *problem* is what one image is optimized for: a neuron (``NeuronObjective``) or a target
population response (``ReconstructionObjective``). Every batch element carries its own problem
index, so one batch holds many neurons and seeds at once and nothing couples its elements.
Methods maximize the score; the energy of EGG is minus the score.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from egg_cli.errors import EggError


class Objective:
    """Base class: ``objective(images_z, problem) -> scores`` with ``problem`` a (B,) long tensor."""

    name: str = "objective"
    #: methods this objective can be optimized with (None: any)
    methods: tuple[str, ...] | None = None

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    @property
    def n_problems(self) -> int:
        raise NotImplementedError

    def __call__(self, images: torch.Tensor, problem: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def score_all(self, images: torch.Tensor) -> torch.Tensor:
        """Score of every image for every problem: (B, n_problems), one model pass."""
        raise NotImplementedError

    def with_model(self, model: nn.Module) -> Objective:
        """The same objective scored by another model (held-out models, ground truth)."""
        raise NotImplementedError

    def problem_table(self) -> dict[str, np.ndarray]:
        """Per-problem arrays saved under ``/problems`` in the result file."""
        raise NotImplementedError

    def labels(self) -> list[str]:
        """Short human-readable name per problem (figure titles, CSV)."""
        raise NotImplementedError


def _ids(model: nn.Module) -> np.ndarray:
    ids = getattr(model, "neuron_ids", None)
    return np.arange(model.n_neurons) if ids is None else np.asarray(ids)


class NeuronObjective(Objective):
    """Response of one unit per batch element (an ensemble model returns its members' mean).

    ``inhibitory=True`` flips the sign, so maximizing finds the most inhibitory input.
    ``name="meni"`` marks most exciting natural images (EGG at a small energy scale, see
    ``objective_defaults`` in configs/method/egg.yaml), saved next to the dataset's top natural
    images for the neuron.
    """

    def __init__(
        self,
        model: nn.Module,
        neurons: Sequence[int],
        inhibitory: bool = False,
        name: str = "neuron",
        methods: Sequence[str] | None = None,
    ) -> None:
        super().__init__(model)
        n = int(model.n_neurons)
        neurons = [int(k) for k in neurons]
        if not neurons:
            raise EggError("neurons=[]: expected at least one neuron index")
        bad = [k for k in neurons if not 0 <= k < n]
        if bad:
            raise EggError(f"neurons={bad} out of range: the model has {n} neurons, expected indices 0..{n - 1}")
        if len(set(neurons)) != len(neurons):
            raise EggError(f"neurons={neurons} lists a neuron twice; expected distinct indices")
        self.neurons = neurons
        self.inhibitory = bool(inhibitory)
        self.name = name
        self.methods = tuple(methods) if methods else None
        self._units = torch.as_tensor(neurons, dtype=torch.long)

    @property
    def n_problems(self) -> int:
        return len(self.neurons)

    def __call__(self, images: torch.Tensor, problem: torch.Tensor) -> torch.Tensor:
        responses = self.model(images)
        units = self._units.to(responses.device)[problem.to(responses.device)]
        score = responses.gather(1, units[:, None])[:, 0]
        return -score if self.inhibitory else score

    def score_all(self, images: torch.Tensor) -> torch.Tensor:
        score = self.model(images)[:, self._units.to(images.device)]
        return -score if self.inhibitory else score

    def with_model(self, model: nn.Module) -> NeuronObjective:
        if int(model.n_neurons) != int(self.model.n_neurons):
            raise EggError(
                f"scoring model has {model.n_neurons} neurons but the generating model has "
                f"{self.model.n_neurons}; expected models of the same neurons"
            )
        return NeuronObjective(model, self.neurons, self.inhibitory, self.name, self.methods)

    def problem_table(self) -> dict[str, np.ndarray]:
        return {"neuron_index": np.asarray(self.neurons, dtype=np.int64), "neuron_id": _ids(self.model)[self.neurons]}

    def labels(self) -> list[str]:
        ids = _ids(self.model)[self.neurons]
        return [f"neuron {i}" for i in ids]


class ReconstructionObjective(Objective):
    """Match a target population response: score = minus the mean squared error over neurons.

    Targets come from images (then every scoring model computes its own target from the same
    images) or are given as responses (T, n_neurons).
    """

    name = "reconstruction"

    def __init__(
        self,
        model: nn.Module,
        target_responses: torch.Tensor | np.ndarray | None = None,
        target_images: torch.Tensor | None = None,
        target_index: Sequence[int] | None = None,
    ) -> None:
        super().__init__(model)
        if (target_responses is None) == (target_images is None):
            raise EggError("reconstruction needs exactly one of target images or target responses")
        self.target_images = target_images
        self.target_index = None if target_index is None else np.asarray(target_index, dtype=np.int64)
        if target_images is not None:
            device = next(iter(model.parameters()), torch.empty(0)).device
            with torch.no_grad():
                target_responses = model(target_images.to(device)).float()
        targets = torch.as_tensor(np.asarray(target_responses) if not torch.is_tensor(target_responses) else target_responses)
        targets = targets.float()
        if targets.dim() != 2 or targets.shape[1] != int(model.n_neurons):
            raise EggError(
                f"reconstruction targets have shape {tuple(targets.shape)}; expected (targets, {model.n_neurons}) "
                "responses of the model's neurons"
            )
        if not torch.isfinite(targets).all():
            raise EggError("reconstruction target responses contain NaN or inf; expected finite responses")
        self.targets = targets

    @property
    def n_problems(self) -> int:
        return int(self.targets.shape[0])

    def __call__(self, images: torch.Tensor, problem: torch.Tensor) -> torch.Tensor:
        responses = self.model(images)
        target = self.targets.to(responses.device)[problem.to(responses.device)]
        return -((responses - target) ** 2).mean(dim=1)

    def score_all(self, images: torch.Tensor) -> torch.Tensor:
        responses = self.model(images)
        return -((responses[:, None, :] - self.targets.to(responses.device)[None]) ** 2).mean(dim=2)

    def with_model(self, model: nn.Module) -> ReconstructionObjective:
        if self.target_images is not None:
            return ReconstructionObjective(
                model,
                target_images=self.target_images,
                target_index=self.target_index,
            )
        return ReconstructionObjective(model, target_responses=self.targets, target_index=self.target_index)

    def problem_table(self) -> dict[str, np.ndarray]:
        table = {"target_responses": self.targets.cpu().numpy()}
        if self.target_index is not None:
            table["target_index"] = self.target_index
        if self.target_images is not None:
            table["target_images"] = self.target_images.cpu().numpy()
        return table

    def labels(self) -> list[str]:
        if self.target_index is not None:
            return [f"image {i}" for i in self.target_index]
        return [f"target {k}" for k in range(self.n_problems)]


_TOP = re.compile(r"^top[_-]?(\d+)$")


def select_neurons(spec: object, model: nn.Module) -> list[int]:
    """Resolve ``neurons=`` to indices: a list or int, ``all``, or ``top_K`` (best test correlation).

    ``top_K`` ranks by the model's per-neuron test correlation (``model.test_correlation``).
    """
    n = int(model.n_neurons)
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text == "all":
            return list(range(n))
        match = _TOP.match(text)
        if not match:
            raise EggError(f"neurons={spec!r} not understood; expected a list of indices, 'all' or 'top_K' (e.g. top_16)")
        k = int(match.group(1))
        corr = getattr(model, "test_correlation", None)
        if corr is None:
            raise EggError(f"neurons={spec}: the model has no per-neuron test correlation to rank by; give indices instead")
        corr = np.asarray(corr, dtype=np.float64)
        if corr.shape != (n,):
            raise EggError(f"neurons={spec}: model.test_correlation has shape {corr.shape}, expected ({n},)")
        if not 1 <= k <= n:
            raise EggError(f"neurons={spec}: K must be between 1 and the model's {n} neurons")
        order = np.argsort(-np.nan_to_num(corr, nan=-np.inf), kind="stable")
        return [int(i) for i in order[:k]]
    if isinstance(spec, (int, np.integer)):
        spec = [spec]
    try:
        values = [int(v) for v in spec]  # type: ignore[union-attr]
    except (TypeError, ValueError) as err:
        raise EggError(f"neurons={spec!r} not understood; expected a list of indices, 'all' or 'top_K'") from err
    return values
