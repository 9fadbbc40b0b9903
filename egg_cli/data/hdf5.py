"""Read and write the egg neural dataset HDF5 file (schema in docs/data_format.md)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from egg_cli import __version__
from egg_cli.data.dataset import NeuralDataset
from egg_cli.data.schema import (
    DATASETS,
    FORMAT_NAME,
    FORMAT_VERSION,
    GROUND_TRUTH_GROUP,
    NEURONS_GROUP,
    missing_dataset_message,
    pixel_statistics,
    validate_arrays,
)
from egg_cli.errors import EggError
from egg_cli.io import atomic_hdf5

_STR = h5py.string_dtype(encoding="utf-8")


def write_dataset(
    path: str | os.PathLike,
    images: np.ndarray,
    responses: np.ndarray,
    trial_image: np.ndarray,
    tiers: np.ndarray,
    neuron_ids: np.ndarray,
    neurons: Mapping[str, np.ndarray] | None = None,
    attrs: Mapping[str, Any] | None = None,
    ground_truth: Mapping[str, Any] | None = None,
) -> dict[str, float]:
    """Validate and write a dataset atomically; return the pixel statistics stored in the attrs.

    ``images`` are raw pixel units (uint8 is stored as is, anything else as float32);
    ``neurons`` holds per-neuron arrays (first axis n_neurons); ``ground_truth`` maps names to
    arrays (datasets) or scalars/strings (attributes) of the ``ground_truth`` group.
    """
    path = Path(path)
    tiers = np.asarray(tiers).astype(str)
    neuron_ids = np.asarray(neuron_ids)
    trial_image = np.asarray(trial_image, dtype=np.int64)
    responses = np.asarray(responses, dtype=np.float32)
    if images.dtype != np.uint8:
        images = np.asarray(images, dtype=np.float32)
    validate_arrays(str(path), images, responses, trial_image, tiers, neuron_ids)
    stats = pixel_statistics(images, tiers)
    for name, values in (neurons or {}).items():
        if len(values) != responses.shape[1]:
            raise EggError(
                f"{path}: neuron metadata {name!r} has {len(values)} rows; expected one per neuron ({responses.shape[1]})"
            )
    with atomic_hdf5(path) as f:
        f.attrs["format"] = FORMAT_NAME
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["egg_version"] = __version__
        for key, value in stats.items():
            f.attrs[key] = value
        for key, value in (attrs or {}).items():
            f.attrs[key] = value
        f.create_dataset(
            "images", data=images, chunks=(1, *images.shape[1:]), compression="gzip", compression_opts=4, shuffle=True
        )
        f.create_dataset("responses", data=responses)
        f.create_dataset("trial_image", data=trial_image)
        f.create_dataset("tiers", data=tiers.astype(object), dtype=_STR)
        if neuron_ids.dtype.kind in "US":
            f.create_dataset("neuron_ids", data=neuron_ids.astype(str).astype(object), dtype=_STR)
        else:
            f.create_dataset("neuron_ids", data=neuron_ids.astype(np.int64))
        group = f.create_group(NEURONS_GROUP)
        for name, values in (neurons or {}).items():
            values = np.asarray(values)
            group.create_dataset(
                name,
                data=values.astype(object) if values.dtype.kind in "US" else values,
                dtype=_STR if values.dtype.kind in "US" else None,
            )
        if ground_truth is not None:
            _write_group(f.create_group(GROUND_TRUTH_GROUP), ground_truth)
    return stats


def _write_group(group: h5py.Group, content: Mapping[str, Any]) -> None:
    for name, value in content.items():
        if isinstance(value, Mapping):
            _write_group(group.create_group(name), value)
        elif isinstance(value, np.ndarray):
            group.create_dataset(name, data=value)
        else:
            group.attrs[name] = value


def read_group(group: h5py.Group) -> dict[str, Any]:
    """A group as a dict: datasets -> numpy arrays, attrs -> python values, subgroups -> dicts."""
    out: dict[str, Any] = {k: _attr(v) for k, v in group.attrs.items()}
    for name, item in group.items():
        out[name] = read_group(item) if isinstance(item, h5py.Group) else item[()]
    return out


def open_hdf5(path: str | os.PathLike) -> h5py.File:
    """Open an HDF5 file for reading; a missing, truncated or corrupt file raises EggError."""
    path = Path(path)
    if not path.exists():
        raise EggError(f"dataset file {path} does not exist; expected an HDF5 file (egg simulate) or a Sensorium folder")
    if path.is_dir():
        raise EggError(f"{path} is a folder without data/ and meta/; expected an HDF5 file or a Sensorium folder")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        size = path.stat().st_size
        raise EggError(
            f"{path} is not a readable HDF5 file ({size} bytes; truncated or corrupt: {str(err).splitlines()[0]}); "
            "expected an HDF5 dataset written by egg"
        ) from err


def read_hdf5(path: str | os.PathLike) -> NeuralDataset:
    """Load and validate an egg HDF5 dataset."""
    path = Path(path)
    with open_hdf5(path) as f:
        arrays = {}
        for name in DATASETS:
            item = f.get(name)
            if not isinstance(item, h5py.Dataset):
                raise EggError(missing_dataset_message(str(path), name, list(f.keys())))
            try:
                arrays[name] = item.asstr()[()] if h5py.check_string_dtype(item.dtype) else item[()]
            except (OSError, RuntimeError, ValueError) as err:
                raise EggError(
                    f"{path}: dataset {name!r} cannot be read (truncated or corrupt: {err}); expected {DATASETS[name]}"
                ) from err
        attrs = {k: _attr(v) for k, v in f.attrs.items()}
        neurons = {}
        if NEURONS_GROUP in f:
            for name, item in f[NEURONS_GROUP].items():
                neurons[name] = item.asstr()[()] if h5py.check_string_dtype(item.dtype) else item[()]
        has_ground_truth = GROUND_TRUTH_GROUP in f
    images = arrays["images"]
    tiers = np.asarray(arrays["tiers"]).astype(str)
    trial_image = arrays["trial_image"]
    validate_arrays(str(path), images, arrays["responses"], trial_image, tiers, arrays["neuron_ids"])
    stats = pixel_statistics(images, tiers)
    return NeuralDataset(
        path=path,
        images=images.astype(np.float32),
        responses=arrays["responses"].astype(np.float32),
        trial_image=trial_image.astype(np.int64),
        tiers=tiers,
        neuron_ids=np.asarray(arrays["neuron_ids"]),
        pixel_mean=stats["pixel_mean"],
        pixel_std=stats["pixel_std"],
        attrs=attrs,
        neurons=neurons,
        has_ground_truth=has_ground_truth,
    )


def _attr(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value
