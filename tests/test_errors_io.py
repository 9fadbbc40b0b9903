"""Run folders and disks under the error contract: unusable run folders, a full disk, staged results, error mapping."""

import errno
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from data_assets import TINY
from error_contract import ENV, assert_one_error, egg, existing_run_folder, snapshot
from test_synthesis_cli import _checkpoint

from egg_cli.errors import EggError, user_error
from egg_cli.io import atomic_hdf5, atomic_path, remove_stale_temporaries, write_json


def test_a_file_where_the_run_folder_should_be_is_one_line(tmp_path):
    blocker = tmp_path / "run"
    blocker.write_text("a file")
    for run_dir, problem in ((blocker, "File exists"), (blocker / "sub", "Not a directory")):
        proc = egg("simulate", *TINY, f"hydra.run.dir={run_dir}")
        line = assert_one_error(proc, f"cannot create the run folder or its log: {problem}")
        assert "expected hydra.run.dir to be a folder egg can create and write" in line
    assert blocker.read_text() == "a file"


@pytest.fixture
def tmpfs(tmp_path):
    """Mount a small tmpfs (root only); yields a function that mounts it with options."""
    mounted: list[Path] = []

    def mount(name: str, options: str) -> Path:
        target = tmp_path / name
        target.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip() or 'not permitted'})")
        mounted.append(target)
        return target

    yield mount
    for target in mounted:
        subprocess.run(["umount", str(target)], check=True)


def test_a_read_only_run_folder_is_one_line(tmpfs):
    disk = tmpfs("ro", "size=1m,ro")
    proc = egg("simulate", *TINY, f"hydra.run.dir={disk / 'run'}")
    assert_one_error(proc, "Read-only file system")
    assert list(disk.iterdir()) == []


def test_simulate_onto_a_full_disk_is_one_line_with_path_and_bytes_and_no_partial_file(tmpfs):
    """It used to end in a segmentation fault inside HDF5's file close, leaving a .dataset.h5.*.tmp."""
    disk = tmpfs("full", "size=300k")
    out = disk / "run"
    proc = egg("simulate", *TINY, f"hydra.run.dir={out}")
    line = assert_one_error(proc, f"no space left on device to write {out / 'dataset.h5'}: it needs about")
    assert " bytes are free" in line
    assert list(disk.iterdir()) == []


