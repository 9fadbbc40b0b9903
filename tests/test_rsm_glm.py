"""First-level GLM: design and OLS estimates equal nilearn's FirstLevelModel; AR(1) and LSS behave."""

import warnings

import nibabel as nib
import numpy as np
import pytest

from egg_cli.rsm.design import Events, cosine_drift, event_regressors, frame_times, hrf, lsa_design
from egg_cli.rsm.glm import ArParts, GlmConfig, first_level, gls

pd = pytest.importorskip("pandas")
first_level_module = pytest.importorskip("nilearn.glm.first_level")

TR = 2.0
N_SCANS = 90
CONDITIONS = [f"image_{k:02d}" for k in range(6)]


def _events(rng, repeats=3):
    trial_type = rng.permutation(np.repeat(CONDITIONS, repeats))
    onset = 8.0 + np.cumsum(rng.uniform(4.0, 7.0, len(trial_type)))
    onset = onset[onset < (N_SCANS - 10) * TR]
    return Events(onset, np.full(len(onset), 1.0), trial_type[: len(onset)])


def _run(rng, shape=(5, 4, 3)):
    """A run with a known response per condition and voxel, drift, confound signal and white noise."""
    events = _events(rng)
    confounds = rng.standard_normal((N_SCANS, 2)).cumsum(0) * 0.1
    x = lsa_design(N_SCANS, TR, events, CONDITIONS, confounds, ["trans_x", "rot_z"]).matrix
    n_vox = int(np.prod(shape))
    coef = rng.standard_normal((x.shape[1], n_vox))
    coef[-1] += 100.0
    data = x @ coef + 0.5 * rng.standard_normal((N_SCANS, n_vox))
    return events, confounds, data, shape


def _nilearn_estimates(events, confounds, data, shape, output_type, noise_model="ols"):
    img = nib.Nifti1Image(data.T.reshape(*shape, N_SCANS).astype(np.float64), np.eye(4))
    mask = nib.Nifti1Image(np.ones(shape, dtype=np.uint8), np.eye(4))
    model = first_level_module.FirstLevelModel(
        t_r=TR,
        hrf_model="glover",
        drift_model="cosine",
        high_pass=0.01,
        noise_model=noise_model,
        signal_scaling=False,
        mask_img=mask,
        minimize_memory=False,
    )
    table = pd.DataFrame({"onset": events.onset, "duration": events.duration, "trial_type": events.trial_type})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(img, events=table, confounds=pd.DataFrame(confounds, columns=["trans_x", "rot_z"]))
        maps = [model.compute_contrast(name, output_type=output_type) for name in CONDITIONS]
    return np.stack([np.asarray(m.dataobj).reshape(-1) for m in maps])


def test_design_matches_nilearn_make_first_level_design_matrix():
    rng = np.random.default_rng(0)
    events = _events(rng)
    confounds = rng.standard_normal((N_SCANS, 2))
    ours = lsa_design(N_SCANS, TR, events, CONDITIONS, confounds, ["trans_x", "rot_z"], slice_time_ref=0.5)
    table = pd.DataFrame({"onset": events.onset, "duration": events.duration, "trial_type": events.trial_type})
    theirs = first_level_module.make_first_level_design_matrix(
        frame_times(N_SCANS, TR, 0.5),
        table,
        hrf_model="glover",
        drift_model="cosine",
        high_pass=0.01,
        add_regs=confounds,
        add_reg_names=["trans_x", "rot_z"],
    )
    assert ours.matrix.shape == theirs.shape
    for i, name in enumerate(ours.columns[: len(CONDITIONS) + 2]):
        np.testing.assert_allclose(ours.matrix[:, i], theirs[name].to_numpy(), atol=1e-12)
    np.testing.assert_allclose(ours.matrix[:, len(CONDITIONS) + 2 :], theirs.to_numpy()[:, len(CONDITIONS) + 2 :], atol=1e-12)


@pytest.mark.parametrize("output", ["betas", "t"])
def test_ols_estimates_equal_nilearn_first_level_model(output):
    rng = np.random.default_rng(1)
    events, confounds, data, shape = _run(rng)
    ours, present = first_level(
        data, TR, events, CONDITIONS, GlmConfig(noise_model="ols", output=output), confounds, ["trans_x", "rot_z"]
    )
    theirs = _nilearn_estimates(events, confounds, data, shape, "effect_size" if output == "betas" else "stat")
    assert present.tolist() == list(range(len(CONDITIONS)))
    np.testing.assert_allclose(ours, theirs, atol=1e-6, rtol=0)
    assert np.abs(ours).max() > 1.0  # real responses, not an all-zero agreement


