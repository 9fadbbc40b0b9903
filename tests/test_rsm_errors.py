"""Bad NIfTI input: different grids, affine mismatch, too few conditions, NaN voxels, mismatched models."""

import logging
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from egg_cli.errors import EggError
from egg_cli.rsm.compare import Comparison
from egg_cli.rsm.layer_rdms import LayerRdms, write_layer_rdms
from egg_cli.rsm.mapping import map_layers
from egg_cli.rsm.searchlight import RdmCalculator, volume_searchlights
from egg_cli.rsm.volume import load_patterns

AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])


def _write(path, data, affine=AFFINE):
    nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.float32), affine), str(path))
    return str(path)


@pytest.fixture
def volumes(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.standard_normal((8, 9, 7, 5))
    mask = np.zeros((8, 9, 7))
    mask[1:7, 1:8, 1:6] = 1
    return tmp_path, _write(tmp_path / "bold.nii.gz", data), _write(tmp_path / "mask.nii.gz", mask), data, mask


def test_mask_on_a_different_grid_is_rejected(volumes):
    tmp, bold, _, _, mask = volumes
    other = _write(tmp / "mask_small.nii.gz", mask[:, :, :6])
    with pytest.raises(EggError, match=r"has \(8, 9, 6\); expected mask and data on the same voxel grid"):
        load_patterns(bold, other)


def test_affine_mismatch_is_rejected(volumes):
    tmp, bold, _, _, mask = volumes
    shifted = AFFINE.copy()
    shifted[0, 3] = 3.0
    other = _write(tmp / "mask_shifted.nii.gz", mask, shifted)
    with pytest.raises(EggError, match="different affines"):
        load_patterns(bold, other)


def test_per_condition_files_on_different_affines_are_rejected(volumes):
    tmp, _, mask_path, data, _ = volumes
    a = _write(tmp / "c0.nii.gz", data[..., 0])
    b = _write(tmp / "c1.nii.gz", data[..., 1], np.diag([3.0, 2.0, 2.0, 1.0]))
    with pytest.raises(EggError, match="different affines"):
        load_patterns([a, b], mask_path)


def test_too_few_conditions(volumes):
    tmp, _, mask_path, data, _ = volumes
    two = _write(tmp / "two.nii.gz", data[..., :2])
    with pytest.raises(EggError, match="2 conditions; expected at least 3"):
        load_patterns(two, mask_path)


def test_one_file_per_condition_equals_the_4d_file(volumes):
    tmp, bold, mask_path, data, _ = volumes
    files = [_write(tmp / f"cond_{i}.nii.gz", data[..., i]) for i in range(data.shape[-1])]
    a, b = load_patterns(bold, mask_path), load_patterns(str(tmp / "cond_*.nii.gz"), mask_path)
    np.testing.assert_array_equal(a.data, b.data)
    assert load_patterns(files, mask_path).n_conditions == 5


def test_nan_voxels_are_excluded_with_a_warning_and_maps_stay_finite(volumes, caplog):
    tmp, _, mask_path, data, _ = volumes
    data = data.copy()
    data[3, 4, 3, 2] = np.nan
    data[2, 2, 2, :] = np.inf
    path = _write(tmp / "nan.nii.gz", data)
    with caplog.at_level(logging.WARNING):
        patterns = load_patterns(path, mask_path)
    assert "2 of 210 mask voxels have NaN" in caplog.text
    assert patterns.n_excluded == 2 and not patterns.mask[3, 4, 3] and np.isfinite(patterns.data).all()
    sl = volume_searchlights(patterns.mask, 3.0, patterns.affine, threshold=0.0, min_voxels=3)
    models = np.random.default_rng(1).random((2, 10))
    maps = map_layers(RdmCalculator(patterns, sl), models, ["a", "b"], Comparison("pearson"), n_permutations=20, progress=False)
    assert maps.valid.all() and np.isfinite(maps.stats).all() and np.isfinite(maps.p_fwer).all()


def test_model_rdms_must_match_the_number_of_conditions(volumes):
    _, bold, mask_path, _, _ = volumes
    patterns = load_patterns(bold, mask_path)
    sl = volume_searchlights(patterns.mask, 3.0, patterns.affine, threshold=0.0)
    with pytest.raises(EggError, match="15 pairs but the data have 5 conditions"):
        map_layers(RdmCalculator(patterns, sl), np.random.rand(2, 15), ["a", "b"], Comparison(), n_permutations=0)


def test_crossnobis_needs_runs_and_events_must_cover_conditions(volumes):
    tmp, bold, mask_path, _, _ = volumes
    patterns = load_patterns(bold, mask_path)
    sl = volume_searchlights(patterns.mask, 3.0, patterns.affine, threshold=0.0)
    with pytest.raises(EggError, match="crossnobis needs observations from at least two runs"):
        RdmCalculator(patterns, sl, "crossnobis")
    events = tmp / "events.csv"
    events.write_text("condition,run\n0,0\n2,0\n0,1\n2,1\n3,1\n")
    with pytest.raises(EggError, match="expected every integer 0..K-1"):
        load_patterns(bold, mask_path, events)
    events.write_text("condition,run\n0,0\n1,0\n")
    with pytest.raises(EggError, match="2 rows but the data have 5 volumes"):
        load_patterns(bold, mask_path, events)


@pytest.mark.slow
def test_cli_reports_grid_mismatch_in_one_line_with_exit_code_2(volumes, tmp_path):
    tmp, bold, _, _, mask = volumes
    other = _write(tmp / "mask_small.nii.gz", mask[:, :, :6])
    rdms = LayerRdms(["a", "b"], np.stack([1 - np.eye(5)] * 2) * np.random.default_rng(0).random((2, 1, 1)) + 0.1, {})
    write_layer_rdms(tmp / "rdms.h5", rdms)
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from egg_cli.cli import main; main(sys.argv[1:])",
            "rsm",
            "map",
            f"data={bold}",
            f"mask={other}",
            f"rdms={tmp / 'rdms.h5'}",
            f"hydra.run.dir={run_dir}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [l for l in proc.stderr.splitlines() if l.startswith("egg: error:")]
    assert len(lines) == 1 and "same voxel grid" in lines[0]
    assert not run_dir.exists()
