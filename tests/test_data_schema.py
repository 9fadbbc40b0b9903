"""HDF5 dataset schema: round trip, z-scoring, per-tier loaders and one-line validation errors."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from data_assets import small_arrays

from egg_cli.data import load_dataset, write_dataset
from egg_cli.errors import EggError


def _write_raw(path, arrays, rename=None, drop=None):
    """Write arrays with h5py directly (no validation), to build broken files."""
    with h5py.File(path, "w") as f:
        for name, value in arrays.items():
            if name == drop:
                continue
            value = np.asarray(value)
            if value.dtype.kind == "U":
                value = value.astype(object)
                f.create_dataset((rename or {}).get(name, name), data=value, dtype=h5py.string_dtype())
            else:
                f.create_dataset((rename or {}).get(name, name), data=value)
    return path


def test_round_trip_keeps_arrays_metadata_and_attrs(tmp_path):
    a = small_arrays()
    meta = {"rf_center": np.random.default_rng(1).uniform(-1, 1, (5, 2)), "kind": np.array(["shape", "texture"] * 2 + ["shape"])}
    path = tmp_path / "d.h5"
    stats = write_dataset(path, **a, neurons=meta, attrs={"source": "test", "seed": 7})
    ds = load_dataset(path)
    assert ds.images.dtype == np.float32 and ds.images.shape == (19, 1, 8, 8)
    np.testing.assert_array_equal(ds.images, a["images"].astype(np.float32))
    np.testing.assert_array_equal(ds.responses, a["responses"])
    np.testing.assert_array_equal(ds.trial_image, a["trial_image"])
    np.testing.assert_array_equal(ds.tiers, a["tiers"])
    np.testing.assert_array_equal(ds.neuron_ids, a["neuron_ids"])
    np.testing.assert_array_equal(ds.neurons["rf_center"], meta["rf_center"])
    assert list(ds.neurons["kind"]) == list(meta["kind"])
    assert ds.attrs["source"] == "test" and ds.attrs["seed"] == 7 and ds.attrs["format"] == "egg-neural-dataset"
    train = a["images"][:12].astype(np.float64)
    assert ds.pixel_mean == pytest.approx(train.mean()) and ds.pixel_std == pytest.approx(train.std())
    assert ds.attrs["pixel_mean"] == pytest.approx(stats["pixel_mean"])
    assert (ds.n_neurons, ds.n_images, ds.n_trials, ds.image_shape) == (5, 19, 25, (1, 8, 8))
    assert not ds.has_ground_truth
    summary = ds.summary()
    assert summary["tiers"]["test"] == {"images": 3, "trials": 9, "repeats_min": 3, "repeats_max": 3}
    assert summary["tiers"]["train"]["trials"] == 12


def test_zscore_uses_training_tier_only(tmp_path):
    a = small_arrays()
    a["images"][12:] = 255  # validation and test images must not move the statistics
    write_dataset(tmp_path / "d.h5", **a)
    ds = load_dataset(tmp_path / "d.h5")
    train_z = ds.zscore(ds.images[ds.image_indices("train")])
    assert float(train_z.mean()) == pytest.approx(0.0, abs=1e-5)
    assert float(train_z.std()) == pytest.approx(1.0, abs=1e-5)


def test_dataloader_yields_zscored_images_and_responses_of_one_tier(tmp_path):
    a = small_arrays()
    write_dataset(tmp_path / "d.h5", **a)
    ds = load_dataset(tmp_path / "d.h5")
    batches = list(ds.dataloader("test", batch_size=4))
    assert [len(r) for _, r in batches] == [4, 4, 1]
    images = torch.cat([x for x, _ in batches])
    responses = torch.cat([r for _, r in batches])
    trials = ds.trials("test")
    assert images.dtype == torch.float32 and images.shape == (9, 1, 8, 8)
    np.testing.assert_allclose(images.numpy(), ds.zscore(ds.images[ds.trial_image[trials]]), rtol=1e-6)
    np.testing.assert_array_equal(responses.numpy(), a["responses"][trials])
    order = lambda seed: torch.cat([r for _, r in ds.dataloader("train", 5, shuffle=True, seed=seed)])
    assert torch.equal(order(3), order(3))
    assert not torch.equal(order(3), order(4))
    assert len(ds.torch_dataset("validation")) == 4
    with pytest.raises(EggError, match="tier 'tst' does not exist"):
        ds.trials("tst")


def _mutations():
    def nan(a):
        a["responses"][3, 2] = np.nan

    def inf(a):
        a["responses"][0, 0] = np.inf

    def out_of_range(a):
        a["trial_image"][5] = 19

    def negative_index(a):
        a["trial_image"][5] = -1

    def empty_validation(a):
        a["tiers"][12:16] = "train"

    def unknown_tier(a):
        a["tiers"][0] = "tst"

    def images_3d(a):
        a["images"] = a["images"][:, 0]

    def short_trial_image(a):
        a["trial_image"] = a["trial_image"][:-1]

    def short_tiers(a):
        a["tiers"] = a["tiers"][:-1]

    def wrong_neuron_ids(a):
        a["neuron_ids"] = a["neuron_ids"][:3]

    def duplicate_ids(a):
        a["neuron_ids"][1] = a["neuron_ids"][0]

    def float_trial_image(a):
        a["trial_image"] = a["trial_image"].astype(np.float32)

    return [
        (nan, r"responses holds 1 NaN/inf values \(first at trial 3, neuron 2\); expected responses \(T, n_neurons\)"),
        (inf, r"responses holds 1 NaN/inf values \(first at trial 0, neuron 0\)"),
        (out_of_range, r"trial_image holds index 19 \(trial 5\) but there are 19 images; expected indices 0..18"),
        (negative_index, r"trial_image holds index -1 \(trial 5\)"),
        (
            empty_validation,
            r"tier 'validation' is empty \(0 images, 0 trials\); expected at least one trial in each of train, validation, test",
        ),
        (unknown_tier, r"tiers holds unknown tier 'tst'; expected tiers \(N,\) strings"),
        (images_3d, r"images has shape \(19, 8, 8\) \(3 dimensions\); expected images \(N, C, H, W\)"),
        (short_trial_image, r"trial_image has shape \(24,\) but responses has 25 trials"),
        (short_tiers, r"tiers has shape \(18,\) but there are 19 images"),
        (wrong_neuron_ids, r"neuron_ids has shape \(3,\) but responses has 5 neurons"),
        (duplicate_ids, r"neuron_ids holds duplicate ids"),
        (float_trial_image, r"trial_image has dtype float32; expected trial_image \(T,\) integer indices"),
    ]


@pytest.mark.parametrize("mutate,message", _mutations(), ids=lambda v: getattr(v, "__name__", ""))
def test_invalid_file_names_file_field_and_expectation(tmp_path, mutate, message):
    a = small_arrays()
    mutate(a)
    path = _write_raw(tmp_path / "bad.h5", a)
    with pytest.raises(EggError, match=message) as err:
        load_dataset(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("mutate,message", _mutations()[:4], ids=lambda v: getattr(v, "__name__", ""))
def test_writer_refuses_invalid_arrays_and_leaves_no_file(tmp_path, mutate, message):
    a = small_arrays()
    mutate(a)
    with pytest.raises(EggError, match=message):
        write_dataset(tmp_path / "out.h5", **a)
    assert list(tmp_path.iterdir()) == []


def test_missing_dataset_is_named(tmp_path):
    path = _write_raw(tmp_path / "d.h5", small_arrays(), drop="trial_image")
    with pytest.raises(
        EggError,
        match=r"d.h5: dataset 'trial_image' is missing \(found: images, neuron_ids, responses, tiers\); expected trial_image \(T,\)",
    ):
        load_dataset(path)


def test_misnamed_dataset_gets_a_hint(tmp_path):
    path = _write_raw(tmp_path / "d.h5", small_arrays(), rename={"responses": "response"})
    with pytest.raises(
        EggError, match=r"dataset 'responses' is missing \(found 'response': misnamed\?\); expected responses \(T, n_neurons\)"
    ):
        load_dataset(path)


def test_missing_truncated_and_corrupt_files(tmp_path):
    with pytest.raises(EggError, match=r"nope.h5 does not exist; expected an HDF5 file"):
        load_dataset(tmp_path / "nope.h5")
    good = tmp_path / "good.h5"
    write_dataset(good, **small_arrays())
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(EggError, match=r"truncated.h5 is not a readable HDF5 file \(\d+ bytes; truncated or corrupt"):
        load_dataset(truncated)
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"not an hdf5 file at all" * 10)
    with pytest.raises(EggError, match=r"corrupt.h5 is not a readable HDF5 file"):
        load_dataset(corrupt)
    empty_dir = tmp_path / "folder"
    empty_dir.mkdir()
    with pytest.raises(EggError, match=r"folder is a folder without data/ and meta/"):
        load_dataset(empty_dir)


def test_string_neuron_ids_round_trip(tmp_path):
    a = small_arrays()
    a["neuron_ids"] = np.array(["m1_u3", "m1_u4", "m1_u9", "m2_u1", "m2_u2"])
    write_dataset(tmp_path / "d.h5", **a)
    assert list(load_dataset(tmp_path / "d.h5").neuron_ids) == list(a["neuron_ids"])