def test_ar1_estimates_track_nilearn_ar1():
    """AR(1) binning differs (lag-1 estimate rounded vs Yule-Walker truncated), so only near-equality holds."""
    rng = np.random.default_rng(2)
    events, confounds, _, shape = _run(rng)
    x = lsa_design(N_SCANS, TR, events, CONDITIONS, confounds, ["trans_x", "rot_z"]).matrix
    n_vox = int(np.prod(shape))
    noise = np.zeros((N_SCANS, n_vox))
    innovations = rng.standard_normal((N_SCANS, n_vox))
    for t in range(N_SCANS):
        noise[t] = (0.5 * noise[t - 1] if t else 0) + innovations[t]
    data = x @ rng.standard_normal((x.shape[1], n_vox)) + noise
    ours, _ = first_level(data, TR, events, CONDITIONS, GlmConfig(noise_model="ar1", output="t"), confounds, ["trans_x", "rot_z"])
    theirs = _nilearn_estimates(events, confounds, data, shape, "stat", noise_model="ar1")
    ols, _ = first_level(data, TR, events, CONDITIONS, GlmConfig(noise_model="ols", output="t"), confounds, ["trans_x", "rot_z"])
    assert np.corrcoef(ours.ravel(), theirs.ravel())[0, 1] > 0.995
    assert np.abs(ours - theirs).mean() < np.abs(ols - theirs).mean()


def test_gls_from_summary_statistics_equals_ols_on_explicitly_prewhitened_data():
    rng = np.random.default_rng(5)
    x = np.column_stack([rng.standard_normal((40, 3)), np.ones(40)])
    y = x @ rng.standard_normal((4, 7)) + rng.standard_normal((40, 7)) + 50
    rho = 0.37
    w = np.eye(40) - rho * np.eye(40, k=-1)
    w[0, 0] = np.sqrt(1 - rho**2)
    coef, *_ = np.linalg.lstsq(w @ x, w @ y, rcond=None)
    residual = w @ y - w @ x @ coef
    inverse = np.linalg.inv((w @ x).T @ (w @ x))
    t = coef[:3] / np.sqrt((residual**2).sum(0) / 36 * np.diag(inverse)[:3, None])
    columns, voxels = np.arange(3), slice(0, 7)
    betas, t_ours = gls(ArParts.of(x, x), ArParts.of(x, y), ArParts.diagonal(y), rho, 36, columns, voxels)
    np.testing.assert_allclose(betas, coef[:3], atol=1e-9)
    np.testing.assert_allclose(t_ours, t, atol=1e-9)


def test_lss_recovers_planted_responses_with_fast_overlapping_trials():
    rng = np.random.default_rng(3)
    trial_type = rng.permutation(np.repeat(CONDITIONS, 2))
    onset = 6.0 + 3.0 * np.arange(len(trial_type))  # SOA 3 s: responses overlap strongly
    events = Events(onset, np.full(len(onset), 1.0), trial_type)
    truth = rng.standard_normal((len(CONDITIONS), 200))
    x = lsa_design(N_SCANS, TR, events, CONDITIONS).matrix
    data = x[:, : len(CONDITIONS)] @ truth + 100 + 0.3 * rng.standard_normal((N_SCANS, 200))
    lsa, _ = first_level(data, TR, events, CONDITIONS, GlmConfig(noise_model="ols", output="betas", method="lsa"))
    lss, _ = first_level(data, TR, events, CONDITIONS, GlmConfig(noise_model="ols", output="betas", method="lss"))
    for estimate in (lsa, lss):
        assert np.corrcoef(estimate.ravel(), truth.ravel())[0, 1] > 0.8
    assert not np.allclose(lsa, lss)


def test_conditions_missing_from_a_run_are_left_out():
    rng = np.random.default_rng(4)
    events = _events(rng)
    keep = events.trial_type != CONDITIONS[2]
    events = Events(events.onset[keep], events.duration[keep], events.trial_type[keep])
    data = rng.standard_normal((N_SCANS, 10))
    estimates, present = first_level(data, TR, events, CONDITIONS, GlmConfig(noise_model="ols"))
    assert present.tolist() == [0, 1, 3, 4, 5] and estimates.shape == (5, 10)


def test_hrf_peaks_near_five_seconds_and_drift_removes_slow_waves():
    kernel = hrf("glover", TR, 50)
    assert 4.5 < np.argmax(kernel) * TR / 50 < 5.5 and kernel.sum() == pytest.approx(1.0)
    times = frame_times(N_SCANS, TR)
    basis = cosine_drift(times, 0.01)
    assert basis.shape[1] == int(2 * N_SCANS * 0.01 * TR) + 1
    slow = np.cos(2 * np.pi * times / 400.0)
    residual = slow - basis @ np.linalg.lstsq(basis, slow, rcond=None)[0]
    assert np.abs(residual).max() < 0.05
    boxcar = event_regressors(times, [Events(np.array([20.0]), np.array([0.0]), np.array(["a"]))])[:, 0]
    assert 24.0 <= times[np.argmax(boxcar)] <= 26.0
