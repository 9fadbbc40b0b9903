"""End-to-end `egg synth` on tiny checkpoints and a tiny dataset (subprocess, like a user)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

EGG = [sys.executable, "-c", "from egg_cli.cli import main; main()"]
SIZE = 16
N_NEURONS = 5
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


def _checkpoint(path: Path, seed: int, nan: bool = False) -> Path:
    from egg_cli.models import build_model, save_checkpoint

    torch.manual_seed(seed)
    model = build_model(MODEL_CFG, (1, SIZE, SIZE), np.arange(10, 10 + N_NEURONS), 120.0, 50.0).eval()
    model.test_correlation = np.array([0.1, 0.5, 0.3, 0.9, 0.2])
    if nan:
        with torch.no_grad():
            next(model.readout.parameters()).fill_(float("nan"))
    save_checkpoint(path, model, MODEL_CFG)
    return path


def _dataset(path: Path) -> Path:
    from egg_cli.data import write_dataset

    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, size=(30, 1, SIZE, SIZE)).astype(np.float32)
    tiers = np.array(["train"] * 20 + ["validation"] * 5 + ["test"] * 5)
    write_dataset(
        path,
        images,
        rng.poisson(2.0, size=(30, N_NEURONS)).astype(np.float32),
        np.arange(30),
        tiers,
        np.arange(10, 10 + N_NEURONS),
    )
    return path


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    return {
        "a": _checkpoint(root / "a.pt", 0),
        "b": _checkpoint(root / "b.pt", 1),
        "c": _checkpoint(root / "c.pt", 2),
        "nan": _checkpoint(root / "nan.pt", 0, nan=True),
        "data": _dataset(root / "dataset.h5"),
        "root": root,
    }


def _synth(out: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [*EGG, "synth", f"hydra.run.dir={out}", "progress=false", *overrides],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.mark.slow
def test_egg_synth_ga_writes_images_scores_timing_grid_csv_and_summary(assets, tmp_path):
    out = tmp_path / "run"
    proc = _synth(
        out,
        f"model=[{assets['a']},{assets['b']}]",
        "neurons=top_2",
        "seeds=[0,1]",
        "method.steps=40",
        f"heldout=[{assets['c']}]",
        f"dataset_path={assets['data']}",
        "natural.top_k=2",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("config.yaml", "synthesis.h5", "synthesis.csv", "grid_ga.png", "summary.json"):
        assert (out / name).is_file(), name
    with h5py.File(out / "synthesis.h5") as f:
        assert f.attrs["method"] == "ga" and f.attrs["objective"] == "neuron"
        assert f["images"].shape == (2, 2, 1, SIZE, SIZE)
        assert list(f["problems/neuron_index"][()]) == [3, 1]  # top_2 by test correlation
        assert list(f["problems/neuron_id"][()]) == [13, 11]
        assert set(f["scores"]) == {"generating", "heldout_0"}
        assert f["trace"].shape == (2, 2, 40)
        assert (f["timing/seconds_per_image"][()] > 0).all()
        norms = np.linalg.norm(f["images"][()].reshape(4, -1), axis=1)
        assert np.allclose(norms, 0.25 * SIZE, atol=1e-3)
        natural = f["natural/score"][()]
        generating = f["scores/generating"][()]
        assert natural.shape == (2, 2) and (natural[:, 0] >= natural[:, 1]).all()
        assert (generating.max(axis=1) > natural[:, 0]).all()  # 40 GA steps beat 30 noise images at equal contrast
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["n_problems"] == 2 and summary["steps"] == 40
    assert summary["natural"]["fraction_above_natural"] == 1.0
    rows = (out / "synthesis.csv").read_text().splitlines()
    assert len(rows) == 1 + 4 and "score_heldout_0" in rows[0] and "ratio_to_natural" in rows[0]


@pytest.mark.slow
def test_egg_synth_out_of_range_neurons_exit_2_with_one_line(assets, tmp_path):
    proc = _synth(tmp_path / "run", f"model={assets['a']}", "neurons=[1,7]", "method.steps=2")
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.startswith("egg: error:")]
    assert lines == ["egg: error: neurons=[7] out of range: the model has 5 neurons, expected indices 0..4"]
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_egg_synth_nan_scores_exit_2_naming_the_neuron(assets, tmp_path):
    proc = _synth(tmp_path / "run", f"model={assets['nan']}", "neurons=[2]", "seeds=[3]", "method.steps=2")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "egg: error: score of neuron 12 seed 3 is nan in the generating model" in proc.stderr


@pytest.mark.slow
def test_egg_synth_meni_with_gradient_ascent_is_refused(assets, tmp_path):
    proc = _synth(
        tmp_path / "run",
        f"model={assets['a']}",
        "objective=meni",
        "neurons=[0]",
        "method.steps=2",
        f"dataset_path={assets['data']}",
    )
    assert proc.returncode == 2
    assert "egg: error: objective=meni needs method in ['egg'], got method=ga" in proc.stderr


@pytest.mark.slow
def test_egg_synth_egg_meni_keeps_the_sample_and_top_natural_images(assets, tmp_path):
    out = tmp_path / "run"
    proc = _synth(
        out,
        f"model={assets['a']}",
        "method=egg",
        "objective=meni",
        "prior=spectral",
        "prior.image_size=16",
        "prior.fit_crops=200",
        "method.steps=5",
        "neurons=[0,4]",
        "seeds=[2]",
        f"dataset_path={assets['data']}",
        "ground_truth=null",
        "natural.top_k=3",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    with h5py.File(out / "synthesis.h5") as f:
        settings = json.loads(f.attrs["method_settings"])
        assert settings["energy_scale"] == 2.0 and settings["steps"] == 5 and settings["prior"] == "spectral"
        assert f.attrs["objective"] == "meni"
        assert f["generator_images"].shape == (2, 1, 1, 16, 16)
        assert f["natural/images"].shape == (2, 3, 1, SIZE, SIZE)
        assert f.attrs["dataset"] == str(assets["data"])
    assert (out / "grid_egg.png").is_file()
