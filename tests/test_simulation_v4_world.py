"""The V4-like world: conjunction neurons rebuilt from the file, grating-likeness, determinism."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from egg_cli.simulation import SimulationConfig, load_ground_truth, simulate, write_simulation
from egg_cli.simulation.simulate import measure_optimum

WORLD = {
    "cycles_per_image": [8, 5, 3],
    "sigma_per_wavelength": 0.8,
    "saturation": 8.0,
    "model": "conjunction",
    "cross_orientation": True,
    "subunit_c50_quantile": [0.8, 0.95],
}


def _config(n_neurons: int, **neurons) -> SimulationConfig:
    return SimulationConfig.from_dict(
        dict(
            n_neurons=n_neurons,
            image_size=32,
            n_train=300,
            n_validation=20,
            n_test=20,
            test_repeats=4,
            neurons={**WORLD, **neurons},
        )
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    torch.set_num_threads(1)
    sim = simulate(_config(10), seed=3, progress=False)
    measure_optimum(sim, 0.25, max_neurons=4, steps=40)
    path = tmp_path_factory.mktemp("world") / "dataset.h5"
    write_simulation(sim, path)
    return sim, path


def test_conjunction_ground_truth_round_trips_through_the_file_with_the_same_outputs(world):
    sim, path = world
    gt = load_ground_truth(path)
    assert gt.conjunctive and gt.n_neurons == 10
    images = torch.as_tensor((sim.images.astype(np.float32) - gt.pixel_mean) / gt.pixel_std)
    with torch.no_grad():
        rates = gt(images).numpy()
    np.testing.assert_allclose(rates, sim.rates, rtol=1e-4, atol=1e-5)
    with h5py.File(path) as f:
        group = f["ground_truth"]
        assert group.attrs["version"] == 3 and group["term_neuron"].shape[0] >= 10
        assert group["subunit_cross_c50"].shape == group["subunit_c50"].shape
        assert group["optimum_images"].shape == (4, 1, 32, 32) and list(group["optimum_neurons"][()]) == [0, 3, 6, 9]
        likeness = f["neurons"]["grating_likeness"][()]
    assert np.isnan(likeness[[1, 2, 4]]).all() and np.isfinite(likeness[[0, 3, 6, 9]]).all()


def test_version_two_world_without_cross_orientation_still_round_trips(tmp_path):
    torch.set_num_threads(1)
    sim = simulate(_config(3, cross_orientation=False), seed=2, progress=False)
    write_simulation(sim, tmp_path / "v2.h5")
    gt = load_ground_truth(tmp_path / "v2.h5")
    assert gt.version == 2 and not gt.cross_orientation
    with torch.no_grad():
        rates = gt(torch.as_tensor((sim.images.astype(np.float32) - gt.pixel_mean) / gt.pixel_std)).numpy()
    np.testing.assert_allclose(rates, sim.rates, rtol=1e-4, atol=1e-5)


def test_cross_orientation_normalization_favours_an_oriented_grating_over_a_broadband_spot(world):
    """A subunit's normalized value: its own orientation's share of the local energy."""
    from egg_cli.simulation.grating_likeness import gabor_images

    sim, _ = world
    population = sim.population
    spec = population.spec()
    orientations = population.bank.orientations
    subunit = int(np.flatnonzero(spec["subunit_weight"] > 0)[0])
    frequency, rest = divmod(int(spec["subunit_channel"][subunit]), 5 * orientations)
    theta = (rest % orientations) * np.pi / orientations
    x0, y0 = spec["subunit_center"][subunit]
    wavelength = float(spec["wavelengths"][frequency])
    norm = 0.25 * 32
    # full-field grating at the subunit's orientation and frequency vs a 1.5 px spot at its centre
    grating = gabor_images(
        torch.tensor([[x0, y0, theta, np.log(wavelength), 0.0, np.log(3200.0)]], dtype=torch.float32), 32, norm
    )
    spot = gabor_images(torch.tensor([[x0, y0, theta, np.log(64.0), 0.0, np.log(1.5)]], dtype=torch.float32), 32, norm)
    with torch.no_grad():
        values = population.pooled_subunits(torch.cat([grating, spot]))[1][subunit].numpy()
    assert values[0] > 3 * values[1], values


def test_every_family_appears_and_each_neuron_has_one_excitatory_term(world):
    sim, _ = world
    spec = sim.population.spec()
    excitatory = spec["term_neuron"][spec["term_weight"] > 0]
    np.testing.assert_array_equal(np.bincount(excitatory, minlength=10), np.ones(10))
    big = simulate(_config(60), seed=0, progress=False)
    kinds, counts = np.unique(big.neurons["kind"], return_counts=True)
    assert set(kinds) == {"grating", "corner", "curve", "texture", "blob"} and counts.min() >= 3


def test_grating_likeness_is_near_one_for_gabor_energy_neurons_and_low_for_corners_and_curves():
    torch.set_num_threads(1)
    gratings = simulate(_config(4, family_fractions=[1, 0, 0, 0, 0]), seed=1, progress=False)
    contours = simulate(_config(6, family_fractions=[0, 1, 1, 0, 0]), seed=1, progress=False)
    high = measure_optimum(gratings, 0.25, max_neurons=4, steps=150)
    low = measure_optimum(contours, 0.25, max_neurons=6, steps=150)
    assert high.ratio.min() >= 0.85, high.ratio
    assert np.median(low.ratio) <= 0.7 and low.ratio.min() < 0.5, low.ratio
    assert (high.mei_rate >= high.gabor_rate).all() and (low.mei_rate >= low.gabor_rate).all()


def test_same_seed_gives_the_same_world_and_optimum_bytes(tmp_path):
    torch.set_num_threads(1)
    paths = []
    for k in range(2):
        sim = simulate(_config(5), seed=11, progress=False)
        measure_optimum(sim, 0.25, max_neurons=2, steps=10)
        paths.append(tmp_path / f"d{k}.h5")
        write_simulation(sim, paths[-1])
    with h5py.File(paths[0]) as a, h5py.File(paths[1]) as b:
        for name in ("responses", "ground_truth/subunit_c50", "ground_truth/optimum_images", "neurons/grating_likeness"):
            np.testing.assert_array_equal(a[name][()], b[name][()])


def test_dead_leaves_have_a_natural_power_spectrum_and_mixed_sources_hold_both_kinds():
    from egg_cli.data.dead_leaves import dead_leaves
    from egg_cli.data.natural import load_photographs, natural_images, random_crops

    def slope(images: np.ndarray) -> float:
        centred = images - images.mean((-2, -1), keepdims=True)
        power = np.fft.fftshift(np.abs(np.fft.fft2(centred)) ** 2, axes=(-2, -1)).mean(0)
        n = power.shape[-1]
        y, x = np.indices(power.shape)
        radius = np.hypot(y - n // 2, x - n // 2).astype(int)
        radial = np.bincount(radius.ravel(), power.ravel()) / np.bincount(radius.ravel())
        k = np.arange(2, n // 2)
        return float(np.polyfit(np.log(k), np.log(radial[k]), 1)[0])

    leaves = dead_leaves(60, 64, np.random.default_rng(0))
    photos = random_crops(load_photographs(), 60, 64, np.random.default_rng(0))
    assert leaves.shape == (60, 1, 64, 64) and 0 <= leaves.min() and leaves.max() <= 1
    assert -3.2 < slope(leaves[:, 0]) < -2.3 and abs(slope(leaves[:, 0]) - slope(photos[:, 0])) < 0.3
    mixed = natural_images("mixed", 40, 32, np.random.default_rng(1))
    again = natural_images("mixed", 40, 32, np.random.default_rng(1))
    np.testing.assert_array_equal(mixed, again)
    assert mixed.shape == (40, 1, 32, 32)


def test_egg_info_reports_neuron_kinds_and_grating_likeness_of_a_simulated_world(world):
    from egg_cli.cli.info import dataset_report, format_dataset

    sim, path = world
    report = dataset_report(path)
    measured = sim.neurons["grating_likeness"][np.isfinite(sim.neurons["grating_likeness"])]
    assert report["grating_likeness"]["neurons_measured"] == 4
    assert report["grating_likeness"]["median"] == pytest.approx(float(np.median(measured)))
    assert sum(report["neuron_kinds"].values()) == 10
    text = format_dataset(report)
    assert "grating-like best Gabor / ground-truth optimum: median" in text and "(4 neurons measured)" in text
