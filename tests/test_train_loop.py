"""The training loop: the loss falls, early stopping restores the best weights, interrupted runs resume exactly."""

import numpy as np
import pytest
import torch
from models_toys import write_toy_dataset

from egg_cli.data import load_dataset
from egg_cli.errors import EggError
from egg_cli.models import build_model
from egg_cli.models.training import TrainerConfig, fit, poisson_loss

torch.set_num_threads(1)

MODEL = {
    "core": {"_target_": "egg_cli.models.cores.StackedConvCore", "channels": 6, "layers": 2},
    "readout": {"_target_": "egg_cli.models.readouts.GaussianReadout", "init_sigma": 0.2},
    "output": {"_target_": "egg_cli.models.EluPlusOne"},
}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    path = tmp_path_factory.mktemp("toy") / "dataset.h5"
    write_toy_dataset(path, n_neurons=8, size=24, n_train=320, n_validation=64, n_test=16, repeats=3)
    return load_dataset(path)


def new_model(ds, seed=0, model_cfg=MODEL):
    torch.manual_seed(seed)
    mean = ds.responses[ds.trials("train")].mean(0)
    return build_model(model_cfg, ds.image_shape, ds.neuron_ids, ds.pixel_mean, ds.pixel_std, mean)


def test_poisson_loss_is_minimal_at_the_observed_counts():
    counts = torch.tensor([[0.0, 2.0, 5.0]])
    at_counts = poisson_loss(counts.clamp_min(1e-3), counts)
    for scale in (0.5, 0.9, 1.1, 2.0):
        assert poisson_loss((counts * scale).clamp_min(1e-3), counts) > at_counts


def test_a_tiny_model_trains_and_its_loss_falls(toy, tmp_path):
    model = new_model(toy)
    images, responses = next(iter(toy.dataloader("train", batch_size=320)))
    model.train()
    torch.manual_seed(0)
    before = poisson_loss(model(images), responses).item()
    state = fit(model, toy, TrainerConfig(max_epochs=4, batch_size=16, lr=0.01), tmp_path / "state.pt", seed=0)
    model.train()
    torch.manual_seed(0)
    after = poisson_loss(model(images), responses).item()
    losses = [h["train_poisson_loss"] for h in state.history]
    assert state.epoch == 4 and len(losses) == 4
    assert losses[-1] < losses[0] - 0.05
    assert after < before - 0.1
    assert state.best_score > 0.1  # validation correlation after a few epochs on the toy neurons
    assert state.finished and state.stop_reason.startswith("reached trainer.max_epochs")


def test_plateau_decays_the_learning_rate_restores_the_best_weights_and_stops(toy, tmp_path):
    model = new_model(toy)
    config = TrainerConfig(max_epochs=50, batch_size=64, lr=1e-7, patience=0, lr_decay_steps=1, lr_decay_factor=0.5)
    state = fit(model, toy, config, tmp_path / "state.pt", seed=0)
    lrs = [h["lr"] for h in state.history]
    assert state.lr_decays == 2 and state.stop_reason == "no improvement after 1 learning-rate decays"
    assert state.epoch < 50 and lrs[0] == pytest.approx(1e-7) and min(lrs) == pytest.approx(5e-8)  # the last decay ends the run
    from egg_cli.models.scoring import mean_correlation

    assert mean_correlation(model, toy, "validation") == pytest.approx(state.best_score, abs=1e-9)


class Interrupt(Exception):
    pass


def test_an_interrupted_run_resumes_after_its_last_epoch_and_matches_an_uninterrupted_run(toy, tmp_path):
    config = TrainerConfig(max_epochs=4, batch_size=32, lr=0.01)
    full = new_model(toy)
    fit(full, toy, config, tmp_path / "full.pt", seed=3)

    def stop_after_two(state):
        if state.epoch == 2:
            raise Interrupt

    part = new_model(toy)
    with pytest.raises(Interrupt):
        fit(part, toy, config, tmp_path / "part.pt", seed=3, on_epoch=stop_after_two)
    resumed = new_model(toy, seed=99)  # a fresh process builds a differently initialized model
    seen = []
    state = fit(resumed, toy, config, tmp_path / "part.pt", seed=3, on_epoch=lambda s: seen.append(s.epoch))
    assert seen == [3, 4] and state.epoch == 4
    assert state.sessions == [0, 2]  # the second session began after epoch 2
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_resuming_under_other_settings_is_refused_with_the_differing_key(toy, tmp_path):
    config = TrainerConfig(max_epochs=1, batch_size=64)
    fit(new_model(toy), toy, config, tmp_path / "state.pt", seed=0, fingerprint={"neurons": 8, "seed": 0})
    with pytest.raises(EggError, match=r"different neurons \(8\); this run has 9"):
        fit(new_model(toy), toy, config, tmp_path / "state.pt", seed=0, fingerprint={"neurons": 9, "seed": 0})


@pytest.mark.parametrize("key,value", [("lr", -1.0), ("batch_size", 0), ("lr_decay_factor", 1.5), ("max_minutes", 0)])
def test_bad_hyperparameters_are_named(key, value):
    with pytest.raises(EggError, match=rf"trainer.{key}={value!r} is not allowed"):
        TrainerConfig(**{key: value}).check()


def test_training_on_nan_responses_stops_with_a_clear_error(toy, tmp_path):
    import copy

    broken = copy.copy(toy)
    broken.responses = toy.responses.copy()
    broken.responses[toy.trials("train")[:5]] = np.nan
    broken._images_z = None
    with pytest.raises(EggError, match="training diverged in epoch 1: the loss is nan"):
        fit(new_model(toy), broken, TrainerConfig(max_epochs=1, batch_size=400), tmp_path / "s.pt")
