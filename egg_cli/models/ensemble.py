"""Ensembles: the average prediction of encoding models trained on the same neurons."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from egg_cli.errors import EggError


class Ensemble(nn.Module):
    """Averages the rates of members that share neurons, input shape and pixel statistics."""

    def __init__(self, members: Sequence[nn.Module], names: Sequence[str] | None = None) -> None:
        super().__init__()
        if not members:
            raise EggError("an ensemble needs at least one model; got an empty list")
        names = list(names) if names is not None else [f"member {i}" for i in range(len(members))]
        first = members[0]
        for name, m in zip(names[1:], members[1:]):
            if tuple(m.input_shape) != tuple(first.input_shape):
                raise EggError(
                    f"ensemble member {name} takes input shape {tuple(m.input_shape)}; expected {tuple(first.input_shape)} like {names[0]}"
                )
            if m.n_neurons != first.n_neurons or not np.array_equal(np.asarray(m.neuron_ids), np.asarray(first.neuron_ids)):
                raise EggError(
                    f"ensemble member {name} predicts {m.n_neurons} neurons with different ids; expected the {first.n_neurons} neurons of {names[0]}"
                )
            if not np.allclose([m.pixel_mean, m.pixel_std], [first.pixel_mean, first.pixel_std], rtol=1e-4):
                raise EggError(
                    f"ensemble member {name} has pixel mean/std {m.pixel_mean:.4g}/{m.pixel_std:.4g}; expected {first.pixel_mean:.4g}/{first.pixel_std:.4g} like {names[0]}"
                )
        dataset_ids = {getattr(m, "dataset_id", None) for m in members} - {None}
        if len(dataset_ids) > 1:
            raise EggError(
                f"ensemble members were fitted to different datasets ({', '.join(sorted(dataset_ids))}); "
                "expected members trained on the same recording"
            )
        self.members = nn.ModuleList(members)
        self.input_shape = tuple(first.input_shape)
        self.neuron_ids = np.asarray(first.neuron_ids)
        self.n_neurons = first.n_neurons
        self.pixel_mean, self.pixel_std = first.pixel_mean, first.pixel_std
        self.dataset_path = getattr(first, "dataset_path", None)
        self.dataset_id = dataset_ids.pop() if dataset_ids else None
        corrs = [getattr(m, "test_correlation", None) for m in members]
        # mean of the members' per-neuron test correlations (the ensemble's own is not measured here)
        self.test_correlation = None if any(c is None for c in corrs) else np.mean(np.stack(corrs), axis=0)

    def forward(self, images_z: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(images_z) for m in self.members]).mean(0)
