"""``load_dataset``: one entry point for HDF5 files and Sensorium folders."""

from __future__ import annotations

import os
from pathlib import Path

from egg_cli.data.dataset import NeuralDataset
from egg_cli.data.hdf5 import read_hdf5
from egg_cli.data.sensorium import is_sensorium_folder, read_sensorium_folder


def load_dataset(path: str | os.PathLike) -> NeuralDataset:
    """Read and validate a dataset: an egg HDF5 file or a neuralpredictors/Sensorium folder.

    Bad input raises :class:`~egg_cli.errors.EggError` naming the file, the field and what was expected.
    """
    path = Path(path).expanduser()
    if is_sensorium_folder(path):
        return read_sensorium_folder(path)
    return read_hdf5(path)
