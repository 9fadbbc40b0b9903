"""`egg synth` under the error contract: bad overrides, Hydra-built objects, mixed-up populations, bugs.

Every refused run exits 2 with one ``egg: error:`` line and leaves its run folder as it was.
"""

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from data_assets import small_arrays
from error_contract import ENV, assert_one_error, egg, existing_run_folder, snapshot
from test_synthesis_cli import MODEL_CFG

from egg_cli.data import load_dataset, write_dataset
from egg_cli.models import build_model, save_checkpoint

SIZE = 8  # the images of data_assets.small_arrays
IDS = np.arange(100, 105)


def _dataset(path: Path, seed: int) -> Path:
    arrays = small_arrays(seed=seed)
    write_dataset(path, arrays["images"], arrays["responses"], arrays["trial_image"], arrays["tiers"], arrays["neuron_ids"])
    return path


def _checkpoint(path: Path, dataset: Path | None, size: int = SIZE, ids: np.ndarray = IDS) -> Path:
    """A model of ``ids``; with ``dataset`` it carries that dataset's fingerprint as `egg train` writes it."""
    model = build_model(MODEL_CFG, (1, size, size), ids, 120.0, 50.0).eval()
    if dataset is not None:
        model.dataset_path, model.dataset_id = str(dataset), load_dataset(dataset).population_id
    save_checkpoint(path, model, MODEL_CFG)
    return path


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth_errors")
    a, b = _dataset(root / "a.h5", 0), _dataset(root / "b.h5", 1)
    return {
        "data_a": a,
        "model_a": _checkpoint(root / "model_a.pt", a),
        "model_b": _checkpoint(root / "model_b.pt", b),  # same neuron ids, another recording
        "model_16px": _checkpoint(root / "model_16px.pt", a, size=16),
        "old_other_ids": _checkpoint(root / "old.pt", None, ids=IDS + 50),  # no fingerprint: compared by ids
        "not_a_checkpoint": a,
    }


BASE = ["neurons=[0]", "seeds=[0]", "method.steps=2", "natural.enabled=false", "progress=false"]

CASES = {
    # errors raised while Hydra instantiates the method or the objective
    "steps_zero": (["method.steps=0"], "method.steps=0 must be at least 1"),
    "negative_lr": (["method.lr=-1"], "method.lr=-1 must be positive"),
    "unknown_optimizer": (["method.optimizer=foo"], "method.optimizer='foo' unknown"),
    "unknown_argument": (["+method.foo=1"], "method: GradientAscent.__init__() got an unexpected keyword argument 'foo'"),
    "unknown_target": (["method._target_=no.such.Method"], "expected an importable class"),
    "negative_energy_scale": (["method=egg", "method.energy_scale=-1"], "method.energy_scale=-1 must be non-negative"),
    "negative_objective_default_energy": (
        ["method=egg", "method.objective_defaults.neuron.energy_scale=-2"],
        "method.objective_defaults.neuron.energy_scale=-2.0 must be non-negative",
    ),
    # the prior belongs to method=egg (and generator=prior) and is chosen one way: prior=<name>
    "prior_by_method_key": (
        ["method=egg", "method.prior=spectral"],
        "method.prior='spectral': expected the prior group's config",
    ),
    "prior_without_a_method_that_uses_it": (["prior=spectral"], "Could not override 'prior'"),
    "prior_not_a_checkpoint": (
        ["method=egg", "prior.name_or_path=NOT_A_CHECKPOINT"],
        "cannot be read as a torch checkpoint (UnpicklingError)",
    ),
    "spectral_prior_size_zero": (["method=egg", "prior=spectral", "prior.image_size=0"], "prior.image_size=0"),
    # wrong types never reach Python
    "seed_not_int": (["seed=abc"], "seed=abc: expected an integer (the default is 0)"),
    "seeds_not_ints": (["seeds=[a]"], "seeds=[a]: expected a list of integers"),
    "seeds_keyword": (["seeds=abc"], "seeds=abc: expected a list of integers"),
    "steps_float": (["method.steps=1.5"], "method.steps=1.5: expected an integer"),
    "lr_text": (["method.lr=fast"], "method.lr=fast: expected a number"),
    "bool_text": (["method.normalize_gradient=maybe"], "method.normalize_gradient=maybe: expected true or false"),
    "unknown_key": (["method.foo=1"], "Key 'foo' is not in struct"),
    # silent scientific mix-ups
    "heldout_of_another_recording": (["heldout=[MODEL_B]"], "was fitted to dataset"),
    "heldout_without_fingerprint_other_ids": (["heldout=[OLD_OTHER_IDS]"], "with other ids"),
    "heldout_of_another_image_size": (["heldout=[MODEL_16PX]"], "takes images of shape (1, 16, 16)"),
}


def _substitute(args: list[str], assets: dict) -> list[str]:
    names = {key.upper(): str(value) for key, value in assets.items()}
    out = []
    for arg in args:
        for name, value in names.items():
            arg = arg.replace(name, value)
        out.append(arg)
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_bad_synth_input_exits_2_with_one_line_and_leaves_the_folder_unchanged(assets, tmp_path, case):
    args, expected = CASES[case]
    out = tmp_path / "run"
    before = existing_run_folder(out)
    proc = egg("synth", f"model={assets['model_a']}", *BASE, *_substitute(args, assets), f"hydra.run.dir={out}")
    assert_one_error(proc, expected)
    assert snapshot(out) == before


