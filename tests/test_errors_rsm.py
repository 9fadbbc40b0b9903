"""`egg rsm map` and `egg rsm synth` under the error contract: bad settings and unusable BOLD, nothing half-written."""

import nibabel as nib
import numpy as np
import pytest
from error_contract import assert_one_error, egg, existing_run_folder, snapshot

from egg_cli.rsm.layer_rdms import LayerRdms, write_layer_rdms

K = 6  # conditions
AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])


def _nifti(path, data):
    nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.float32), AFFINE), str(path))
    return path


@pytest.fixture(scope="module")
def fmri(tmp_path_factory):
    root = tmp_path_factory.mktemp("rsm_errors")
    rng = np.random.default_rng(0)
    rdms = []
    for seed in (1, 2):
        x = np.random.default_rng(seed).standard_normal((K, 4))
        rdms.append(np.linalg.norm(x[:, None] - x[None], axis=-1))
    write_layer_rdms(root / "rdms.h5", LayerRdms(["a", "b"], np.stack(rdms), {}))
    good = _nifti(root / "bold.nii.gz", rng.standard_normal((6, 6, 6, K)))
    raw = good.read_bytes()
    (root / "truncated.nii.gz").write_bytes(raw[: len(raw) // 2])
    _nifti(root / "constant.nii.gz", np.ones((6, 6, 6, K)))
    # every volume flat across voxels: voxels vary over time but no pattern has any spatial structure
    _nifti(root / "global_only.nii.gz", np.ones((6, 6, 6, 1)) * rng.uniform(1, 2, K))
    rows = [(v, v) for v in range(K)]
    (root / "events_past.csv").write_text("volume,condition\n" + "".join(f"{v},{c}\n" for v, c in rows[:-1] + [(9, 5)]))
    (root / "events_twice.csv").write_text("volume,condition\n" + "".join(f"{v},{c}\n" for v, c in rows[:-1] + [(0, 5)]))
    return root


MAP = ["radius=2", "radius_unit=voxels", "min_voxels=3", "n_permutations=10"]

MAP_CASES = {
    "constant_bold": (["data=CONSTANT"], "every voxel has the same value in all 6 volumes (constant BOLD)"),
    "no_spatial_pattern": (["data=GLOBAL_ONLY"], "no searchlight gave a finite statistic"),
    "events_volume_past_the_data": (["events=EVENTS_PAST"], "volume 9 points past the data (6 volumes)"),
    "events_volume_twice": (["events=EVENTS_TWICE"], "a volume occurs twice (6 volumes)"),
    "truncated_nifti": (["data=TRUNCATED"], "cannot be read (truncated or corrupt: Compressed file ended"),
    "negative_permutations": (["n_permutations=-5"], "n_permutations=-5: expected 0 (no test) or a positive integer"),
    "zero_radius": (["radius=0"], "radius=0: expected a positive radius"),
    "alpha_above_one": (["alpha=2"], "alpha=2: expected a level between 0 and 1"),
    "permutations_text": (["n_permutations=many"], "n_permutations=many: expected an integer"),
    "missing_data": (["data=???"], "data= is required"),
}


@pytest.mark.parametrize("case", list(MAP_CASES))
def test_bad_rsm_map_input_exits_2_with_one_line_and_writes_nothing(fmri, tmp_path, case):
    args, expected = MAP_CASES[case]
    for placeholder in ("CONSTANT", "GLOBAL_ONLY", "TRUNCATED"):
        args = [a.replace(placeholder, str(fmri / f"{placeholder.lower()}.nii.gz")) for a in args]
    for placeholder in ("EVENTS_PAST", "EVENTS_TWICE"):
        args = [a.replace(placeholder, str(fmri / f"{placeholder.lower()}.csv")) for a in args]
    out = tmp_path / "run"
    before = existing_run_folder(out)
    proc = egg("rsm", "map", f"data={fmri / 'bold.nii.gz'}", f"rdms={fmri / 'rdms.h5'}", *MAP, *args, f"hydra.run.dir={out}")
    assert_one_error(proc, expected)
    assert snapshot(out) == before


def test_events_rows_in_any_order_follow_their_volume_column(fmri, tmp_path):
    from egg_cli.rsm.volume import read_events

    path = tmp_path / "events.csv"
    path.write_text("condition,volume,run\n2,2,0\n0,0,0\n1,1,1\n")
    conditions, runs = read_events(path, 3)
    assert conditions.tolist() == [0, 1, 2] and runs.tolist() == [0, 1, 0]


def test_rsm_map_on_good_data_still_writes_its_maps(fmri, tmp_path):
    out = tmp_path / "run"
    proc = egg("rsm", "map", f"data={fmri / 'bold.nii.gz'}", f"rdms={fmri / 'rdms.h5'}", *MAP, f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "results.h5").is_file() and (out / "maps").is_dir() and not (out / ".egg-staging").exists()


SYNTH_CASES = {
    "one_image": (["n_images=1"], "n_images=1: expected at least 3 images"),
    "two_images": (["n_images=2"], "n_images=2: expected at least 3 images"),
    "image_size_zero": (["image_size=0"], "image_size=0: expected at least 32 pixels"),
    "image_size_too_small": (["image_size=8"], "image_size=8: expected at least 32 pixels"),
    "no_steps": (["steps=0"], "steps=0: expected a positive integer"),
    "negative_lr": (["lr=-0.1"], "lr=-0.1: expected a positive learning rate"),
    "size_text": (["image_size=big"], "image_size=big: expected an integer"),
}


@pytest.mark.parametrize("case", list(SYNTH_CASES))
def test_bad_rsm_synth_input_exits_2_with_one_line_and_writes_nothing(tmp_path, case):
    args, expected = SYNTH_CASES[case]
    out = tmp_path / "run"
    before = existing_run_folder(out)
    proc = egg("rsm", "synth", "n_images=4", "image_size=32", "steps=2", "progress=false", *args, f"hydra.run.dir={out}")
    assert_one_error(proc, expected)
    assert snapshot(out) == before


SIMULATE_CASES = {
    "image_size_zero": (["image_size=0"], "image_size=0: expected at least 32 pixels"),
    "voxel_size_zero": (["volume.voxel_size=0"], "volume.voxel_size=0; expected a positive number"),
    "negative_noise": (["volume.noise_std=-1"], "volume.noise_std=-1; expected zero or a positive number"),
    "one_image": (["n_images=1"], "1 images; expected at least 3 conditions"),
}


@pytest.mark.parametrize("case", list(SIMULATE_CASES))
def test_bad_rsm_simulate_input_exits_2_with_one_line_and_writes_nothing(tmp_path, case):
    args, expected = SIMULATE_CASES[case]
    out = tmp_path / "run"
    before = existing_run_folder(out)
    proc = egg(
        "rsm", "simulate", "n_images=4", "image_size=32", "model.layers=[inception3a,inception4c]", *args, f"hydra.run.dir={out}"
    )
    assert_one_error(proc, expected)
    assert snapshot(out) == before
