"""Small assets for the black-box tests: a tiny simulated dataset and an untrained checkpoint on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

SIZE = 24
N_NEURONS = 4
MODEL_CFG = {
    "core": {
        "_target_": "egg_cli.models.cores.StackedConvCore",
        "channels": 4,
        "layers": 2,
        "input_kernel": 5,
        "hidden_kernel": 3,
        "depth_separable": True,
        "gamma_input": 0.0,
    },
    "readout": {"_target_": "egg_cli.models.readouts.GaussianReadout", "gauss_type": "isotropic"},
    "output": {"_target_": "egg_cli.models.EluPlusOne"},
}


def tiny_simulation(path: Path, seed: int = 0) -> Path:
    """A simulated dataset with ground truth: 4 V4-like neurons on 24x24 crops (about 4 s)."""
    from egg_cli.simulation.population import PopulationConfig
    from egg_cli.simulation.simulate import SimulationConfig, simulate, write_simulation

    config = SimulationConfig(
        n_neurons=N_NEURONS,
        image_size=SIZE,
        n_train=200,
        n_validation=20,
        n_test=10,
        test_repeats=2,
        neurons=PopulationConfig(cycles_per_image=(8.0, 4.0, 2.0)),
    )
    write_simulation(simulate(config, seed=seed, progress=False), path)
    return path


def checkpoint_on(dataset: Path, path: Path, seed: int = 0) -> Path:
    """An untrained encoding model with the dataset's input shape, neurons and pixel statistics."""
    from egg_cli.data import load_dataset
    from egg_cli.models import build_model, save_checkpoint

    data = load_dataset(dataset)
    torch.manual_seed(seed)
    model = build_model(MODEL_CFG, data.image_shape, data.neuron_ids, data.pixel_mean, data.pixel_std).eval()
    model.test_correlation = np.linspace(0.2, 0.8, data.n_neurons)
    model.dataset_path = str(dataset)
    save_checkpoint(path, model, MODEL_CFG)
    return path