def test_missing_model_is_one_line_and_a_fresh_run_folder_is_removed(tmp_path):
    out = tmp_path / "fresh"
    proc = egg("synth", "neurons=[0]", f"hydra.run.dir={out}")
    assert_one_error(proc, "model= is required: set model=<model.pt")
    assert not out.exists()


def test_natural_images_of_another_size_are_refused_unless_allowed(assets, tmp_path):
    args = ["synth", f"model={assets['model_16px']}", f"dataset_path={assets['data_a']}", *BASE, "natural.enabled=true"]
    refused = egg(*args, f"hydra.run.dir={tmp_path / 'refused'}")
    assert_one_error(refused, "holds images of shape (1, 8, 8); expected the same image size")
    assert not (tmp_path / "refused").exists()
    allowed = egg(*args, "allow_mismatch=true", f"hydra.run.dir={tmp_path / 'allowed'}")
    assert allowed.returncode == 0, allowed.stderr[-2000:]


def test_heldout_of_another_recording_scores_with_allow_mismatch(assets, tmp_path):
    out = tmp_path / "run"
    proc = egg(
        "synth",
        f"model={assets['model_a']}",
        f"heldout=[{assets['model_b']}]",
        "allow_mismatch=true",
        *BASE,
        f"hydra.run.dir={out}",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert {"config.yaml", ".hydra", "synthesis.h5", "summary.json"} <= {p.name for p in out.iterdir()}
    assert not (out / ".egg-staging").exists()
    with h5py.File(out / "synthesis.h5") as f:
        assert set(f["scores"]) == {"generating", "heldout_0"}
        assert f.attrs["dataset_id"] == load_dataset(assets["data_a"]).population_id


def test_an_unexpected_exception_is_a_one_line_bug_report_with_exit_1(assets, tmp_path):
    """A bug (here: an injected ZeroDivisionError) says so in one line; debug=true shows the traceback."""
    inject = (
        "import sys, egg_cli.cli.synth as s; from egg_cli.cli import main; "
        "s.synthesize = lambda *a, **k: 1 / 0; main(sys.argv[1:])"
    )
    args = [sys.executable, "-c", inject, "synth", f"model={assets['model_a']}", *BASE]
    proc = subprocess.run([*args, f"hydra.run.dir={tmp_path / 'a'}"], capture_output=True, text=True, env=ENV, timeout=300)
    line = assert_one_error(proc, "internal error, a bug in egg (ZeroDivisionError: division by zero)", code=1)
    assert "please report it" in line and "debug=true" in line
    debug = subprocess.run(
        [*args, "debug=true", f"hydra.run.dir={tmp_path / 'b'}"], capture_output=True, text=True, env=ENV, timeout=300
    )
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "ZeroDivisionError" in debug.stderr


@pytest.fixture(scope="module")
def synth_run(assets, tmp_path_factory):
    """A GA run made on model_a (fitted to dataset a)."""
    out = tmp_path_factory.mktemp("synth_run") / "ga"
    proc = egg("synth", f"model={assets['model_a']}", *BASE, f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


EVALUATE_CASES = {
    "evaluator_of_another_recording": (["evaluators={m:MODEL_B}"], "evaluator 'm' was fitted to dataset"),
    "evaluator_of_another_image_size": (["evaluators={m:MODEL_16PX}"], "evaluator 'm' takes images of shape (1, 16, 16)"),
    "evaluator_of_other_ids": (["evaluators={m:OLD_OTHER_IDS}"], "evaluator 'm' has no neuron with id 100"),
    "grid_neurons_zero": (["evaluators={m:MODEL_A}", "grid_neurons=0"], "grid_neurons=0: expected a positive number"),
    "bootstrap_text": (["evaluators={m:MODEL_A}", "bootstrap=many"], "bootstrap=many: expected an integer"),
}


@pytest.mark.parametrize("case", list(EVALUATE_CASES))
def test_bad_evaluate_input_exits_2_with_one_line_and_leaves_the_folder_unchanged(assets, synth_run, tmp_path, case):
    args, expected = EVALUATE_CASES[case]
    out = tmp_path / "evaluate"
    before = existing_run_folder(out)
    proc = egg(
        "evaluate", f"runs=[{synth_run}]", f"dataset_path={assets['data_a']}", *_substitute(args, assets), f"hydra.run.dir={out}"
    )
    assert_one_error(proc, expected)
    assert snapshot(out) == before


def test_evaluate_with_an_evaluator_of_another_recording_runs_with_allow_mismatch(assets, synth_run, tmp_path):
    out = tmp_path / "evaluate"
    proc = egg(
        "evaluate",
        f"runs=[{synth_run}]",
        f"evaluators={{m:{assets['model_b']}}}",
        f"dataset_path={assets['data_a']}",
        "allow_mismatch=true",
        f"hydra.run.dir={out}",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out / "table.csv").is_file()