def _enospc(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_injected_enospc_in_an_atomic_write_names_path_and_bytes_and_leaves_no_file(tmp_path, monkeypatch):
    target = tmp_path / "table.json"
    with pytest.raises(EggError, match=r"no space left on device to write .*table\.json: it needs more than the 5 bytes"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"12345")
            _enospc()
    assert list(tmp_path.iterdir()) == []


def test_torch_save_on_a_full_disk_is_a_user_error(tmp_path, monkeypatch):
    """torch.save reports a full disk only as 'file write failed'."""

    def failing_save(obj, f):
        Path(f).write_bytes(b"partial")
        raise RuntimeError(
            "[enforce fail at inline_container.cc:626] . PytorchStreamWriter failed writing file data/0: file write failed"
        )

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(EggError, match=r"model\.pt: it needs more than the 7 bytes written"):
        with atomic_path(tmp_path / "model.pt") as tmp:
            torch.save({}, tmp)
    assert list(tmp_path.iterdir()) == []


def test_too_little_free_space_is_reported_before_writing(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: shutil._ntuple_diskusage(10**6, 10**6 - 100, 100))
    with pytest.raises(EggError, match=r"summary\.json: it needs about \d+ bytes, 100 bytes are free"):
        write_json(tmp_path / "summary.json", {"values": list(range(100))})
    with pytest.raises(EggError, match=r"results\.h5: it needs about \d+ bytes, 100 bytes are free"):
        with atomic_hdf5(tmp_path / "results.h5") as f:
            f.create_dataset("x", data=np.zeros(1000))
    assert list(tmp_path.iterdir()) == []


def test_atomic_hdf5_writes_a_readable_file(tmp_path):
    with atomic_hdf5(tmp_path / "a.h5") as f:
        f.create_dataset("x", data=np.arange(5))
        f.attrs["kind"] = "test"
    with h5py.File(tmp_path / "a.h5") as f:
        assert f["x"][()].tolist() == [0, 1, 2, 3, 4] and f.attrs["kind"] == "test"
    assert [p.name for p in tmp_path.iterdir()] == ["a.h5"]


def test_stale_temporaries_are_found_in_subfolders(tmp_path):
    (tmp_path / "maps").mkdir()
    stale = [tmp_path / ".summary.json.a1b2.tmp", tmp_path / "maps" / ".layer_a.nii.gz.x9.tmp"]
    for path in stale:
        path.write_text("half")
    (tmp_path / "keep.tmp").write_text("not ours: no leading dot")
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted(stale)
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["keep.tmp"]


def test_a_failure_after_results_were_written_leaves_the_folder_as_it_was(tmp_path):
    """Results are staged: synthesis.h5 and the grid are written, then the last write fails on bad input."""
    model = _checkpoint(tmp_path / "m.pt", 0)
    out = tmp_path / "run"
    before = existing_run_folder(out)
    inject = (
        "import sys, egg_cli.cli.synth as s; from egg_cli.errors import EggError; from egg_cli.cli import main\n"
        "def refuse(path, data): raise EggError(f'refused to write {path}')\n"
        "s.write_json = refuse; main(sys.argv[1:])"
    )
    args = ["synth", f"model={model}", "neurons=[0]", "seeds=[0]", "method.steps=2", "progress=false", f"hydra.run.dir={out}"]
    proc = subprocess.run([sys.executable, "-c", inject, *args], capture_output=True, text=True, env=ENV, timeout=300)
    assert_one_error(proc, f"refused to write {out / 'summary.json'}")
    assert snapshot(out) == before


def _instantiation_error(cause: BaseException) -> BaseException:
    from hydra.errors import InstantiationException

    try:
        try:
            raise cause
        except Exception as err:
            raise InstantiationException("Error in call to target 'x.Y':\nfull_key: method") from err
    except InstantiationException as wrapped:
        return wrapped


def test_user_error_unwraps_hydra_and_omegaconf_and_leaves_bugs_alone():
    from omegaconf import OmegaConf
    from omegaconf.errors import MissingMandatoryValue

    assert str(user_error(_instantiation_error(EggError("method.steps=0 must be at least 1")))) == (
        "method.steps=0 must be at least 1"
    )
    assert "method: Y() got an unexpected keyword argument 'foo'" in str(
        user_error(_instantiation_error(TypeError("Y() got an unexpected keyword argument 'foo'")))
    )
    assert user_error(_instantiation_error(ZeroDivisionError("division by zero"))) is None
    cfg = OmegaConf.create({"model": "???"})
    with pytest.raises(MissingMandatoryValue) as missing:
        _ = cfg.model
    assert str(user_error(missing.value)).startswith("model= is required")
    assert str(user_error(PermissionError(errno.EACCES, "Permission denied", "/x/run"))) == (
        "/x/run: Permission denied; expected a path you may read and write"
    )
    assert user_error(KeyError("internal")) is None


def test_an_unknown_demo_experiment_is_one_line_naming_the_available_ones(tmp_path):
    out = tmp_path / "demo"
    proc = egg("demo", "experiment=bogus", f"hydra.run.dir={out}")
    assert_one_error(proc, "Could not find 'experiment/bogus'; Available options in 'experiment': paper, small, tiny")
    assert not out.exists()


def test_state_dicts_are_read_from_torch_and_safetensors_files_and_bad_files_are_one_line(tmp_path):
    from safetensors.torch import save_file

    from egg_cli.io import read_state_dict

    weights = {"conv.weight": torch.arange(6.0).view(2, 3)}
    torch.save({"model": weights, "epoch": 3}, tmp_path / "wrapped.pt")
    save_file(weights, str(tmp_path / "plain.safetensors"))
    for name in ("wrapped.pt", "plain.safetensors"):
        state = read_state_dict(tmp_path / name, "model.weights", "a state dict")
        assert list(state) == ["conv.weight"] and torch.equal(state["conv.weight"], weights["conv.weight"])
    (tmp_path / "cut.pt").write_bytes((tmp_path / "wrapped.pt").read_bytes()[:100])
    torch.save([1, 2], tmp_path / "list.pt")
    cases = {
        "cut.pt": "model.weights=.*cut.pt cannot be read as a state dict .*; expected a state dict",
        "list.pt": "model.weights=.*list.pt holds a list; expected a state dict",
        "absent.pt": "model.weights=.*absent.pt does not exist; expected a state dict",
    }
    for name, message in cases.items():
        with pytest.raises(EggError, match=message):
            read_state_dict(tmp_path / name, "model.weights", "a state dict")
