"""Checkpoints, load_model and ensembles: identical reloads, one-line incompatibility errors, averaging."""

import numpy as np
import pytest
import torch

from egg_cli.errors import EggError
from egg_cli.models import Ensemble, build_model, load_model, read_checkpoint, save_checkpoint

torch.set_num_threads(1)

CFG = {
    "core": {"_target_": "egg_cli.models.cores.StackedConvCore", "channels": 4, "layers": 2},
    "readout": {"_target_": "egg_cli.models.readouts.AttentionReadout", "dim": 8},
    "output": {"_target_": "egg_cli.models.EluPlusOne"},
}


def tiny_model(seed=0, neurons=5, size=20, readout=None):
    torch.manual_seed(seed)
    cfg = dict(CFG, readout=readout or CFG["readout"])
    model = build_model(cfg, (1, size, size), np.arange(neurons), 100.0, 40.0, np.linspace(0.5, 3, neurons))
    return model, cfg


def perturb(model):
    """Move every parameter and batch-norm statistic away from its initial value."""
    with torch.no_grad():
        for t in list(model.parameters()) + [b for n, b in model.named_buffers() if "running" in n]:
            t.add_(0.05 * torch.randn_like(t))
    return model


def test_checkpoint_reloads_to_identical_predictions_with_data_statistics(tmp_path):
    model, cfg = tiny_model()
    perturb(model).eval()
    model.test_correlation = np.linspace(0.1, 0.5, 5)
    model.dataset_path = "/data/ds.h5"
    save_checkpoint(tmp_path / "model.pt", model, cfg)
    x = torch.randn(3, 1, 20, 20)
    loaded = load_model(tmp_path / "model.pt")
    assert torch.equal(loaded(x), model(x))
    assert loaded.input_shape == (1, 20, 20) and loaded.n_neurons == 5
    assert list(loaded.neuron_ids) == list(range(5))
    assert (loaded.pixel_mean, loaded.pixel_std) == (100.0, 40.0)
    assert np.allclose(loaded.test_correlation, np.linspace(0.1, 0.5, 5))
    assert loaded.dataset_path == "/data/ds.h5"
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    # gradients with respect to the image still flow (synthesis needs them)
    img = x.clone().requires_grad_(True)
    loaded(img)[:, 0].sum().backward()
    assert img.grad is not None and img.grad.abs().sum() > 0
    # a run folder works as well as the file
    assert torch.equal(load_model(tmp_path)(x), model(x))


def test_incompatible_checkpoint_lists_missing_unexpected_and_mismatched_keys_in_one_line(tmp_path):
    model, cfg = tiny_model()
    save_checkpoint(tmp_path / "model.pt", model, cfg)
    payload = torch.load(tmp_path / "model.pt", weights_only=True)
    state = payload["state_dict"]
    del state["readout.query"]
    state["readout.extra"] = torch.zeros(2)
    state["readout.features"] = torch.zeros(5, 9)
    torch.save(payload, tmp_path / "broken.pt")
    with pytest.raises(EggError) as err:
        load_model(tmp_path / "broken.pt")
    msg = str(err.value)
    assert "\n" not in msg
    assert "broken.pt" in msg
    assert "missing keys: readout.query" in msg
    assert "unexpected keys: readout.extra" in msg
    assert "shape mismatches: readout.features (5, 9) vs expected (5, 8)" in msg


def test_files_that_are_not_checkpoints_are_rejected_with_the_path(tmp_path):
    with pytest.raises(EggError, match="does not exist"):
        load_model(tmp_path / "nothing.pt")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(EggError, match="junk.pt could not be read"):
        load_model(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(EggError, match="other.pt is not an egg encoding model"):
        load_model(tmp_path / "other.pt")
    with pytest.raises(EggError, match="matches no files"):
        load_model(str(tmp_path / "*.nothing"))


def test_ensemble_averages_its_members_and_loads_from_a_multirun_folder(tmp_path):
    x = torch.randn(4, 1, 20, 20)
    preds = []
    for seed in range(3):
        model, cfg = tiny_model(seed)
        perturb(model).eval()
        model.test_correlation = np.full(5, 0.1 * (seed + 1))
        save_checkpoint(tmp_path / "multirun" / str(seed) / "model.pt", model, cfg)
        preds.append(model(x))
    ensemble = load_model(tmp_path / "multirun")
    assert isinstance(ensemble, Ensemble) and len(ensemble.members) == 3
    assert torch.allclose(ensemble(x), torch.stack(preds).mean(0), atol=1e-6)
    assert np.allclose(ensemble.test_correlation, 0.2)
    assert ensemble.input_shape == (1, 20, 20) and ensemble.n_neurons == 5
    # a list of paths and a glob give the same ensemble
    listed = load_model([tmp_path / "multirun" / str(s) / "model.pt" for s in range(3)])
    globbed = load_model(str(tmp_path / "multirun" / "*" / "model.pt"))
    assert torch.equal(listed(x), ensemble(x)) and torch.equal(globbed(x), ensemble(x))
    # members of different architectures still average (cross-architecture ensembles are allowed)
    gaussian, gcfg = tiny_model(7, readout={"_target_": "egg_cli.models.readouts.GaussianReadout"})
    save_checkpoint(tmp_path / "gauss.pt", gaussian.eval(), gcfg)
    mixed = load_model([tmp_path / "multirun" / "0" / "model.pt", tmp_path / "gauss.pt"])
    assert torch.allclose(mixed(x), (preds[0] + gaussian(x)) / 2, atol=1e-6)


def test_ensemble_members_must_agree_on_neurons_and_input_shape(tmp_path):
    a, cfg = tiny_model(0)
    b, _ = tiny_model(1, neurons=6)
    c, _ = tiny_model(2, size=24)
    for name, m in (("a", a), ("b", b), ("c", c)):
        save_checkpoint(tmp_path / f"{name}.pt", m, cfg)
    with pytest.raises(EggError, match=r"b.pt predicts 6 neurons .*expected the 5 neurons"):
        load_model([tmp_path / "a.pt", tmp_path / "b.pt"])
    with pytest.raises(EggError, match=r"c.pt takes input shape \(1, 24, 24\); expected \(1, 20, 20\)"):
        load_model([tmp_path / "a.pt", tmp_path / "c.pt"])


def test_checkpoint_holds_the_resolved_model_config(tmp_path):
    model, cfg = tiny_model()
    save_checkpoint(tmp_path / "model.pt", model, cfg, extra={"seed": 3})
    payload = read_checkpoint(tmp_path / "model.pt")
    assert payload["model_config"]["core"]["channels"] == 4
    assert payload["model_config"]["readout"]["_target_"].endswith("AttentionReadout")
    assert payload["seed"] == 3 and payload["input_shape"] == [1, 20, 20]
