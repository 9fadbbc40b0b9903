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
    expected = {"missing": "does not exist", "corrupt": "is not a readable HDF5 file", "no_responses": "dataset 'responses' is missing"}
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
