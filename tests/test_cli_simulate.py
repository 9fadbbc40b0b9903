"""``egg simulate`` end to end, sweeps, and one-line errors with exit code 2."""

from __future__ import annotations

import csv
import json
import os
import subprocess

import numpy as np
import pytest
from data_assets import EGG, TINY

from egg_cli.data import load_dataset
from egg_cli.simulation import load_ground_truth


def egg(*args, env=None, cwd=None):
    environ = {**os.environ, "OMP_NUM_THREADS": "1"}
    environ.pop("HYDRA_FULL_ERROR", None)
    environ.update(env or {})
    return subprocess.run([*EGG, *args], capture_output=True, text=True, env=environ, cwd=cwd, timeout=300)


@pytest.mark.slow
def test_simulate_writes_dataset_tables_figure_and_summary(tmp_path):
    run = tmp_path / "run"
    result = egg("simulate", *TINY, "simulation.n_neurons=6", f"hydra.run.dir={run}")
    assert result.returncode == 0, result.stderr
    names = {p.name for p in run.iterdir()}
    assert {"dataset.h5", "neurons.csv", "overview.png", "summary.json", "config.yaml"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["neurons"] == 6
    assert summary["images"] == {"train": 300, "validation": 30, "test": 12} and summary["trials"] == 300 + 30 + 12 * 4
    assert sum(summary["pref_orientation_histogram"]["counts"]) == 6
    ds = load_dataset(run / "dataset.h5")
    assert ds.n_neurons == 6 and ds.image_shape == (1, 32, 32)
    assert ds.attrs["mean_rate"] == pytest.approx(summary["mean_rate"]) and ds.attrs["seed"] == 0
    with open(run / "neurons.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and {"rf_x", "oracle_correlation", "split_half_reliability", "pref_orientation"} <= set(rows[0])
    np.testing.assert_allclose([float(r["oracle_correlation"]) for r in rows], ds.neurons["oracle_correlation"], atol=1e-4)
    assert load_ground_truth(run / "dataset.h5").n_neurons == 6

    info = egg("info", str(run / "dataset.h5"))
    assert info.returncode == 0, info.stderr
    assert "neurons      6 (ids 0 .. 5)" in info.stdout
    assert "  test              12      48  4" in info.stdout
    assert "median oracle correlation" in info.stdout and "ground truth stored" in info.stdout


@pytest.mark.slow
def test_multirun_over_seeds_gives_one_dataset_per_seed(tmp_path):
    sweep = tmp_path / "sweep"
    result = egg("simulate", "-m", "seed=1,2", *TINY, "simulation.n_neurons=3", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr
    first, second = (load_dataset(sweep / job / "dataset.h5") for job in ("0", "1"))
    assert first.attrs["seed"] == 1 and second.attrs["seed"] == 2
    assert not np.array_equal(first.responses, second.responses)


@pytest.mark.slow
@pytest.mark.parametrize(
    "override,message",
    [
        (
            "simulation=nope",
            "egg: error: In 'simulate': Could not find 'simulation/nope'; Available options in 'simulation': v4_grating, v4_sim",
        ),
        ("simulation.n_neurons=0", "egg: error: simulation.n_neurons=0 is not allowed; expected a positive integer"),
    ],
)
def test_bad_config_prints_one_line_exits_2_and_leaves_no_run_folder(tmp_path, override, message):
    run = tmp_path / "run"
    result = egg("simulate", *TINY, override, f"hydra.run.dir={run}")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.stderr
    assert not run.exists()


@pytest.mark.slow
def test_debug_flag_shows_the_traceback(tmp_path):
    result = egg("simulate", *TINY, "simulation.n_neurons=0", "debug=true", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode != 0 and "Traceback" in result.stderr and "EggError" in result.stderr
