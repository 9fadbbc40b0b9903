"""The neural dataset schema: names, expected shapes and validation with one-line errors.

One dataset is images shown once each (``images``, N x C x H x W, raw 0-255 units), trials
(``responses``, T x n, and ``trial_image``, T indices into ``images``, so repeated
presentations are trials sharing an image), a tier per image (``tiers``) and per-neuron ids.
The same checks run on an HDF5 file and on a Sensorium folder, so both fail the same way.
See docs/data_format.md.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

import numpy as np

from egg_cli.errors import EggError

FORMAT_NAME = "egg-neural-dataset"
FORMAT_VERSION = 1

# tiers an image may belong to; the first three must each hold at least one trial
TIERS = ("train", "validation", "test", "final_test")
REQUIRED_TIERS = ("train", "validation", "test")

# dataset name -> what is expected there (used in error messages)
DATASETS = {
    "images": "images (N, C, H, W) in raw pixel units (0-255)",
    "responses": "responses (T, n_neurons), n_neurons >= 1, as finite non-negative spike counts or rates, not all zero",
    "trial_image": "trial_image (T,) integer indices into images",
    "tiers": "tiers (N,) strings, one of " + "/".join(TIERS),
    "neuron_ids": "neuron_ids (n_neurons,) integers or strings",
}
NEURONS_GROUP = "neurons"
GROUND_TRUTH_GROUP = "ground_truth"


def missing_dataset_message(source: str, name: str, present: Iterable[str]) -> str:
    """Error text for a dataset that is absent, with a guess when a similar name exists."""
    present = list(present)
    close = difflib.get_close_matches(name, present, n=1, cutoff=0.6)
    hint = f" (found {close[0]!r}: misnamed?)" if close else (f" (found: {', '.join(present)})" if present else "")
    return f"{source}: dataset {name!r} is missing{hint}; expected {DATASETS[name]}"


def validate_arrays(
    source: str,
    images: np.ndarray,
    responses: np.ndarray,
    trial_image: np.ndarray,
    tiers: np.ndarray,
    neuron_ids: np.ndarray,
) -> None:
    """Check shapes, finiteness, index ranges and tiers; raise EggError naming ``source`` and the field."""

    def fail(name: str, problem: str) -> None:
        raise EggError(f"{source}: {name} {problem}; expected {DATASETS[name]}")

    if images.ndim != 4:
        fail("images", f"has shape {tuple(images.shape)} ({images.ndim} dimensions)")
    if images.shape[0] == 0:
        fail("images", "is empty")
    if not np.issubdtype(images.dtype, np.number):
        fail("images", f"has dtype {images.dtype}")
    if images.dtype.kind == "f":
        bad = ~np.isfinite(images)
        if bad.any():
            fail("images", f"holds {int(bad.sum())} NaN/inf values (first in image {int(np.argwhere(bad)[0][0])})")
    n_images = images.shape[0]
    if responses.ndim != 2:
        fail("responses", f"has shape {tuple(responses.shape)}")
    if not np.issubdtype(responses.dtype, np.number):
        fail("responses", f"has dtype {responses.dtype}")
    bad = ~np.isfinite(responses)
    if bad.any():
        t, n = np.argwhere(bad)[0]
        fail("responses", f"holds {int(bad.sum())} NaN/inf values (first at trial {t}, neuron {n})")
    n_trials, n_neurons = responses.shape
    if n_neurons == 0:
        fail("responses", f"has shape {tuple(responses.shape)}: no neurons")
    if n_trials and responses.min() < 0:
        t, n = np.argwhere(responses < 0)[0]
        fail(
            "responses",
            f"holds {int(np.sum(responses < 0))} negative values (min {float(responses.min()):.4g}, first at trial {t}, "
            f"neuron {n}); the Poisson loss needs them non-negative",
        )
    if n_trials and not responses.any():
        fail("responses", f"are all zero ({n_trials} trials x {n_neurons} neurons)")
    if trial_image.ndim != 1 or trial_image.shape[0] != n_trials:
        fail("trial_image", f"has shape {tuple(trial_image.shape)} but responses has {n_trials} trials")
    if not np.issubdtype(trial_image.dtype, np.integer):
        fail("trial_image", f"has dtype {trial_image.dtype}")
    if n_trials:
        lo, hi = int(trial_image.min()), int(trial_image.max())
        if lo < 0 or hi >= n_images:
            t = int(np.argmax((trial_image < 0) | (trial_image >= n_images)))
            raise EggError(
                f"{source}: trial_image holds index {int(trial_image[t])} (trial {t}) but there are {n_images} images; "
                f"expected indices 0..{n_images - 1}"
            )
    if tiers.shape != (n_images,):
        fail("tiers", f"has shape {tuple(tiers.shape)} but there are {n_images} images")
    unknown = sorted(set(tiers.tolist()) - set(TIERS))
    if unknown:
        fail("tiers", f"holds unknown tier {unknown[0]!r}")
    if neuron_ids.shape != (n_neurons,):
        fail("neuron_ids", f"has shape {tuple(neuron_ids.shape)} but responses has {n_neurons} neurons")
    if len(np.unique(neuron_ids)) != n_neurons:
        fail("neuron_ids", "holds duplicate ids")
    trial_tiers = tiers[trial_image]
    for tier in REQUIRED_TIERS:
        if not np.any(trial_tiers == tier):
            n_img = int(np.sum(tiers == tier))
            raise EggError(
                f"{source}: tier {tier!r} is empty ({n_img} images, 0 trials); "
                f"expected at least one trial in each of {', '.join(REQUIRED_TIERS)}"
            )


def pixel_statistics(images: np.ndarray, tiers: np.ndarray) -> dict[str, float]:
    """Mean, std, min and max of the training-tier images (raw units), the basis of z-scoring."""
    train = images[tiers == "train"]
    if train.size == 0:
        raise EggError("no training images to take pixel statistics from; expected at least one 'train' image")
    train = train.astype(np.float64)
    std = float(train.std())
    if std <= 0:
        raise EggError("training images are constant (pixel std 0); expected images with contrast")
    return {"pixel_mean": float(train.mean()), "pixel_std": std, "pixel_min": float(train.min()), "pixel_max": float(train.max())}
