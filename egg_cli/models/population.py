"""Population fingerprints: which neurons of which dataset a model predicts, at which image size.

A neuron id only names a neuron within one recording: neuron 3 of one simulated dataset is
another cell than neuron 3 of a dataset simulated with another seed. Commands that combine
artifacts (held-out models in ``egg synth``, evaluators in ``egg evaluate``) compare fingerprints
and refuse a mix-up with one line, unless the user passes ``allow_mismatch=true``. Checkpoints
written before fingerprints existed carry no dataset id; they are compared by neuron ids only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from egg_cli.errors import EggError

OVERRIDE = "allow_mismatch=true"


@dataclass(frozen=True)
class Population:
    """The neurons (ids), the dataset identity (None when unknown) and the image shape of one artifact."""

    name: str  # what it is, for messages: "model a.pt", "dataset d.h5", "synthesis run r"
    neuron_ids: np.ndarray
    dataset_id: str | None
    image_shape: tuple[int, ...]

    @classmethod
    def of_model(cls, model: Any, name: str) -> Population:
        """The fingerprint of an encoding model, an ensemble or the ground truth."""
        ids = getattr(model, "neuron_ids", None)
        return cls(
            name,
            np.arange(int(model.n_neurons)) if ids is None else np.asarray(ids),
            getattr(model, "dataset_id", None),
            tuple(int(s) for s in model.input_shape),
        )


def check_same_population(
    reference: Population, other: Population, allow_mismatch: bool, neuron_ids: Sequence[Any] | None = None
) -> None:
    """Refuse to combine ``other`` with ``reference`` when their neurons or image sizes differ.

    ``neuron_ids``: the ids that will be looked up in ``other`` (default: all of ``reference``).
    With ``allow_mismatch`` nothing is checked.
    """
    if allow_mismatch:
        return
    if reference.dataset_id and other.dataset_id and reference.dataset_id != other.dataset_id:
        raise EggError(
            f"{other.name} was fitted to dataset {other.dataset_id} but {reference.name} to dataset {reference.dataset_id}: "
            f"the same neuron ids name different neurons; expected artifacts of the same population (or {OVERRIDE})"
        )
    if neuron_ids is None:  # scored by neuron index: the same ids in the same order
        if not np.array_equal(np.asarray(reference.neuron_ids), np.asarray(other.neuron_ids)):
            raise EggError(
                f"{other.name} predicts {len(other.neuron_ids)} neurons with other ids than the {len(reference.neuron_ids)} "
                f"of {reference.name}; expected artifacts of the same population (or {OVERRIDE})"
            )
    else:  # scored by neuron id
        have = {str(v) for v in np.asarray(other.neuron_ids).tolist()}
        missing = [v for v in np.asarray(neuron_ids).tolist() if str(v) not in have]
        if missing:
            raise EggError(
                f"{other.name} has no neuron with id {missing[0]} ({len(missing)} of {len(neuron_ids)} ids missing) "
                f"that {reference.name} uses; expected artifacts of the same population (or {OVERRIDE})"
            )
    check_image_shape(reference.name, reference.image_shape, other.name, other.image_shape, allow_mismatch)


def check_image_shape(name: str, shape: Sequence[int], other_name: str, other_shape: Sequence[int], allow_mismatch: bool) -> None:
    """Refuse images of ``shape`` for a model that takes ``other_shape`` (they would be resized silently)."""
    if not allow_mismatch and tuple(other_shape) != tuple(shape):
        raise EggError(
            f"{other_name} takes images of shape {tuple(other_shape)}, {name} holds images of shape {tuple(shape)}; "
            f"expected the same image size, not a silent resize (or {OVERRIDE})"
        )
