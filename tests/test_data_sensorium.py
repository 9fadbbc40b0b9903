"""The neuralpredictors / Sensorium folder layout is read without conversion."""

from __future__ import annotations

import numpy as np
import pytest
from data_assets import small_arrays, write_sensorium_folder

from egg_cli.data import load_dataset
from egg_cli.errors import EggError


def test_folder_with_frame_ids_stores_each_image_once_and_keeps_repeats(tmp_path):
    a = small_arrays(repeats=4)
    root = write_sensorium_folder(tmp_path / "mouse", a)
    ds = load_dataset(root)
    assert ds.attrs["format"] == "sensorium-folder"
    assert (ds.n_images, ds.n_trials, ds.n_neurons) == (19, 28, 5)
    # every trial shows the image it showed in the original arrays, responses in trial order
    np.testing.assert_array_equal(ds.images[ds.trial_image], a["images"][a["trial_image"]].astype(np.float32))
    np.testing.assert_array_equal(ds.responses, a["responses"])
    np.testing.assert_array_equal(ds.neuron_ids, a["neuron_ids"])
    summary = ds.summary()
    assert summary["tiers"]["test"] == {"images": 3, "trials": 12, "repeats_min": 4, "repeats_max": 4}
    assert summary["tiers"]["train"] == {"images": 12, "trials": 12, "repeats_min": 1, "repeats_max": 1}
    train = a["images"][:12].astype(np.float64)
    assert ds.pixel_mean == pytest.approx(train.mean()) and ds.pixel_std == pytest.approx(train.std())
    x, r = next(iter(ds.dataloader("test", batch_size=12)))
    assert x.shape == (12, 1, 8, 8) and r.shape == (12, 5)


def test_folder_without_frame_ids_has_one_image_per_trial(tmp_path):
    a = small_arrays(repeats=2)
    ds = load_dataset(write_sensorium_folder(tmp_path / "m", a, frame_ids=False))
    assert (ds.n_images, ds.n_trials) == (22, 22)
    np.testing.assert_array_equal(ds.trial_image, np.arange(22))
    assert ds.summary()["tiers"]["test"]["repeats_max"] == 1


def test_final_test_tier_is_kept(tmp_path):
    a = small_arrays()
    a["tiers"] = np.array(["train"] * 11 + ["final_test"] + ["validation"] * 4 + ["test"] * 3)
    ds = load_dataset(write_sensorium_folder(tmp_path / "m", a))
    assert len(ds.image_indices("final_test")) == 1 and len(ds.trials("train")) == 11


def test_missing_tiers_file(tmp_path):
    root = write_sensorium_folder(tmp_path / "m", small_arrays())
    (root / "meta" / "trials" / "tiers.npy").unlink()
    with pytest.raises(EggError, match=r"m: meta/trials/tiers.npy is missing; expected the Sensorium folder layout"):
        load_dataset(root)


def test_missing_response_file(tmp_path):
    root = write_sensorium_folder(tmp_path / "m", small_arrays())
    (root / "data" / "responses" / "7.npy").unlink()
    with pytest.raises(
        EggError, match=r"data/responses holds 24 files \(missing 7.npy\) but meta/trials/tiers.npy lists 25 trials"
    ):
        load_dataset(root)


def test_unit_ids_must_match_responses(tmp_path):
    root = write_sensorium_folder(tmp_path / "m", small_arrays())
    np.save(root / "meta" / "neurons" / "unit_ids.npy", np.arange(4))
    with pytest.raises(EggError, match=r"hold 5 neurons but meta/neurons/unit_ids.npy lists 4"):
        load_dataset(root)


def test_nan_response_in_folder_names_trial_and_neuron(tmp_path):
    a = small_arrays()
    a["responses"][6, 1] = np.nan
    with pytest.raises(EggError, match=r"responses holds 1 NaN/inf values \(first at trial 6, neuron 1\)"):
        load_dataset(write_sensorium_folder(tmp_path / "m", a))


def test_repeated_image_in_two_tiers_is_refused(tmp_path):
    a = small_arrays()
    root = write_sensorium_folder(tmp_path / "m", a)
    frame = np.load(root / "meta" / "trials" / "frame_image_id.npy")
    test_trial = int(np.flatnonzero(a["tiers"][a["trial_image"]] == "test")[0])
    train_trial = int(np.flatnonzero(a["tiers"][a["trial_image"]] == "train")[0])
    frame[train_trial] = frame[test_trial]
    np.save(root / "meta" / "trials" / "frame_image_id.npy", frame)
    with pytest.raises(
        EggError,
        match=r"is in tier .* but its image \(frame_image_id\) is also shown in tier .*; expected each image in one tier",
    ):
        load_dataset(root)


def test_images_of_different_shapes_are_refused(tmp_path):
    root = write_sensorium_folder(tmp_path / "m", small_arrays(), frame_ids=False)
    np.save(root / "data" / "images" / "3.npy", np.zeros((1, 9, 8), dtype=np.float32))
    with pytest.raises(EggError, match=r"data/images/\*.npy have different shapes"):
        load_dataset(root)
