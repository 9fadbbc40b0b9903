"""``egg train`` end to end: run folder, reload, kill and resume, errors with exit code 2, seed ensembles."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from models_toys import write_toy_dataset

from egg_cli import metrics
from egg_cli.data import load_dataset
from egg_cli.models import Ensemble, load_model

EGG = [sys.executable, "-c", "from egg_cli.cli import main; main()", "train"]
TINY = [
    "model.core.channels=4",
    "model.core.layers=2",
    "model/readout=gaussian",
    "model.readout.init_sigma=0.2",
    "trainer.batch_size=32",
    "trainer.lr=0.01",
]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def egg_train(*args, check=True):
    proc = subprocess.run([*EGG, *args], capture_output=True, text=True, env=ENV, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"egg train failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy")
    write_toy_dataset(folder / "a.h5", n_neurons=8, size=24, n_train=320, n_validation=64, n_test=16, repeats=3)
    write_toy_dataset(folder / "b.h5", n_neurons=9, size=24, n_train=64, n_validation=32, n_test=8, repeats=2, seed=1)
    return folder


@pytest.mark.slow
def test_egg_train_writes_a_run_folder_whose_checkpoint_reproduces_its_metrics(toy, tmp_path):
    run = tmp_path / "run"
    egg_train(f"dataset_path={toy / 'a.h5'}", *TINY, "trainer.max_epochs=3", f"hydra.run.dir={run}")
    for name in (
        "config.yaml",
        "model.pt",
        "metrics.json",
        "neurons.csv",
        "history.json",
        "summary.json",
        "training_curves.png",
        "oracle_scatter.png",
        "training_state.pt",
    ):
        assert (run / name).is_file(), name
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["training"]["epochs"] == 3
    m = json.loads((run / "metrics.json").read_text())
    assert m["headline_tier"] == "test"
    for key in ("correlation", "correlation_to_average", "feve", "oracle"):
        assert set(m["test"][key]) >= {"mean", "median"}
    assert m["test"]["fraction_of_oracle"] == pytest.approx(m["test"]["correlation"]["mean"] / m["test"]["oracle"]["mean"])
    rows = (run / "neurons.csv").read_text().strip().splitlines()
    assert len(rows) == 9 and rows[0].startswith("neuron_id,validation_correlation")
    # the reloaded checkpoint gives the same per-trial predictions, hence the same test correlation
    ds = load_dataset(toy / "a.h5")
    model = load_model(run)
    trials = ds.trials("test")
    with torch.no_grad():
        pred = model(torch.as_tensor(ds.zscore(ds.images[ds.trial_image[trials]]))).numpy()
    corr = metrics.correlation(pred, ds.responses[trials])
    assert corr.mean() == pytest.approx(m["test"]["correlation"]["mean"], abs=1e-5)
    assert np.allclose(model.test_correlation, corr, atol=1e-5)
    assert model.dataset_path == str(toy / "a.h5")


@pytest.mark.slow
def test_a_killed_run_continues_where_it_stopped(toy, tmp_path):
    run = tmp_path / "run"
    args = [f"dataset_path={toy / 'a.h5'}", *TINY, "trainer.batch_size=8", "trainer.max_epochs=6", f"hydra.run.dir={run}"]
    proc = subprocess.Popen([*EGG, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    deadline = time.time() + 300
    while not (run / "training_state.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = torch.load(run / "training_state.pt", weights_only=False)["state"]
    assert 1 <= state["epoch"] < 6 and not state["finished"], "the run finished before it could be killed"
    assert not (run / "summary.json").exists()
    egg_train(*args)
    log = (run / "train.log").read_text()
    assert f"resuming from {run / 'training_state.pt'} after epoch {state['epoch']}" in log
    history = json.loads((run / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5, 6]
    assert json.loads((run / "summary.json").read_text())["status"] == "finished"


@pytest.mark.slow
def test_resuming_with_another_dataset_or_architecture_fails_with_one_line(toy, tmp_path):
    run = tmp_path / "run"
    base = [*TINY, "trainer.max_epochs=1", f"hydra.run.dir={run}"]
    egg_train(f"dataset_path={toy / 'a.h5'}", *base)
    other = egg_train(f"dataset_path={toy / 'b.h5'}", *base, check=False)
    assert other.returncode == 2
    assert other.stderr.strip().splitlines()[-1].startswith("egg: error: training state")
    assert "different dataset" in other.stderr
    wider = egg_train(f"dataset_path={toy / 'a.h5'}", *base, "model.core.channels=5", check=False)
    assert wider.returncode == 2 and "different model config" in wider.stderr
    # a checkpoint of other neurons cannot initialize a model of this dataset
    init = egg_train(
        f"dataset_path={toy / 'b.h5'}",
        *TINY,
        "trainer.max_epochs=1",
        f"init_checkpoint={run / 'model.pt'}",
        f"hydra.run.dir={tmp_path / 'init'}",
        check=False,
    )
    assert init.returncode == 2
    assert "predicts 8 neurons; dataset" in init.stderr and "has 9" in init.stderr
    assert not (tmp_path / "init").exists()  # a fresh run that failed on bad input leaves nothing behind


@pytest.mark.parametrize(
    "args,expected",
    [
        ([], "dataset_path= is required"),
        (["dataset_path=/no/such/file.h5"], "/no/such/file.h5"),
        (["dataset_path=DATA", "trainer.lr=-1"], "trainer.lr=-1 is not allowed"),
        (["dataset_path=DATA", "model.readout.dropout=1.5"], "model.readout.dropout=1.5 is invalid"),
        (["dataset=DATA"], "takes the dataset as dataset_path="),
    ],
)
def test_bad_input_exits_2_with_one_line(toy, tmp_path, args, expected):
    args = [a.replace("DATA", str(toy / "a.h5")) for a in args]
    proc = egg_train(*args, f"hydra.run.dir={tmp_path / 'run'}", check=False)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("egg: error:") and expected in last


@pytest.mark.slow
def test_multirun_over_seeds_trains_an_ensemble(toy, tmp_path):
    sweep = tmp_path / "sweep"
    egg_train("-m", "seed=1,2", f"dataset_path={toy / 'a.h5'}", *TINY, "trainer.max_epochs=1", f"hydra.sweep.dir={sweep}")
    members = sorted(p.parent.name for p in sweep.glob("*/model.pt"))
    assert members == ["0", "1"]
    seeds = [json.loads((sweep / m / "summary.json").read_text())["seed"] for m in members]
    assert seeds == [1, 2]
    ensemble = load_model(sweep)
    assert isinstance(ensemble, Ensemble) and len(ensemble.members) == 2
    x = torch.randn(3, 1, 24, 24)
    a, b = (m(x) for m in ensemble.members)
    assert not torch.allclose(a, b)  # different seeds, different models
    assert torch.allclose(ensemble(x), (a + b) / 2)


def test_progress_false_keeps_the_epoch_bars_out_of_the_log(toy, tmp_path):
    args = [f"dataset_path={toy / 'b.h5'}", *TINY, "trainer.max_epochs=1"]
    shown = egg_train(*args, f"hydra.run.dir={tmp_path / 'bars'}")
    hidden = egg_train(*args, "progress=false", f"hydra.run.dir={tmp_path / 'quiet'}")
    assert "epoch 1:" in shown.stderr and "batch" in shown.stderr
    assert "epoch 1:" not in hidden.stderr and "batch/s" not in hidden.stderr
