"""End to end through the console script: rsm synth, rsm simulate -> rsm map / rsm residual (tiny sizes)."""

import json
import subprocess
import sys

import h5py
import nibabel as nib
import numpy as np
import pytest

EGG = [sys.executable, "-c", "import sys; from egg_cli.cli import main; main(sys.argv[1:])"]
LAYERS = "[inception3a,inception4c,inception5b]"


def egg(*args, cwd=None):
    proc = subprocess.run(
        [*EGG, *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_rsm_synth_writes_images_rsms_and_before_after_correlations(tmp_path):
    out = tmp_path / "synth"
    egg(
        "rsm",
        "synth",
        "n_images=6",
        "image_size=32",
        "steps=6",
        "eval_every=2",
        f"model.layers={LAYERS}",
        "progress=false",
        f"hydra.run.dir={out}",
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished"
    assert summary["natural"]["mean_squared"] > 0.5  # natural images: correlated layer RSMs
    assert summary["synthesized"]["mean_squared"] <= summary["natural"]["mean_squared"]
    with h5py.File(out / "images.h5") as f:
        assert f["images"].shape == (6, 3, 32, 32) and f["natural_images"].shape == (6, 3, 32, 32)
    with h5py.File(out / "layer_rdms.h5") as f:
        assert f["rdms"].shape == (3, 6, 6)
    assert len(list((out / "images").glob("synth_*.png"))) == 6
    for name in ("layer_correlation.png", "rsms.png", "images.png", "loss.png", "layer_correlation.csv", "trace.csv"):
        assert (out / name).stat().st_size > 0


@pytest.mark.slow
def test_rsm_simulate_then_map_and_residual(tmp_path):
    sim = tmp_path / "sim"
    egg(
        "rsm",
        "simulate",
        "n_images=10",
        "image_size=32",
        f"model.layers={LAYERS}",
        "volume.shape=[20,22,20]",
        "volume.region_radius_mm=9",
        "volume.noise_std=0.5",
        "format=patterns",
        f"hydra.run.dir={sim}",
    )
    bold, truth = nib.load(sim / "bold.nii.gz"), nib.load(sim / "truth.nii.gz")
    assert bold.shape == (20, 22, 20, 40)  # 10 images x 4 runs
    np.testing.assert_allclose(bold.affine, truth.affine)
    assert bold.affine[0, 0] == 3.0 and np.allclose(bold.affine[:3, 3], -3.0 * (np.array([20, 22, 20]) - 1) / 2)
    assert set(np.unique(np.asarray(truth.dataobj))) == {0, 1, 2, 3}
    common = [
        f"data={sim / 'bold.nii.gz'}",
        f"mask={sim / 'mask.nii.gz'}",
        f"events={sim / 'events.csv'}",
        f"rdms={sim / 'layer_rdms.h5'}",
        f"truth={sim / 'truth.nii.gz'}",
        "n_permutations=50",
        "radius=7",
    ]
    for command in ("map", "residual"):
        out = tmp_path / command
        if command == "map":
            egg("rsm", command, *common, f"hydra.run.dir={out}")
        else:  # the same pipeline in-process (saves a second interpreter start)
            import torch

            from egg_cli.rsm.pipeline import run_mapping
            from egg_cli.rsm.settings import MappingSettings

            cfg = {k: v for k, v in (a.split("=", 1) for a in common)}
            cfg.update(n_permutations=50, radius=7.0, seed=0)
            run_mapping(MappingSettings.from_mapping(cfg), out, torch.device("cpu"), residual=True)
        summary = json.loads((out / "summary.json").read_text())
        assert summary["status"] == "finished" and summary["recovery"]["n_regions"] == 3
        assert summary["n_centres_valid"] == summary["n_centres"] > 1000
        for layer in ("inception3a", "inception4c", "inception5b"):
            img = nib.load(out / "maps" / f"{layer}.nii.gz")
            assert img.shape == (20, 22, 20) and np.isfinite(np.asarray(img.dataobj)).all()
            assert (out / "maps" / f"{layer}_pfwer.nii.gz").exists()
        best = np.asarray(nib.load(out / "best_layer.nii.gz").dataobj)
        assert set(np.unique(best)) <= {0, 1, 2, 3}
        for name in ("overlap_dice.csv", "recovery.csv", "results.h5", "best_layer.png", "overlap.png", "null_max.png"):
            assert (out / name).exists()
    residual = json.loads((tmp_path / "residual" / "summary.json").read_text())
    assert set(residual["explained_by_others"]) == {"inception3a", "inception4c", "inception5b"}
    assert all(0 < v < 1 for v in residual["explained_by_others"].values())


@pytest.mark.slow
def test_rsm_simulate_bids_then_map_per_subject_and_group(tmp_path):
    sim = tmp_path / "sim"
    egg(
        "rsm",
        "simulate",
        "n_images=8",
        "image_size=32",
        f"model.layers={LAYERS}",
        "volume.shape=[20,22,20]",
        "volume.region_radius_mm=8",
        "volume.n_runs=2",
        "bold.noise_std=0.5",
        "bold.n_subjects=3",
        "bold.repeats=2",
        "progress=false",
        f"hydra.run.dir={sim}",
    )
    func = sim / "bids" / "sub-03" / "func"
    bold = nib.load(func / "sub-03_task-rsm_run-2_space-sim_desc-preproc_bold.nii.gz")
    assert bold.shape[:3] == (20, 22, 20) and bold.header.get_zooms()[3] == 2.0
    assert json.loads((func / "sub-03_task-rsm_run-2_space-sim_desc-preproc_bold.json").read_text())["RepetitionTime"] == 2.0
    events = (func / "sub-03_task-rsm_run-2_events.tsv").read_text().splitlines()
    assert events[0] == "onset\tduration\ttrial_type" and len(events) == 1 + 8 * 2
    confounds = (func / "sub-03_task-rsm_run-2_desc-confounds_timeseries.tsv").read_text().splitlines()
    assert confounds[0].split("\t")[:2] == ["trans_x", "trans_y"] and len(confounds) == 1 + bold.shape[3]
    truths = [np.asarray(nib.load(sim / "truth" / f"sub-0{s}_truth.nii.gz").dataobj) for s in (1, 2, 3)]
    assert all(set(np.unique(t)) == {0, 1, 2, 3} for t in truths) and not np.array_equal(truths[0], truths[1])  # jitter
    out = tmp_path / "map"
    proc = egg(
        "rsm",
        "map",
        f"bids.root={sim / 'bids'}",
        "bids.confounds=[trans_x,trans_y,trans_z,rot_x,rot_y,rot_z]",
        f"rdms={sim / 'layer_rdms.h5'}",
        f"truth={sim / 'truth'}",
        "n_permutations=20",
        "group.n_permutations=100",
        "radius=7",
        f"hydra.run.dir={out}",
    )
    assert "3 subjects: the smallest sign-flip p-value is 1/8" in proc.stdout + proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and set(summary["subjects"]) == {"01", "02", "03"}
    group = summary["group"]
    assert group["n_subjects"] == 3 and group["n_sign_flips"] == 8 and group["exhaustive"]
    assert group["recovery"]["n_regions"] == 3
    assert -1 <= group["noise_ceiling"]["median_lower"] <= group["noise_ceiling"]["median_upper"] <= 1
    for name in (
        "best_layer.nii.gz",
        "noise_ceiling_lower.nii.gz",
        "overlap_dice.csv",
        "recovery.csv",
        "group.h5",
        "best_layer.png",
    ):
        assert (out / "group" / name).exists()
    for layer in ("inception3a", "inception4c", "inception5b"):
        assert (out / "group" / "maps" / f"{layer}_pfwer.nii.gz").exists()
        assert (out / "sub-02" / "maps" / f"{layer}.nii.gz").exists()
    assert json.loads((out / "sub-01" / "summary.json").read_text())["recovery"]["n_regions"] == 3
    import torch

    from egg_cli.rsm.pipeline import run_mapping
    from egg_cli.rsm.settings import GroupSettings, MappingSettings

    settings = MappingSettings(
        bids={"root": str(sim / "bids"), "task": "rsm"},
        glm={"method": "lss", "noise_model": "ols", "output": "betas"},
        group=GroupSettings(n_permutations=8),
        rdms=str(sim / "layer_rdms.h5"),
        n_permutations=0,
        radius=7.0,
    )
    residual = run_mapping(settings, tmp_path / "residual", torch.device("cpu"), residual=True)
    assert residual["method"] == "residual" and residual["group"]["n_sign_flips"] == 8
    assert (tmp_path / "residual" / "sub-03" / "best_layer.nii.gz").exists()
