"""`egg synth method=xdream|cmaes` as a user runs it: ground truth with spike noise, a config error.

The closed loop with the rig script (timeout, resume) is in test_blackbox_closed_loop.py."""

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from blackbox_assets import checkpoint_on, tiny_simulation

EGG = [sys.executable, "-c", "from egg_cli.cli import main; main()"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    root = tmp_path_factory.mktemp("blackbox_cli")
    dataset = tiny_simulation(root / "dataset.h5")
    return {"dataset": dataset, "model": checkpoint_on(dataset, root / "model.pt")}


def _synth(out: Path, *overrides: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*EGG, "synth", f"hydra.run.dir={out}", "progress=false", *overrides],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=timeout,
    )


@pytest.mark.slow
def test_cmaes_on_the_ground_truth_with_spike_noise_reports_noise_free_scores(simulated, tmp_path):
    out = tmp_path / "run"
    proc = _synth(
        out,
        f"model={simulated['model']}",
        "method=cmaes",
        "method.budget=120",
        "neurons=[0,2]",
        "seeds=[0]",
        "generator.grid=6",
        "scorer=ground_truth",
        "method.noise.max_count=5",
        "ground_truth=true",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with h5py.File(out / "synthesis.h5") as f:
        settings = json.loads(f.attrs["method_settings"])
        assert settings["scorer_resolved"]["noise_max_count"] == 5.0 and len(settings["scorer_resolved"]["noise_reference"]) == 2
        # the scorer's noise-free score of the final image is its ground-truth response
        assert np.allclose(f["extras/final_expected_score"][()], f["scores/ground_truth"][()], rtol=1e-4)
        # observed scores are spike counts in rate units: multiples of reference / max_count
        reference = np.asarray(settings["scorer_resolved"]["noise_reference"])
        counts = f["extras/best_observed_score"][()][:, 0] * 5.0 / reference
        assert np.allclose(counts, np.round(counts), atol=1e-3)
        assert f["trace"].shape == (2, 1, 3)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "cmaes" and summary["status"] == "finished"


@pytest.mark.slow
def test_deepsim_without_weights_is_a_one_line_error(simulated, tmp_path):
    proc = _synth(tmp_path / "run", f"model={simulated['model']}", "method=xdream", "generator=deepsim", "neurons=[0]")
    assert proc.returncode == 2
    assert "generator.weights" in proc.stderr and "Traceback" not in proc.stderr
