"""Layer features, RSMs, parametrizations and RSM-decorrelating synthesis (small images, CPU)."""

import logging

import numpy as np
import pytest
import torch

from egg_cli.errors import EggError
from egg_cli.rsm.features import GOOGLENET_INCEPTION_BLOCKS, build_backbone, extract, feature_model
from egg_cli.rsm.matrices import cross_layer_correlation, layer_rsms, rsm, square, upper
from egg_cli.rsm.parametrization import make_parametrization, natural_colour_matrix
from egg_cli.rsm.synthesis import RsmObjective, evaluate, synthesize
from egg_cli.rsm.transforms import Jitter

LAYERS = ["inception3a", "inception4a", "inception5b"]


@pytest.fixture(scope="module")
def model():
    return feature_model({"arch": "googlenet", "layers": LAYERS, "seed": 0})


def test_random_init_is_logged_and_keeps_deep_activations_alive(caplog):
    with caplog.at_level(logging.INFO):
        m = feature_model({"arch": "googlenet", "seed": 0})
    assert "random He-normal initialization" in caplog.text
    assert m.layers == list(GOOGLENET_INCEPTION_BLOCKS)
    feats = extract(m, torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
    assert feats["inception3a"].shape == (2, 256 * 8 * 8)
    assert feats["inception5b"].shape == (2, 1024 * 2 * 2)
    assert 0.1 < float(feats["inception5b"].std()) < 10  # torchvision's own init gives ~1e-12 here


def test_weights_file_round_trip_and_bad_files(tmp_path, model):
    source = build_backbone("googlenet", seed=7)
    path = tmp_path / "googlenet.pth"
    torch.save({"state_dict": source.state_dict()}, path)
    loaded = feature_model({"arch": "googlenet", "layers": LAYERS, "weights": str(path)})
    direct = feature_model({"arch": "googlenet", "layers": LAYERS, "seed": 7})
    x = torch.rand(2, 3, 48, 48, generator=torch.Generator().manual_seed(1))
    assert torch.equal(extract(loaded, x)["inception4a"], extract(direct, x)["inception4a"])
    assert not torch.equal(extract(loaded, x)["inception4a"], extract(model, x)["inception4a"])
    partial = {k: v for k, v in source.state_dict().items() if not k.startswith("inception5b")}
    torch.save(partial, tmp_path / "partial.pth")
    with pytest.raises(EggError, match="lacks .* parameters"):
        feature_model({"arch": "googlenet", "layers": LAYERS, "weights": str(tmp_path / "partial.pth")})
    with pytest.raises(EggError, match="does not exist"):
        feature_model({"arch": "googlenet", "layers": LAYERS, "weights": str(tmp_path / "missing.pth")})


def test_unknown_layer_and_model_are_errors():
    with pytest.raises(EggError, match="not modules of the network"):
        feature_model({"arch": "googlenet", "layers": ["inception9z", "inception3a"]})
    with pytest.raises(EggError, match="not a torchvision model"):
        feature_model({"arch": "googlenet_xl", "layers": ["a", "b"]})


def test_timm_backbone_layers():
    m = feature_model({"arch": "resnet18", "source": "timm", "layers": ["layer1", "layer3"]})
    feats = extract(m, torch.rand(3, 3, 32, 32))
    assert feats["layer1"].shape == (3, 64 * 8 * 8) and feats["layer3"].shape == (3, 256 * 2 * 2)


def test_rsm_is_pearson_between_images_and_square_inverts_upper():
    x = torch.randn(5, 40, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    np.testing.assert_allclose(rsm(x).numpy(), np.corrcoef(x.numpy()), atol=1e-12)
    m = np.corrcoef(x.numpy())
    np.testing.assert_allclose(square(upper(m), diagonal=1.0), m, atol=1e-12)


@pytest.mark.parametrize("kind", ["fourier", "pixel"])
def test_parametrizations_give_images_in_unit_range(kind):
    p = make_parametrization(kind, 4, 32, seed=3)
    images = p().detach()
    assert images.shape == (4, 3, 32, 32)
    assert float(images.min()) >= 0 and float(images.max()) <= 1
    assert float(images.std()) > 0.02
    again = make_parametrization(kind, 4, 32, seed=3)()
    assert torch.equal(images, again)


def test_colour_matrix_has_a_positive_luminance_axis():
    m = natural_colour_matrix()
    assert m.shape == (3, 3)
    assert (m[:, 0] > 0).all()
    assert np.isclose(np.linalg.norm(m, axis=0).max(), 1.0)


def test_jitter_changes_images_but_keeps_shape():
    x = torch.rand(3, 3, 32, 32)
    y = Jitter(3, 0.05, 5)(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and not torch.allclose(x, y)
    assert torch.equal(Jitter(0, 0, 0)(x, torch.Generator()), x)


def test_synthesis_decorrelates_layer_rsms_and_is_reproducible(model):
    objective = RsmObjective(contrast_weight=1.0, contrast_target=0.02)

    def run():
        p = make_parametrization("fourier", 8, 32, seed=0)
        return synthesize(model, p, objective, steps=25, lr=0.1, jitter=Jitter(1, 0.02, 2), eval_every=5, seed=0, progress=False)

    result = run()
    first, best = result.trace[0], min(row["loss"] for row in result.trace)
    assert result.best_loss == best
    assert best < 0.6 * first["loss"]
    terms = evaluate(model, result.images, objective)
    corr = cross_layer_correlation(layer_rsms(model(result.images), model.layers)).numpy()
    np.testing.assert_allclose(terms["correlation"].numpy(), corr, atol=1e-5)
    assert torch.equal(run().images, result.images)


def test_pair_power_moves_the_decorrelation_term_from_mean_to_worst_pair():
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(6, 5, generator=gen)
    feats = [base, base + 0.05 * torch.randn(6, 5, generator=gen), torch.randn(6, 5, generator=gen)]
    rsms = torch.stack([rsm(f) for f in feats])  # layers 0 and 1 nearly equal, layer 2 unrelated
    r2 = cross_layer_correlation(rsms).pow(2)[torch.triu_indices(3, 3, 1).unbind()]
    mean = RsmObjective(contrast_weight=0.0, pair_power=1.0)(rsms)["decorrelation"]
    worst = RsmObjective(contrast_weight=0.0, pair_power=64.0)(rsms)["decorrelation"]
    assert torch.isclose(mean, r2.mean(), atol=1e-6)
    assert r2.max() > 0.9 and r2.mean() < 0.5 * r2.max()
    assert abs(float(worst - r2.max())) < 0.03 * float(r2.max())
    with pytest.raises(EggError, match="pair_power=0.5 is below 1"):
        RsmObjective(pair_power=0.5)
