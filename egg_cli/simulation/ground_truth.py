"""Rebuild the simulated neurons of a dataset file as a differentiable torch module."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from egg_cli.data.hdf5 import open_hdf5, read_group
from egg_cli.data.schema import GROUND_TRUTH_GROUP
from egg_cli.errors import EggError
from egg_cli.runtime import resolve_device
from egg_cli.simulation.neurons import MODEL_KIND, MODEL_VERSION, V4Population


def load_ground_truth(dataset_path: str | os.PathLike, device: str | torch.device = "cpu") -> V4Population:
    """The ground-truth neurons stored in a dataset written by ``egg simulate``, in eval mode.

    ``forward(images_z)`` gives expected spikes per trial for z-scored images; the module carries
    ``input_shape``, ``n_neurons``, ``neuron_ids``, ``pixel_mean`` and ``pixel_std``.
    """
    path = Path(dataset_path)
    with open_hdf5(path) as f:
        if GROUND_TRUTH_GROUP not in f:
            raise EggError(f"{path} has no {GROUND_TRUTH_GROUP!r} group; expected a dataset written by egg simulate")
        spec = read_group(f[GROUND_TRUTH_GROUP])
    kind, version = spec.get("kind"), spec.get("version")
    if kind != MODEL_KIND or version not in range(1, MODEL_VERSION + 1):
        raise EggError(
            f"{path}: ground truth is kind={kind!r} version={version!r}; expected kind={MODEL_KIND!r} version 1..{MODEL_VERSION}"
        )
    if isinstance(device, str):
        device = resolve_device(device)
    return V4Population(spec).to(device).eval()
