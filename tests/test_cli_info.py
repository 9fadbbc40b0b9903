"""``egg info``: dataset summaries, and one clear line with exit 2 on unreadable input."""

from __future__ import annotations

import json

import h5py
import pytest
from data_assets import small_arrays, write_sensorium_folder
from test_cli_simulate import egg

from egg_cli.cli import main as egg_main
from egg_cli.data import write_dataset


def egg_in_process(capsys, monkeypatch, *args):
    """Run ``egg <args>`` through the dispatcher in this process: (exit code, stdout, stderr)."""
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.setattr("sys.argv", ["egg"])
    try:
        egg_main(list(args))
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def dataset(tmp_path):
    path = tmp_path / "d.h5"
    write_dataset(path, **small_arrays(repeats=4), attrs={"source": "test"})
    return path


def test_info_summarizes_tiers_repeats_images_and_reliability(dataset, capsys, monkeypatch):
    code, out, err = egg_in_process(capsys, monkeypatch, "info", str(dataset))
    assert code == 0, err
    assert "neurons      5 (ids 100 .. 104)" in out
    assert "images       19 of 1x8x8" in out
    assert "  train             12      12  1" in out
    assert "  test               3      12  4" in out
    assert "median oracle correlation" in out and "(3 repeated images, 12 trials)" in out
    assert "ground truth none" in out
    code, out, _ = egg_in_process(capsys, monkeypatch, "info", str(dataset), "--json")
    assert json.loads(out)["tiers"]["validation"] == {"images": 4, "trials": 4, "repeats_min": 1, "repeats_max": 1}


def test_info_reads_a_sensorium_folder(tmp_path, capsys, monkeypatch):
    root = write_sensorium_folder(tmp_path / "mouse", small_arrays(repeats=2))
    code, out, err = egg_in_process(capsys, monkeypatch, "info", str(root))
    assert code == 0, err
    assert "sensorium-folder" in out and "  test               3       6  2" in out


@pytest.mark.parametrize("kind", ["missing", "corrupt", "no_responses"])
def test_unreadable_input_prints_one_line_and_exits_2(tmp_path, dataset, capsys, monkeypatch, kind):
    path = tmp_path / f"{kind}.h5"
    if kind == "corrupt":
        path.write_bytes(b"\x89HDF\r\n" + bytes(range(256)) * 8)
    elif kind == "no_responses":
        path.write_bytes(dataset.read_bytes())
        with h5py.File(path, "a") as f:
            del f["responses"]
    code, _, err = egg_in_process(capsys, monkeypatch, "info", str(path))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("egg: error: ") and str(path) in lines[0], err
    expected = {
        "missing": "does not exist",
        "corrupt": "is not a readable HDF5 file",
        "no_responses": "dataset 'responses' is missing",
    }
    assert expected[kind] in lines[0]


@pytest.mark.slow
def test_truncated_file_through_the_console_script(tmp_path, dataset):
    path = tmp_path / "truncated.h5"
    path.write_bytes(dataset.read_bytes()[:3000])
    result = egg("info", str(path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"egg: error: {path} is not a readable HDF5 file (3000 bytes; truncated or corrupt: Unable to synchronously open file "
        f"(truncated file: eof = 3000, sblock->base_addr = 0, stored_eof = {dataset.stat().st_size})); expected an HDF5 dataset written by egg"
    ]


def test_full_error_environment_shows_the_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    monkeypatch.setattr("sys.argv", ["egg"])
    with pytest.raises(Exception, match="does not exist"):
        egg_main(["info", str(tmp_path / "missing.h5")])


def test_info_summarizes_a_model_checkpoint_and_its_run_folder(tmp_path, capsys, monkeypatch):
    import numpy as np

    from egg_cli.models import build_model
    from egg_cli.models.checkpoint import save_checkpoint

    cfg = {
        "core": {"_target_": "egg_cli.models.cores.StackedConvCore", "channels": 4, "layers": 2},
        "readout": {"_target_": "egg_cli.models.readouts.GaussianReadout"},
        "output": {"_target_": "egg_cli.models.EluPlusOne"},
    }
    model = build_model(cfg, (1, 24, 24), [7, 8, 9], 100.0, 50.0, np.array([1.0, 2.0, 3.0]))
    model.test_correlation = np.array([0.2, 0.4, 0.9])
    run = tmp_path / "run"
    run.mkdir()
    metrics = {
        "test": {
            "correlation": {"mean": 0.5, "median": 0.4},
            "oracle": {"mean": 0.625},
            "fraction_of_oracle": 0.8,
            "feve": {"mean": 0.3},
        }
    }
    training = {"epochs": 5, "best_epoch": 4, "train_minutes": 1.5, "stop_reason": "early stopping"}
    save_checkpoint(run / "model.pt", model, cfg, extra={"seed": 3, "metrics": metrics, "training": training})
    n_weights = sum(p.numel() for p in model.parameters())
    for target in (run, run / "model.pt"):
        code, out, err = egg_in_process(capsys, monkeypatch, "info", str(target))
        assert code == 0, err
        assert "core         StackedConvCore (channels=4, layers=2)" in out
        assert "readout      GaussianReadout ()" in out
        assert f"neurons      3 (ids 7 .. 9); {n_weights:,} weights" in out
        assert "input        1x24x24, pixels z-scored with mean 100.00, std 50.00" in out
        assert "training     5 epochs (best 4), 1.5 min; stopped: early stopping" in out
        assert "test         correlation mean 0.500, median 0.400; oracle 0.625, fraction of oracle 0.80; FEVE 0.300" in out
    code, out, _ = egg_in_process(capsys, monkeypatch, "info", str(run), "--json")
    report = json.loads(out)
    assert report["kind"] == "model" and report["seed"] == 3 and report["test_correlation_median"] == pytest.approx(0.4)


def test_info_on_a_file_that_is_not_a_checkpoint_exits_2_with_one_line(tmp_path, capsys, monkeypatch):
    path = tmp_path / "model.pt"
    path.write_text("not a checkpoint")
    code, out, err = egg_in_process(capsys, monkeypatch, "info", str(path))
    assert code == 2 and out == ""
    assert err.strip().count("\n") == 0
    assert "could not be read" in err and "expected a model.pt written by egg train" in err
