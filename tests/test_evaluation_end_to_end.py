"""A tiny end-to-end `egg evaluate`: simulated data, small checkpoints, two `egg synth` runs, three evaluators."""

import csv
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from data_assets import run_egg

from egg_cli.models import build_model, save_checkpoint
from egg_cli.simulation import SimulationConfig, load_ground_truth, simulate, write_simulation
from egg_cli.simulation.population import PopulationConfig

SIZE = 24
MODEL_CFG = {
    "core": {
        "_target_": "egg_cli.models.cores.StackedConvCore",
        "channels": 4,
        "layers": 2,
        "input_kernel": 5,
        "hidden_kernel": 3,
    },
    "readout": {"_target_": "egg_cli.models.readouts.GaussianReadout", "gauss_type": "isotropic"},
    "output": {"_target_": "egg_cli.models.EluPlusOne"},
}


def egg(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run_egg(*args, cwd=cwd, env={**os.environ, "OMP_NUM_THREADS": "1"})


def checkpoint(path: Path, dataset_neurons: np.ndarray, mean: float, std: float, seed: int) -> Path:
    torch.manual_seed(seed)
    model = build_model(MODEL_CFG, (1, SIZE, SIZE), dataset_neurons, mean, std, mean_response=np.full(len(dataset_neurons), 2.0))
    model.test_correlation = np.linspace(0.9, 0.1, len(dataset_neurons))
    save_checkpoint(path, model.eval(), MODEL_CFG)
    return path


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate_e2e")
    sim = simulate(
        SimulationConfig(
            n_neurons=5,
            image_size=SIZE,
            n_train=60,
            n_validation=20,
            n_test=10,
            test_repeats=2,
            neurons=PopulationConfig(cycles_per_image=(6, 4, 2)),
        ),
        seed=0,
        progress=False,
    )
    write_simulation(sim, root / "dataset.h5")
    gt = load_ground_truth(root / "dataset.h5")
    ids = np.asarray(gt.neuron_ids)
    ckpts = [checkpoint(root / f"m{k}.pt", ids, gt.pixel_mean, gt.pixel_std, seed=k) for k in range(3)]
    runs = {}
    for name, extra in (("ga", []), ("ga_fourier", ["method.fourier=true"])):
        out = root / "synth" / name
        proc = egg(
            "synth",
            f"model={ckpts[0]}",
            f"dataset_path={root / 'dataset.h5'}",
            "neurons=[0,2,4]",
            "seeds=[0,1]",
            "method.steps=8",
            "batch_size=6",
            "progress=false",
            *extra,
            f"hydra.run.dir={out}",
            cwd=root,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        runs[name] = out
    return root, ckpts, runs


@pytest.mark.slow
def test_egg_evaluate_end_to_end_scores_runs_in_held_out_models_and_the_ground_truth(workspace):
    root, ckpts, runs = workspace
    out = root / "eval"
    proc = egg(
        "evaluate",
        f"runs=[{{path:{runs['ga']},method:ga,generator:cnn}},{{path:{runs['ga_fourier']},method:fourier,generator:cnn}}]",
        f"evaluators={{held_out:[{ckpts[1]},{ckpts[2]}],truth:ground_truth}}",
        f"dataset_path={root / 'dataset.h5'}",
        "bootstrap=50",
        f"hydra.run.dir={out}",
        cwd=root,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished"
    assert summary["evaluators"] == {"held_out": "model", "truth": "ground_truth"}
    assert summary["rms_contrast"] == pytest.approx(0.25)
    with open(out / "table.csv") as f:
        table = list(csv.DictReader(f))
    assert [(r["evaluator"], r["method"], r["neurons"]) for r in table] == [
        ("held_out", "ga", "3"),
        ("held_out", "fourier", "3"),
        ("truth", "ga", "3"),
        ("truth", "fourier", "3"),
    ]

    # recompute the ground-truth column by hand: best-seed image, norm 0.25*24 in the truth's z-units,
    # divided by the best of the dataset's images at the same norm
    from egg_cli.data import load_dataset
    from egg_cli.synthesis.results import read_synthesis

    gt = load_ground_truth(root / "dataset.h5")
    data = load_dataset(root / "dataset.h5")
    norm = 0.25 * SIZE

    def at_norm(z: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.asarray(z, dtype=np.float32))
        return t * (norm / t.flatten(1).norm(dim=1)).view(-1, 1, 1, 1)

    with torch.no_grad():
        natural = gt(at_norm((data.images.astype(np.float32) - gt.pixel_mean) / gt.pixel_std)).numpy().max(0)
        result = read_synthesis(runs["ga"] / "synthesis.h5")
        best = result.best_seed
        mei = result.images[np.arange(3), best]  # z-scored with the generating model's statistics (same dataset)
        raw = mei * result.adapter["pixel_std"] + result.adapter["pixel_mean"]
        responses = gt(at_norm((raw - gt.pixel_mean) / gt.pixel_std)).numpy()
    neurons = result.problems["neuron_index"]
    expected = responses[np.arange(3), neurons] / natural[neurons]
    assert float(table[2]["mean"]) == pytest.approx(expected.mean(), rel=1e-4)
    with open(out / "per_neuron.csv") as f:
        per_neuron = [r for r in csv.DictReader(f) if r["evaluator"] == "truth" and r["method"] == "ga"]
    np.testing.assert_allclose([float(r["normalized"]) for r in per_neuron], expected, rtol=1e-4)
    with open(out / "compute.csv") as f:
        compute = {r["method"]: r for r in csv.DictReader(f)}
    assert float(compute["ga"]["seconds_per_image"]) == pytest.approx(float(result.seconds_per_image.mean()))
    assert compute["ga"]["steps"] == "8"
    for name in ("heatmap.png", "scatter_ga_vs_fourier.png", "images_cnn.png", "table.md"):
        assert (out / name).stat().st_size > 0

    # fraction of the ground-truth optimum: the selected MEI's truth response over the neuron's optimum at norm 0.25*24,
    # which is at least the ascent's own optimum and at least every selected image's response
    from egg_cli.simulation.ascent import fixed_norm_ascent

    _, optimum = fixed_norm_ascent(gt, torch.as_tensor(neurons), norm, steps=200)
    with open(out / "optimum.csv") as f:
        rows = {r["method"]: r for r in csv.DictReader(f) if r["evaluator"] == "truth"}
    assert set(rows) == {"ga", "fourier"} and rows["ga"]["neurons"] == "3"
    fractions = responses[np.arange(3), neurons] / np.maximum(optimum.numpy(), responses[np.arange(3), neurons])
    assert float(rows["ga"]["median"]) == pytest.approx(np.median(fractions), rel=1e-3)
    assert 0 < float(rows["ga"]["min"]) <= float(rows["ga"]["median"]) <= 1
    assert "Fraction of the ground-truth optimum" in (out / "table.md").read_text()


@pytest.mark.slow
def test_egg_evaluate_with_an_evaluator_of_other_neurons_exits_2_naming_it(workspace):
    root, ckpts, runs = workspace
    other = checkpoint(root / "other.pt", np.array([100, 101]), 100.0, 50.0, seed=9)
    proc = egg(
        "evaluate",
        f"runs=[{runs['ga']}]",
        f"evaluators={{stranger:{other}}}",
        f"dataset_path={root / 'dataset.h5'}",
        f"hydra.run.dir={root / 'bad'}",
        cwd=root,
    )
    assert proc.returncode == 2
    assert "evaluator 'stranger' has no neuron with id" in proc.stderr
    assert not (root / "bad").exists()
