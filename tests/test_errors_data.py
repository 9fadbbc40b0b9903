"""Degenerate datasets under the error contract: refused on load by `egg info` and `egg train`, one line, exit 2."""

import re
import subprocess
import sys

import numpy as np
import pytest
from data_assets import TINY, small_arrays
from error_contract import ENV, assert_one_error, egg, existing_run_folder, snapshot
from test_data_schema import _write_raw

from egg_cli.data import load_dataset, write_dataset
from egg_cli.errors import EggError


def _zero_neurons(a):
    a["responses"], a["neuron_ids"] = a["responses"][:, :0], a["neuron_ids"][:0]


def _negative(a):
    a["responses"][4, 2] = -3.5


def _all_zero(a):
    a["responses"][:] = 0


def _nan(a):
    a["responses"][5, 1] = np.nan


DEGENERATE = {
    "zero_neurons": (_zero_neurons, "responses has shape (25, 0): no neurons"),
    "negative_responses": (_negative, "holds 1 negative values (min -3.5, first at trial 4, neuron 2)"),
    "all_zero_responses": (_all_zero, "responses are all zero (25 trials x 5 neurons)"),
    "nan_responses": (_nan, "responses holds 1 NaN/inf values (first at trial 5, neuron 1)"),
}


@pytest.fixture(params=list(DEGENERATE))
def degenerate(request, tmp_path):
    """A dataset file written without validation, and the message its load must give."""
    spoil, expected = DEGENERATE[request.param]
    arrays = small_arrays()
    spoil(arrays)
    return _write_raw(tmp_path / f"{request.param}.h5", arrays), expected, spoil


def test_load_refuses_degenerate_responses(degenerate):
    path, expected, _ = degenerate
    with pytest.raises(EggError, match=re.escape(expected)):
        load_dataset(path)


def test_write_refuses_degenerate_responses(degenerate, tmp_path):
    _, expected, spoil = degenerate
    arrays = small_arrays()
    spoil(arrays)
    with pytest.raises(EggError, match=r"expected responses \(T, n_neurons\), n_neurons >= 1"):
        write_dataset(tmp_path / "out.h5", **arrays)
    assert not list(tmp_path.glob("*out.h5*"))


def test_egg_info_on_degenerate_data_is_one_line(degenerate):
    path, expected, _ = degenerate
    assert_one_error(egg("info", str(path)), expected)


def test_egg_train_on_degenerate_data_is_one_line_and_writes_nothing(degenerate, tmp_path):
    path, expected, _ = degenerate
    out = tmp_path / "run"
    before = existing_run_folder(out)
    proc = egg("train", f"dataset_path={path}", "trainer.max_epochs=1", f"hydra.run.dir={out}")
    assert_one_error(proc, expected)
    assert snapshot(out) == before


def test_a_bug_in_egg_info_is_a_one_line_report_not_a_traceback(tmp_path):
    """``egg info`` is not a Hydra app: what escapes it still follows the contract (exit 1, one line)."""
    arrays = small_arrays()
    path = tmp_path / "d.h5"
    write_dataset(path, **arrays)
    inject = "import sys, egg_cli.cli.info as i; from egg_cli.cli import main; i.oracle_correlation = None; main(sys.argv[1:])"
    proc = subprocess.run([sys.executable, "-c", inject, "info", str(path)], capture_output=True, text=True, env=ENV, timeout=120)
    assert_one_error(proc, "internal error, a bug in egg (TypeError", code=1)


SIMULATE_CASES = {
    "negative_seed": (["seed=-1"], "seed=-1: expected a non-negative integer"),
    "seed_text": (["seed=one"], "seed=one: expected an integer"),
    "negative_example_neurons": (["report.example_neurons=-1"], "report.example_neurons=-1: expected 0 or a positive"),
    "no_train_images": (["simulation.n_train=0"], "simulation.n_train=0 is not allowed"),
    "output_outside_the_run_folder": (["output=../x.h5"], "output='../x.h5' is not allowed"),
}


@pytest.mark.parametrize("case", list(SIMULATE_CASES))
def test_bad_simulate_settings_exit_2_with_one_line_and_write_nothing(tmp_path, case):
    args, expected = SIMULATE_CASES[case]
    out = tmp_path / "run"
    before = existing_run_folder(out)
    proc = egg("simulate", *TINY, *args, f"hydra.run.dir={out}")
    assert_one_error(proc, expected)
    assert snapshot(out) == before
