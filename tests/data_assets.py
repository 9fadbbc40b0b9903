"""Small neural datasets for the data, simulation and CLI tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

EGG = [sys.executable, "-c", "import sys; from egg_cli.cli import main; main(sys.argv[1:])"]


def run_egg(*args: str, cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    """``egg <args>`` in a subprocess with matplotlib's Agg backend, output captured as text."""
    return subprocess.run(
        [*EGG, *args], cwd=cwd, env={**env, "MPLBACKEND": "Agg"}, capture_output=True, text=True, timeout=timeout
    )


TINY = ["simulation=v4_sim_tiny", "report.example_neurons=4", "progress=false"]


def small_arrays(seed: int = 0, n_neurons: int = 5, repeats: int = 3) -> dict[str, np.ndarray]:
    """A valid dataset: 12 train, 4 validation and 3 test images (test shown ``repeats`` times)."""
    rng = np.random.default_rng(seed)
    tiers = np.array(["train"] * 12 + ["validation"] * 4 + ["test"] * 3)
    images = rng.integers(0, 256, size=(len(tiers), 1, 8, 8)).astype(np.uint8)
    trial_image = np.concatenate([np.arange(16), np.repeat(np.arange(16, 19), repeats)])
    rng.shuffle(trial_image)
    responses = rng.poisson(2.0, size=(len(trial_image), n_neurons)).astype(np.float32)
    return {
        "images": images,
        "responses": responses,
        "trial_image": trial_image,
        "tiers": tiers,
        "neuron_ids": np.arange(100, 100 + n_neurons),
    }


def write_sensorium_folder(root: Path, arrays: dict[str, np.ndarray], frame_ids: bool = True) -> Path:
    """Write ``arrays`` in the Sensorium layout: one image and one response file per trial."""
    (root / "data" / "images").mkdir(parents=True)
    (root / "data" / "responses").mkdir(parents=True)
    (root / "meta" / "trials").mkdir(parents=True)
    (root / "meta" / "neurons").mkdir(parents=True)
    for t, image_index in enumerate(arrays["trial_image"]):
        np.save(root / "data" / "images" / f"{t}.npy", arrays["images"][image_index].astype(np.float32))
        np.save(root / "data" / "responses" / f"{t}.npy", arrays["responses"][t])
    np.save(root / "meta" / "trials" / "tiers.npy", arrays["tiers"][arrays["trial_image"]])
    np.save(root / "meta" / "neurons" / "unit_ids.npy", arrays["neuron_ids"])
    if frame_ids:
        np.save(root / "meta" / "trials" / "frame_image_id.npy", arrays["trial_image"] * 7 + 1000)
    return root
