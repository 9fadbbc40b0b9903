"""Build objectives from config (``configs/objective/*.yaml`` point here with ``_partial_: true``).

Every builder takes an :class:`ObjectiveContext` (the generating model, the selected neurons, a
lazy dataset loader and the synthesis contrast) plus the options of its config file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from egg_cli.errors import EggError
from egg_cli.synthesis.adapter import ImageAdapter, project_norm
from egg_cli.synthesis.objectives import NeuronObjective, ReconstructionObjective


@dataclass
class ObjectiveContext:
    """What objectives may need at run time."""

    model: nn.Module
    neurons: list[int]
    dataset: Callable[[], Any]  # returns the NeuralDataset (loaded on first use) or raises EggError
    norm: float | None  # the synthesis contrast (L2 norm in z-scored units at the model's input)
    device: torch.device


def neuron(
    context: ObjectiveContext,
    inhibitory: bool = False,
    name: str = "neuron",
    methods: Sequence[str] | None = None,
) -> NeuronObjective:
    """One selected neuron per problem (``objective=neuron``; ``objective=meni`` sets the name and methods)."""
    return NeuronObjective(context.model, context.neurons, inhibitory=inhibitory, name=name, methods=methods)


def zscored_model_images(images_raw: np.ndarray, model: nn.Module, norm: float | None) -> torch.Tensor:
    """Raw dataset images -> the model's input (z-scored, resized, channels) at L2 norm ``norm``."""
    adapter = ImageAdapter.for_dataset_images(images_raw.shape[1:], model)
    images = adapter.from_raw(torch.as_tensor(images_raw, dtype=torch.float32))
    return images if norm is None else project_norm(images, norm)


def reconstruction(
    context: ObjectiveContext,
    images: Sequence[int] | None = (0, 1, 2, 3),
    tier: str = "test",
    responses: str | None = None,
    target_contrast: str = "adapter",
) -> ReconstructionObjective:
    """Targets from dataset images (indices within ``tier``) or a responses file (.npy, targets x neurons).

    ``target_contrast=adapter`` rescales target images to the synthesis contrast so the target
    is reachable; ``native`` keeps their own contrast.
    """
    model = context.model
    if responses is not None:
        path = Path(responses)
        if not path.is_file():
            raise EggError(
                f"objective.responses={path} does not exist; expected a .npy file of targets x {model.n_neurons} responses"
            )
        try:
            targets = np.load(path)
        except Exception as err:
            raise EggError(f"objective.responses={path} could not be read as .npy: {err}") from err
        return ReconstructionObjective(model, target_responses=np.atleast_2d(targets).astype(np.float32))
    if target_contrast not in ("adapter", "native"):
        raise EggError(f"objective.target_contrast={target_contrast!r} unknown; expected adapter or native")
    if not images:
        raise EggError("objective.images=[]: expected dataset image indices (within objective.tier) or objective.responses")
    dataset = context.dataset()
    pool = dataset.image_indices(tier)
    bad = [i for i in images if not 0 <= int(i) < len(pool)]
    if bad:
        raise EggError(f"objective.images={bad} out of range: tier {tier!r} of {dataset.path} has {len(pool)} images")
    index = pool[[int(i) for i in images]]
    norm = context.norm if target_contrast == "adapter" else None
    target_images = zscored_model_images(np.asarray(dataset.images[index]), model, norm)
    return ReconstructionObjective(model, target_images=target_images.to(context.device), target_index=index)
