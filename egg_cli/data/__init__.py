"""Neural datasets: HDF5 schema, loaders, Sensorium folders and natural photographs."""

from egg_cli.data.dataset import NeuralDataset, TrialDataset
from egg_cli.data.hdf5 import read_hdf5, write_dataset
from egg_cli.data.load import load_dataset
from egg_cli.data.sensorium import is_sensorium_folder, read_sensorium_folder

__all__ = [
    "NeuralDataset",
    "TrialDataset",
    "load_dataset",
    "read_hdf5",
    "write_dataset",
    "read_sensorium_folder",
    "is_sensorium_folder",
]
