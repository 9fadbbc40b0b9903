"""Build the evaluator models named in a config: checkpoints, ensembles, the ground truth.

``evaluators`` maps a name (the table's column) to
- ``ground_truth``: the simulated neurons of the dataset (``egg_cli.simulation.load_ground_truth``);
- a checkpoint, a train run folder, a multirun folder or a glob: one model or an ensemble;
- a list of those: an ensemble averaging its members (e.g. the held-out seeds).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch

from egg_cli.errors import EggError
from egg_cli.evaluation.generalization import Evaluator

GROUND_TRUTH = "ground_truth"


def load_evaluator(name: str, spec: Any, dataset: str | os.PathLike | None, device: torch.device | str) -> Evaluator:
    """One evaluator from its config entry (see module docstring)."""
    if isinstance(spec, str) and spec == GROUND_TRUTH:
        if dataset is None:
            raise EggError(f"evaluators.{name}=ground_truth needs the simulated dataset; set dataset=path/to/dataset.h5")
        from egg_cli.data import load_dataset
        from egg_cli.simulation import load_ground_truth

        model = load_ground_truth(str(dataset))
        model.dataset_id = load_dataset(dataset).population_id
        return Evaluator(name, model.to(device).eval(), kind="ground_truth")
    if spec is None or (not isinstance(spec, (str, os.PathLike)) and not _is_sequence(spec)):
        raise EggError(
            f"evaluators.{name}={spec!r} not understood; expected ground_truth, a checkpoint/run folder/glob, or a list of them"
        )
    from egg_cli.models import load_model

    paths = [str(spec)] if isinstance(spec, (str, os.PathLike)) else [str(p) for p in spec]
    if not paths:
        raise EggError(f"evaluators.{name}=[] is empty; expected checkpoint paths")
    model = load_model(paths if len(paths) > 1 else paths[0], device)
    return Evaluator(name, model, kind="model")


def load_evaluators(specs: Mapping[str, Any], dataset: str | os.PathLike | None, device: torch.device | str) -> list[Evaluator]:
    """All evaluators of ``specs`` in their config order."""
    if not specs:
        raise EggError("evaluators is empty; expected e.g. evaluators={held_out:[a.pt,b.pt],truth:ground_truth}")
    return [load_evaluator(str(name), spec, dataset, device) for name, spec in specs.items()]


def _is_sequence(value: Any) -> bool:
    from omegaconf import ListConfig

    return isinstance(value, (list, tuple, ListConfig))
