"""``NeuralDataset``: images, trials and neurons in memory, with torch datasets per tier."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from egg_cli.data.schema import TIERS
from egg_cli.errors import EggError

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


@dataclass
class NeuralDataset:
    """A validated neural dataset (see docs/data_format.md); images in raw pixel units."""

    path: Path
    images: np.ndarray  # (N, C, H, W) float32, raw units
    responses: np.ndarray  # (T, n) float32
    trial_image: np.ndarray  # (T,) int64
    tiers: np.ndarray  # (N,) str
    neuron_ids: np.ndarray  # (n,)
    pixel_mean: float
    pixel_std: float
    attrs: dict[str, Any] = field(default_factory=dict)
    neurons: dict[str, np.ndarray] = field(default_factory=dict)  # per-neuron metadata
    has_ground_truth: bool = False
    _images_z: torch.Tensor | None = field(default=None, repr=False)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    @property
    def population_id(self) -> str:
        """Identity of the recorded population: a hash of the neuron ids and of every trial's responses."""
        digest = hashlib.sha256("\0".join(str(v) for v in self.neuron_ids.tolist()).encode())
        digest.update(np.ascontiguousarray(self.responses, dtype=np.float32).tobytes())
        digest.update(np.ascontiguousarray(self.trial_image, dtype=np.int64).tobytes())
        return digest.hexdigest()[:16]

    @property
    def n_neurons(self) -> int:
        return int(self.responses.shape[1])

    @property
    def n_images(self) -> int:
        return int(self.images.shape[0])

    @property
    def n_trials(self) -> int:
        return int(self.responses.shape[0])

    def zscore(self, images: ArrayT) -> ArrayT:
        """Raw pixel units -> z-scored units with the training-tier statistics."""
        return (images - self.pixel_mean) / self.pixel_std

    def _check_tier(self, tier: str) -> None:
        if tier not in TIERS:
            raise EggError(f"tier {tier!r} does not exist; expected one of {', '.join(TIERS)}")

    def image_indices(self, tier: str) -> np.ndarray:
        """Indices of the images in ``tier``."""
        self._check_tier(tier)
        return np.flatnonzero(self.tiers == tier)

    def trials(self, tier: str) -> np.ndarray:
        """Indices of the trials whose image is in ``tier``."""
        self._check_tier(tier)
        return np.flatnonzero(self.tiers[self.trial_image] == tier)

    def images_z(self) -> torch.Tensor:
        """All images z-scored, as one float32 tensor (computed once)."""
        if self._images_z is None:
            self._images_z = torch.from_numpy(self.zscore(self.images.astype(np.float32)))
        return self._images_z

    def torch_dataset(self, tier: str) -> TrialDataset:
        """Trials of ``tier`` as a torch Dataset of ``(image_z, responses)`` pairs."""
        return TrialDataset(self.images_z(), torch.from_numpy(self.responses), self.trial_image, self.trials(tier))

    def dataloader(self, tier: str, batch_size: int = 64, shuffle: bool = False, seed: int = 0) -> DataLoader:
        """Batches ``(images_z (B,C,H,W), responses (B,n))`` of the trials of ``tier``.

        Shuffling uses its own generator seeded with ``seed``, so the order is reproducible.
        """
        if batch_size < 1:
            raise EggError(f"batch_size={batch_size} is not allowed; expected a positive integer")
        data = self.torch_dataset(tier)
        if shuffle:
            sampler = RandomSampler(data, generator=torch.Generator().manual_seed(seed))
        else:
            sampler = SequentialSampler(data)
        # the sampler yields whole index lists; TrialDataset indexes a batch at once (no per-item collate)
        return DataLoader(data, sampler=BatchSampler(sampler, batch_size, drop_last=False), batch_size=None)

    def summary(self) -> dict[str, Any]:
        """Counts per tier and image statistics, for ``egg info`` and run summaries."""
        tiers = {}
        for tier in TIERS:
            n_img = int(np.sum(self.tiers == tier))
            if n_img:
                trials = self.trials(tier)
                counts = np.bincount(self.trial_image[trials], minlength=self.n_images)[self.image_indices(tier)]
                tiers[tier] = {
                    "images": n_img,
                    "trials": int(len(trials)),
                    "repeats_min": int(counts.min()),
                    "repeats_max": int(counts.max()),
                }
        return {
            "path": str(self.path),
            "neurons": self.n_neurons,
            "images": self.n_images,
            "trials": self.n_trials,
            "image_shape": list(self.image_shape),
            "pixel_mean": self.pixel_mean,
            "pixel_std": self.pixel_std,
            "pixel_min": float(self.images.min()),
            "pixel_max": float(self.images.max()),
            "tiers": tiers,
            "ground_truth": self.has_ground_truth,
        }


class TrialDataset(Dataset):
    """Trials of one tier; indexing with a list of positions returns a whole batch."""

    def __init__(self, images_z: torch.Tensor, responses: torch.Tensor, trial_image: np.ndarray, trials: np.ndarray):
        self.images_z = images_z
        self.responses = responses
        self.trials = torch.from_numpy(np.asarray(trials, dtype=np.int64))
        self.trial_image = torch.from_numpy(np.asarray(trial_image, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.trials)

    def __getitem__(self, index: int | Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        trial = self.trials[index]
        return self.images_z[self.trial_image[trial]], self.responses[trial]
