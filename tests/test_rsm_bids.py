"""BIDS input: simulated time series -> GLM patterns; bad events, runs, TR and confounds give one-line errors."""

import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from egg_cli.errors import EggError
from egg_cli.rsm.bids import entities, find_runs, repetition_time, write_bold_run, write_dataset_description
from egg_cli.rsm.bold_simulation import BoldSimulationConfig, BoldStudy
from egg_cli.rsm.fmri_simulation import FmriSimulationConfig
from egg_cli.rsm.glm import GlmConfig
from egg_cli.rsm.layer_rdms import LayerRdms, default_condition_names, write_layer_rdms
from egg_cli.rsm.subject_patterns import BidsSelection, glm_patterns, prepare_subject

K = 8
NAMES = default_condition_names(K)
LAYERS = ["early", "late"]
MOTION = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]


def _study(n_subjects=2, noise=0.5, seed=0):
    rng = np.random.default_rng(seed)
    features = {name: rng.standard_normal((K, 40)) for name in LAYERS}
    volume = FmriSimulationConfig(shape=(16, 18, 16), region_radius_mm=8.0, n_runs=3, seed=seed)
    return BoldStudy(features, LAYERS, NAMES, volume, BoldSimulationConfig(n_subjects=n_subjects, repeats=2, noise_std=noise))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Two subjects x three runs written the way rsm simulate writes them, plus the planted patterns."""
    root = tmp_path_factory.mktemp("bids")
    study = _study()
    write_dataset_description(root, "test")
    planted = {}
    for index in range(2):
        subject = study.subject(index)
        for r, run in enumerate(subject.runs):
            write_bold_run(
                root, subject.label, "rsm", r + 1, "sim", run.data, study.mask, study.affine, 2.0, run.events, run.confounds
            )
        planted[subject.label] = subject
    return root, study, planted


def _func(root, name):
    return root / f"sub-{name.split('_')[0][4:]}" / "func" / name


def test_entities_of_fmriprep_names():
    ent = entities("sub-01_ses-a_task-rsm_run-2_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz")
    assert ent == {
        "sub": "01",
        "ses": "a",
        "task": "rsm",
        "run": "2",
        "space": "MNI152NLin2009cAsym",
        "desc": "preproc",
        "suffix": "bold",
        "extension": ".nii.gz",
    }


def test_runs_are_found_with_events_confounds_masks_and_tr(dataset):
    root, _, _ = dataset
    runs = find_runs(root, "01", task="rsm", space="sim")
    assert [r.entities["run"] for r in runs] == ["1", "2", "3"]
    assert all(r.events.name.endswith("_events.tsv") and r.confounds is not None and r.mask is not None for r in runs)
    assert repetition_time(runs[0]) == 2.0
    assert [r.entities["run"] for r in find_runs(root, "01", runs=[3, "1"])] == ["3", "1"]


@pytest.mark.parametrize("noise", [0.0, 0.5])
def test_glm_patterns_recover_the_planted_responses(dataset, tmp_path, noise):
    """Without noise, drift (< high-pass) and motion (a confound) are removed exactly; with noise, mostly."""
    _, study, _ = dataset
    study = _study(n_subjects=1, noise=noise)
    subject = study.subject(0)
    for r, run in enumerate(subject.runs):
        write_bold_run(tmp_path, "01", "rsm", r + 1, "sim", run.data, study.mask, study.affine, 2.0, run.events, run.confounds)
    prepared = prepare_subject(BidsSelection(root=str(tmp_path), task="rsm", confounds=MOTION), "01", NAMES)
    patterns = glm_patterns(prepared, NAMES, GlmConfig(output="betas"), MOTION)
    assert patterns.data.shape == (3 * K, int(study.mask.sum())) and sorted(np.unique(patterns.runs)) == [0, 1, 2]
    region = subject.truth[study.mask] > 0
    estimate, planted = patterns.condition_means()[:, region], subject.responses[:, region]
    r = np.corrcoef(estimate.ravel(), planted.ravel())[0, 1]
    if noise == 0:
        np.testing.assert_allclose(estimate, planted, atol=1e-3)
    else:
        assert 0.7 < r < 0.95, r


def test_trial_type_that_matches_no_image_is_rejected(dataset, tmp_path):
    root, _, _ = dataset
    names = [f"img{k}" for k in range(K)]
    with pytest.raises(
        EggError, match=r"trial_type 'image_00'.* matches no image of the stimulus set; expected image names \(img0"
    ):
        prepare_subject(BidsSelection(root=str(root)), "01", names)
    # indices 0..K-1 are accepted as trial types, and listed extra types are modelled as nuisance
    events = _func(root, "sub-02_task-rsm_run-1_events.tsv")
    text = events.read_text()
    lines = text.splitlines()
    rows = [line.split("\t") for line in lines[1:]]
    body = "\n".join("\t".join([o, d, str(NAMES.index(t))]) for o, d, t in rows)
    events.write_text(lines[0] + "\n" + body + "\n" + f"{float(rows[-1][0]) + 2}\t0.5\tbutton\n")
    try:
        with pytest.raises(EggError, match="'button' matches no image"):
            prepare_subject(BidsSelection(root=str(root), runs=["1"]), "02", NAMES)
        prepared = prepare_subject(BidsSelection(root=str(root), runs=["1"], ignore_trial_types=["button"]), "02", NAMES)
        assert set(prepared.runs[0].events.trial_type) == set(NAMES) | {"button"}
    finally:
        events.write_text(text)


def test_missing_runs_and_subjects_are_rejected(dataset):
    root, _, _ = dataset
    with pytest.raises(EggError, match=r"runs \['7'\] not found"):
        find_runs(root, "01", runs=[1, 7])
    with pytest.raises(EggError, match=r"bids.subjects \['05'\] are not in"):
        BidsSelection(root=str(root), subjects=["sub-01", "05"]).subject_labels()
    assert BidsSelection(root=str(root), subjects=[2, "sub-01"]).subject_labels() == ["02", "01"]
    with pytest.raises(EggError, match="no BOLD file matches task=other"):
        find_runs(root, "01", task="other")


def test_tr_that_disagrees_between_sidecar_and_header_is_rejected(dataset):
    root, _, _ = dataset
    sidecar = _func(root, "sub-01_task-rsm_run-2_space-sim_desc-preproc_bold.json")
    original = sidecar.read_text()
    sidecar.write_text(json.dumps({"RepetitionTime": 1.5}))
    try:
        with pytest.raises(EggError, match=r"RepetitionTime 1.5 s in .* but 2.0 s in the NIfTI header; expected the same TR"):
            prepare_subject(BidsSelection(root=str(root)), "01", NAMES)
    finally:
        sidecar.write_text(original)


def test_confound_columns_that_do_not_exist_are_rejected(dataset):
    root, _, _ = dataset
    with pytest.raises(EggError, match=r"confound columns \['csf'\] do not exist; expected some of \['trans_x'"):
        prepare_subject(BidsSelection(root=str(root), confounds=["trans_x", "csf"]), "01", NAMES)


def test_map_needs_one_input_patterns_or_bids(dataset, tmp_path):
    import torch

    from egg_cli.rsm.pipeline import run_mapping
    from egg_cli.rsm.settings import MappingSettings

    root, _, _ = dataset
    with pytest.raises(EggError, match="neither data nor bids.root is set"):
        run_mapping(MappingSettings(radius=6.0), tmp_path / "a", torch.device("cpu"))
    with pytest.raises(EggError, match="both bids.root and data/events are set"):
        run_mapping(MappingSettings(bids={"root": str(root)}, data="bold.nii.gz"), tmp_path / "b", torch.device("cpu"))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_same_seed_gives_the_same_bold_bytes(tmp_path):
    a, b = _study(n_subjects=1).subject(0), _study(n_subjects=1).subject(0)
    assert all(np.array_equal(x.data, y.data) and np.array_equal(x.events.onset, y.events.onset) for x, y in zip(a.runs, b.runs))
    assert not np.array_equal(a.runs[0].data, _study(n_subjects=1, seed=1).subject(0).runs[0].data)


CLI_CASES = {
    "unknown trial_type": ([], "trial_type 'image_00'"),
    "missing run": (["bids.runs=[1,7]"], "runs ['7'] not found"),
    "tr mismatch": ([], "RepetitionTime 1.5 s in"),
    "missing confound column": (["bids.confounds=[trans_x,csf]"], "confound columns ['csf'] do not exist"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CLI_CASES))
def test_cli_reports_bad_bids_input_in_one_line_with_exit_code_2(dataset, tmp_path, case):
    root, _, _ = dataset
    overrides, expected = CLI_CASES[case]
    rdms = LayerRdms(LAYERS, np.stack([1 - np.eye(K)] * 2) * np.random.default_rng(0).random((2, 1, 1)) + 0.1, {})
    if case == "unknown trial_type":
        rdms.conditions = [f"img{k}" for k in range(K)]
    write_layer_rdms(tmp_path / "rdms.h5", rdms)
    sidecar = _func(root, "sub-02_task-rsm_run-3_space-sim_desc-preproc_bold.json")
    original = sidecar.read_text()
    if case == "tr mismatch":
        sidecar.write_text(json.dumps({"RepetitionTime": 1.5}))
    run_dir = tmp_path / "run"
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from egg_cli.cli import main; main(sys.argv[1:])",
                "rsm",
                "map",
                f"bids.root={root}",
                f"rdms={tmp_path / 'rdms.h5'}",
                *overrides,
                f"hydra.run.dir={run_dir}",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        sidecar.write_text(original)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("egg: error:")]
    assert len(lines) == 1 and expected in lines[0], proc.stderr[-2000:]
    assert not run_dir.exists()


def test_bold_header_carries_the_tr(dataset):
    root, _, _ = dataset
    img = nib.load(_func(root, "sub-01_task-rsm_run-1_space-sim_desc-preproc_bold.nii.gz"))
    assert img.header.get_zooms()[3] == 2.0 and img.header.get_xyzt_units() == ("mm", "sec")


def test_several_bold_files_for_one_run_are_ambiguous(dataset, tmp_path):
    root, _, _ = dataset
    func = tmp_path / "sub-01" / "func"
    func.mkdir(parents=True)
    for name in (
        "sub-01_task-rsm_run-1_space-sim_res-1_desc-preproc_bold.nii.gz",
        "sub-01_task-rsm_run-1_space-sim_res-2_desc-preproc_bold.nii.gz",
    ):
        (func / name).write_bytes(b"")
    with pytest.raises(EggError, match="several BOLD files for one run"):
        find_runs(tmp_path, "01", space="sim")


def test_masked_series_reads_blocks_equal_to_the_whole_array(dataset):
    from egg_cli.rsm.subject_patterns import masked_series

    root, study, _ = dataset
    path = _func(root, "sub-01_task-rsm_run-1_space-sim_desc-preproc_bold.nii.gz")
    whole = np.asarray(nib.load(path).dataobj, dtype=np.float32)[study.mask].T
    np.testing.assert_array_equal(masked_series(path, study.mask, block=7), whole)
