"""`egg train` under the error contract: refused resumes leave the folder as it was, wrong types, a full disk."""

import shutil
import subprocess
from pathlib import Path

import pytest
from error_contract import assert_one_error, egg, existing_run_folder, snapshot
from models_toys import write_toy_dataset
from test_diffusion_train_prior import TINY as PRIOR_TINY

TINY = [
    "model.core.channels=4",
    "model.core.layers=2",
    "model/readout=gaussian",
    "model.readout.init_sigma=0.2",
    "trainer.batch_size=32",
    "trainer.max_epochs=1",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two toy datasets and a finished run folder trained on the first."""
    root = tmp_path_factory.mktemp("train_errors")
    write_toy_dataset(root / "a.h5", n_neurons=4, size=16, n_train=40, n_validation=16, n_test=8, repeats=2)
    write_toy_dataset(root / "b.h5", n_neurons=4, size=16, n_train=40, n_validation=16, n_test=8, repeats=2, seed=1)
    proc = egg("train", f"dataset_path={root / 'a.h5'}", *TINY, f"hydra.run.dir={root / 'run'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root


RESUMES = {
    "another_seed": (["seed=5"], "was written with a different seed (0); this run has 5"),
    "another_dataset": (["dataset_path=B"], "different dataset"),
    "another_architecture": (["model.core.channels=5"], "different model config"),
}


@pytest.mark.parametrize("case", list(RESUMES))
def test_a_refused_resume_leaves_config_hydra_logs_and_state_unchanged(trained, tmp_path, case):
    args, expected = RESUMES[case]
    run = tmp_path / "run"
    shutil.copytree(trained / "run", run)
    before = snapshot(run)
    assert {"config.yaml", ".hydra/config.yaml", ".hydra/overrides.yaml", "train.log", "training_state.pt"} <= set(before)
    args = [a.replace("=B", f"={trained / 'b.h5'}") for a in args]
    proc = egg("train", f"dataset_path={trained / 'a.h5'}", *TINY, *args, f"hydra.run.dir={run}")
    assert_one_error(proc, expected)
    assert snapshot(run) == before


TYPES = {
    "seed_text": (["seed=abc"], "seed=abc: expected an integer"),
    "lr_text": (["trainer.lr=fast"], "trainer.lr=fast: expected a number"),
    "epochs_float": (["trainer.max_epochs=1.5"], "trainer.max_epochs=1.5: expected an integer"),
    "channels_list": (["model.core.channels=[4]"], "model.core.channels=[4]: expected an integer"),
    "missing_dataset": (["dataset_path=???"], "dataset_path= is required: set dataset_path=<dataset.h5"),
    "unknown_trainer_key": (["+trainer.foo=1"], "trainer config has an unknown key"),
}


@pytest.mark.parametrize("case", list(TYPES))
def test_wrong_types_exit_2_with_one_line_before_any_write(trained, tmp_path, case):
    args, expected = TYPES[case]
    out = tmp_path / "run"
    before = existing_run_folder(out)
    proc = egg("train", f"dataset_path={trained / 'a.h5'}", *TINY[:-1], *args, f"hydra.run.dir={out}")
    assert_one_error(proc, expected)
    assert snapshot(out) == before


def test_stale_temporaries_and_staging_of_a_killed_run_are_removed_on_the_next_run(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained / "run", run)
    (run / ".model.pt.k1ll3d.tmp").write_bytes(b"half a checkpoint")
    (run / ".egg-staging").mkdir()
    (run / ".egg-staging" / "metrics.json").write_text("{")
    proc = egg("train", f"dataset_path={trained / 'a.h5'}", *TINY, f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not list(run.rglob("*.tmp")) and not (run / ".egg-staging").exists()
    assert (run / "model.pt").is_file() and (run / "summary.json").is_file()


@pytest.fixture
def small_disk(tmp_path):
    """A 300 KiB tmpfs that a checkpoint does not fit on (root only)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip() or 'not permitted'})")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_training_onto_a_full_disk_is_one_line_without_partial_files(trained, small_disk: Path):
    (small_disk / "filler").write_bytes(b"\0" * 250_000)
    out = small_disk / "run"
    proc = egg("train", f"dataset_path={trained / 'a.h5'}", *TINY, f"hydra.run.dir={out}")
    line = assert_one_error(proc, "no space left on device to write")
    assert "bytes" in line and "free some space" in line
    assert not out.exists()  # a fresh run folder is removed, temporaries with it
    assert not list(small_disk.rglob("*.tmp"))


def test_a_refused_train_prior_resume_leaves_the_folder_unchanged(tmp_path):
    """train-prior writes in place (its checkpoint is what a run resumes from), yet a refusal changes nothing."""
    run = tmp_path / "prior"
    first = egg("train-prior", *PRIOR_TINY, "training.steps=3", f"hydra.run.dir={run}")
    assert first.returncode == 0, first.stderr[-3000:]
    before = snapshot(run)
    assert {"config.yaml", ".hydra/overrides.yaml", "checkpoint.pt", "train_prior.log"} <= set(before)
    proc = egg("train-prior", *PRIOR_TINY, "training.steps=6", "unet.num_res_blocks=2", f"hydra.run.dir={run}")
    assert_one_error(proc, "num_res_blocks: 1 vs 2")
    assert snapshot(run) == before


PRIOR_CASES = {
    "negative_lr": (["training.lr=-1"], "expected lr > 0"),
    "ema_decay_above_one": (["training.ema_decay=2"], "0 <= ema_decay < 1"),
    "no_channels": (["unet.num_channels=0"], "num_channels=0, num_res_blocks=1: expected positive integers"),
    "no_noise_levels": (["diffusion.diffusion_steps=0"], "diffusion_steps=0: expected at least 2 noise levels"),
    "negative_sample_count": (["sample_count=-1"], "sample_count=-1 must be a positive integer"),
}


@pytest.mark.parametrize("case", list(PRIOR_CASES))
def test_bad_train_prior_settings_exit_2_with_one_line_and_write_nothing(tmp_path, case):
    args, expected = PRIOR_CASES[case]
    out = tmp_path / "prior"
    before = existing_run_folder(out)
    proc = egg("train-prior", *PRIOR_TINY, "training.steps=1", *args, f"hydra.run.dir={out}")
    assert_one_error(proc, expected)
    assert snapshot(out) == before
