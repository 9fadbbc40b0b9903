"""Ground-truth V4-like neurons: rebuilt from the file, differentiable, tuned, reliable, deterministic."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from egg_cli.data import load_dataset, write_dataset
from egg_cli.errors import EggError
from egg_cli.simulation import SimulationConfig, V4Population, load_ground_truth, simulate, write_simulation
from egg_cli.simulation.ascent import fixed_norm_ascent, rescale_to_norm
from egg_cli.simulation.neurons import ENERGY, channel_index
from egg_cli.simulation.population import PopulationConfig, draw_population
from egg_cli.simulation.tuning import grating_tuning

SMALL = dict(
    n_neurons=12, image_size=32, n_train=400, n_validation=20, n_test=30, test_repeats=6, neurons={"cycles_per_image": [8, 4]}
)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    torch.set_num_threads(1)
    sim = simulate(SimulationConfig.from_dict(SMALL), seed=5, progress=False)
    path = tmp_path_factory.mktemp("sim") / "dataset.h5"
    write_simulation(sim, path, attrs={"seed": 5})
    return sim, path


def test_ground_truth_rebuilt_from_file_scores_images_like_the_simulation(simulated):
    sim, path = simulated
    ds = load_dataset(path)
    gt = load_ground_truth(path)
    assert gt.input_shape == (1, 32, 32) and gt.n_neurons == 12
    np.testing.assert_array_equal(gt.neuron_ids, ds.neuron_ids)
    assert gt.pixel_mean == pytest.approx(ds.pixel_mean) and gt.pixel_std == pytest.approx(ds.pixel_std)
    with torch.no_grad():
        rates = gt(torch.as_tensor(ds.zscore(ds.images))).numpy()
    np.testing.assert_allclose(rates, sim.rates, rtol=1e-4, atol=1e-5)
    assert rates.min() >= 0
    # the noisy trials scatter around the ground-truth rates
    test = ds.trials("test")
    assert np.corrcoef(rates[ds.trial_image[test]].ravel(), ds.responses[test].ravel())[0, 1] > 0.6
    assert ds.has_ground_truth and ds.neurons["rf_center"].shape == (12, 2)
    np.testing.assert_array_equal(ds.neurons["rf_center"], gt.spec()["rf_center"])


def test_ground_truth_is_differentiable_in_the_image(simulated):
    gt = load_ground_truth(simulated[1])
    x = torch.randn(3, 1, 32, 32, requires_grad=True)
    gt(x)[:, 4].sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with pytest.raises(EggError, match=r"got images of shape \(3, 1, 16, 16\); expected \(B, 1, 32, 32\)"):
        gt(torch.zeros(3, 1, 16, 16))


def test_population_has_realistic_rates_reliability_and_spread(simulated):
    sim, _ = simulated
    m = sim.neurons
    assert 1.5 < sim.responses.mean() < 3.5  # configured mean 2.5 spikes per trial
    assert np.percentile(sim.responses, 95) < 20  # a few spikes per trial, not hundreds
    peak_to_mean = sim.rates.max(0) / sim.rates.mean(0)
    assert np.all(peak_to_mean > 3) and np.all(peak_to_mean < 20)  # selective, yet not single-image detectors
    assert np.median(m["split_half_reliability"]) > 0.6
    assert np.median(m["oracle_correlation"]) > 0.4
    assert np.all(m["oracle_correlation"] > 0.1)
    assert len(np.unique(m["pref_orientation"])) >= 5  # 12 neurons, 16 probed orientations
    assert set(m["kind"]) == {"shape", "texture"}


def test_grating_tuning_recovers_the_orientation_of_a_single_subunit():
    rng = np.random.default_rng(0)
    pop, _ = draw_population(4, (1, 32, 32), 0.0, 1.0, PopulationConfig(cycles_per_image=(8, 4)), rng)
    spec = pop.spec()
    orientations = [0, 2, 5, 7]  # of 8: 0, 45, 112.5, 157.5 degrees
    spec.update(
        subunit_neuron=np.arange(4),
        subunit_channel=np.array([channel_index(1, o, ENERGY, 8) for o in orientations]),
        subunit_center=np.zeros((4, 2)),
        subunit_sigma=np.full(4, 0.3),
        subunit_weight=np.ones(4),
        max_rate=np.full(4, 1e6),
    )
    tuning = grating_tuning(V4Population(spec), [8.0, 4.0])
    np.testing.assert_array_equal(tuning["pref_orientation"], np.array(orientations) * 22.5)
    np.testing.assert_array_equal(tuning["pref_wavelength"], [8.0] * 4)  # frequency 1: 4 cycles over 32 px
    assert np.all(tuning["orientation_selectivity"] > 0.3)


@pytest.mark.slow
def test_gradient_ascent_at_fixed_contrast_beats_every_natural_image(simulated):
    sim, path = simulated
    gt = load_ground_truth(path)
    ds = load_dataset(path)
    norm = 0.25 * np.sqrt(32 * 32)  # RMS contrast 0.25 in z-scored units
    natural = rescale_to_norm(torch.as_tensor(ds.zscore(ds.images)), norm)
    with torch.no_grad():
        best_natural = gt(natural).max(0).values
    images, ga = fixed_norm_ascent(gt, torch.arange(gt.n_neurons), norm, steps=150, seed=0)
    assert torch.allclose(images.flatten(1).norm(dim=1), torch.full((gt.n_neurons,), norm), rtol=1e-4)
    ratio = (ga / best_natural).numpy()
    print("GA / best natural image at RMS 0.25:", np.round(ratio, 2))
    assert np.all(ratio > 1.0), ratio


def test_same_seed_gives_identical_file_arrays_and_another_seed_does_not(tmp_path):
    tiny = dict(SMALL, n_neurons=4, n_train=60, n_validation=6, n_test=6, test_repeats=3)
    paths = []
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        sim = simulate(SimulationConfig.from_dict(tiny), seed=seed, progress=False)
        write_simulation(sim, tmp_path / f"{name}.h5")
        paths.append(tmp_path / f"{name}.h5")

    def arrays(path):
        out = {}
        with h5py.File(path) as f:
            f.visititems(lambda name, item: out.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset) else None)
        return out

    a, b, c = (arrays(p) for p in paths)
    assert sorted(a) == sorted(b) and len(a) > 30
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert not np.array_equal(a["images"], c["images"])
    assert not np.array_equal(a["ground_truth/subunit_channel"], c["ground_truth/subunit_channel"]) or not np.array_equal(
        a["ground_truth/rf_center"], c["ground_truth/rf_center"]
    )


def test_user_image_folder_is_used(tmp_path):
    from skimage.io import imsave

    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        imsave(folder / f"p{i}.png", (rng.random((80, 90)) * 255).astype(np.uint8), check_contrast=False)
    cfg = SimulationConfig.from_dict(
        dict(SMALL, n_neurons=3, n_train=40, n_validation=4, n_test=4, test_repeats=2, image_source=str(folder))
    )
    sim = simulate(cfg, seed=0, progress=False)
    assert sim.images.shape == (48, 1, 32, 32)
    # white-noise photographs stay noise-like after cropping: nearly uncorrelated neighbouring pixels
    x = sim.images.astype(float)
    assert abs(np.corrcoef(x[..., 1:].ravel(), x[..., :-1].ravel())[0, 1]) < 0.8
    (tmp_path / "empty").mkdir()
    with pytest.raises(EggError, match=r"image folder .*empty holds no images; expected files ending in .png"):
        simulate(SimulationConfig.from_dict(dict(SMALL, image_source=str(tmp_path / "empty"))), progress=False)
    with pytest.raises(
        EggError,
        match=r"image folder .*nowhere does not exist; expected bundled, dead_leaves, mixed or a folder of PNG/JPEG images",
    ):
        simulate(SimulationConfig.from_dict(dict(SMALL, image_source=str(tmp_path / "nowhere"))), progress=False)


@pytest.mark.parametrize(
    "values,message",
    [
        ({"n_neuron": 3}, r"simulation.n_neuron is not a setting; expected one of crop_scale, grayscale"),
        ({"n_neurons": "many"}, r"simulation.n_neurons='many' is not allowed; expected an integer"),
        ({"n_neurons": 0}, r"simulation.n_neurons=0 is not allowed; expected a positive integer"),
        ({"test_repeats": 1}, r"simulation.test_repeats=1 is not allowed; expected at least 2"),
        ({"crop_scale": [0.5]}, r"simulation.crop_scale=\[0.5\] is not allowed; expected a list of two numbers"),
        ({"neurons": {"slope": "x"}}, r"simulation.neurons.slope='x' is not allowed; expected a number"),
        ({"neurons": {"orientation": 8}}, r"simulation.neurons.orientation is not a setting"),
        ({"neurons": {"excitatory_subunits": [0, 2]}}, r"simulation.neurons.excitatory_subunits=\(0, 2\) is not allowed"),
    ],
)
def test_bad_simulation_settings_are_named(values, message):
    with pytest.raises(EggError, match=message):
        SimulationConfig.from_dict(values, prefix="simulation")


def test_too_fine_gabors_for_the_image_size_are_refused():
    with pytest.raises(EggError, match=r"cycles_per_image=\[16.0, 8.0, 4.0\] gives a wavelength of 2 px at image size 32"):
        SimulationConfig.from_dict(dict(SMALL, neurons={}))


def test_dataset_without_ground_truth_is_refused(tmp_path):
    from data_assets import small_arrays

    write_dataset(tmp_path / "real.h5", **small_arrays())
    with pytest.raises(EggError, match=r"real.h5 has no 'ground_truth' group; expected a dataset written by egg simulate"):
        load_ground_truth(tmp_path / "real.h5")
