"""Cores, readouts and the output nonlinearity: shapes, conventions and penalties with real numbers."""

import logging

import numpy as np
import pytest
import torch

from egg_cli.errors import EggError
from egg_cli.models import EluPlusOne, build_model
from egg_cli.models.cores import StackedConvCore, TaskDrivenCore, laplace_smoothness
from egg_cli.models.readouts import AttentionReadout, GaussianReadout, sinusoidal_position_encoding

torch.set_num_threads(1)


def test_stacked_core_first_layer_is_unpadded_9x9_and_later_layers_keep_size():
    core = StackedConvCore(in_channels=1, channels=8, layers=3)
    out = core(torch.randn(2, 1, 40, 36))
    assert out.shape == (2, 8, 32, 28)  # 9x9 without padding removes 4 pixels per side
    assert core.input_filters.shape == (8, 1, 9, 9)
    # depth-separable hidden layers: a 1x1 pointwise conv then a 5x5 depthwise conv (groups = channels)
    pointwise, depthwise = core.layers[1][0]
    assert pointwise.kernel_size == (1, 1) and depthwise.kernel_size == (5, 5) and depthwise.groups == 8
    assert isinstance(core.layers[1][1], torch.nn.BatchNorm2d) and isinstance(core.layers[1][2], torch.nn.ELU)


def test_laplace_penalty_is_small_for_smooth_filters_and_large_for_noise():
    coords = torch.linspace(-1, 1, 9)
    smooth = torch.exp(-(coords[:, None] ** 2 + coords[None] ** 2) / 0.5)[None, None]
    noise = torch.randn(1, 1, 9, 9, generator=torch.Generator().manual_seed(0))
    assert laplace_smoothness(smooth).item() < 0.5
    assert laplace_smoothness(noise).item() > 10.0
    # scale invariant: the penalty normalizes by the filters' energy
    assert laplace_smoothness(3 * noise).item() == pytest.approx(laplace_smoothness(noise).item(), rel=1e-5)
    core = StackedConvCore(channels=4, layers=1, gamma_input=10.0)
    assert core.regularizer().item() == pytest.approx(10 * laplace_smoothness(core.input_filters).item(), rel=1e-6)


@pytest.mark.parametrize("bad", [{"layers": 0}, {"channels": 0}, {"input_kernel": 8}, {"gamma_input": -1.0}])
def test_stacked_core_rejects_bad_hyperparameters(bad):
    with pytest.raises(EggError, match="model.core"):
        StackedConvCore(**bad)


def test_gaussian_readout_reads_the_feature_map_at_its_mean_position_in_evaluation():
    # feature 0 is the x coordinate in [-1, 1], feature 1 the y coordinate
    h, w = 11, 21
    xs, ys = torch.linspace(-1, 1, w), torch.linspace(-1, 1, h)
    fmap = torch.stack([xs[None].expand(h, w), ys[:, None].expand(h, w)])[None]
    readout = GaussianReadout((2, h, w), n_neurons=3, bias_init=torch.zeros(3))
    assert torch.allclose(readout.features, torch.full((3, 2), 0.5))  # initialized to 1/C
    with torch.no_grad():
        readout.mu.copy_(torch.tensor([[0.5, -0.2], [-0.7, 0.9], [0.0, 0.0]]))
        readout.features.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    readout.eval()
    out = readout(fmap)
    assert torch.allclose(out, torch.tensor([[0.5, 0.9, 0.0]]), atol=1e-5)
    assert torch.equal(readout(fmap), out)  # deterministic at the mean


def test_gaussian_readout_samples_positions_in_training_with_its_covariance():
    readout = GaussianReadout((4, 8, 8), n_neurons=5, gauss_type="full", init_sigma=0.3)
    torch.manual_seed(0)
    grids = torch.cat([readout.grid(200, sample=True) for _ in range(10)])  # (2000, n, 1, 2)
    offsets = (grids[:, :, 0] - readout.mu.detach().clamp(-1, 1)).detach()
    # covariance of the samples ~ sigma sigma^T (positions well inside [-1, 1] so clamping is rare)
    sigma = readout.sigma.detach()
    for n in range(5):
        if (readout.mu[n].abs() + 3 * sigma[n].abs().sum(1)).max() < 1:
            emp = torch.cov(offsets[:, n].T)
            assert torch.allclose(emp, sigma[n] @ sigma[n].T, atol=0.01)
    assert not torch.equal(readout.grid(2, True), readout.grid(2, True))


def test_gaussian_readout_l1_penalty_on_features():
    readout = GaussianReadout((4, 8, 8), n_neurons=3, gamma_features=0.5)
    assert readout.regularizer().item() == pytest.approx(0.5 * 3 * 4 * 0.25)


def test_sinusoidal_position_encoding_is_distinct_per_position_and_fixed():
    enc = sinusoidal_position_encoding(16, 6, 7)
    assert enc.shape == (16, 6, 7)
    flat = enc.flatten(1).T  # (positions, channels)
    dists = torch.cdist(flat, flat) + torch.eye(42) * 1e3
    assert dists.min() > 0.1  # every position has its own code
    assert enc[:8].std(dim=2).max() < 1e-6  # first half codes y only (constant along x)
    readout = AttentionReadout((16, 6, 7), n_neurons=2)
    assert "position_encoding" not in readout.state_dict()
    assert all(p is not readout.position_encoding for p in readout.parameters())


def test_attention_readout_pools_with_a_softmax_over_positions_that_depends_on_the_image():
    torch.manual_seed(0)
    readout = AttentionReadout((8, 5, 5), n_neurons=4, dim=6, init_query_std=1.0).eval()
    with torch.no_grad():
        readout.features.normal_()
    x1, x2 = torch.randn(2, 8, 5, 5), torch.randn(2, 8, 5, 5)
    w1, tokens = readout.attention(x1)
    assert w1.shape == (2, 25, 4) and tokens.shape == (2, 25, 8)
    assert torch.allclose(w1.sum(1), torch.ones(2, 4), atol=1e-6)
    w2, _ = readout.attention(x2)
    assert (w1 - w2).abs().max() > 1e-3  # image-dependent pooling map
    # the textbook formulation: keys and values per position, scaled dot product, softmax, pooling
    keys, values = readout.key(tokens), readout.value(tokens)
    scores = torch.einsum("bpd,nd->bpn", keys, readout.query) / np.sqrt(8)
    assert torch.allclose(w1, torch.softmax(scores, dim=1), atol=1e-6)
    expected = torch.einsum("bpn,bpd,nd->bn", torch.softmax(scores, 1), values, readout.features) + readout.bias
    assert torch.allclose(readout(x1), expected, atol=1e-5)
    assert readout.key.bias is None and readout.value.bias is None


def test_attention_readout_l1_penalties_on_queries_and_features():
    readout = AttentionReadout((8, 5, 5), n_neurons=4, dim=6, gamma_query=0.1, gamma_features=0.2)
    expected = 0.1 * readout.query.abs().sum() + 0.2 * readout.features.abs().sum()
    assert readout.regularizer().item() == pytest.approx(expected.item())


def test_elu_plus_one_inverse_gives_back_the_rate():
    rates = torch.tensor([0.05, 0.5, 1.0, 3.0, 12.0])
    out = EluPlusOne()(EluPlusOne.inverse(rates))
    assert torch.allclose(out, rates, atol=1e-6)


def test_built_model_bias_starts_at_the_mean_response_through_the_inverse_nonlinearity():
    cfg = {
        "core": {"_target_": "egg_cli.models.cores.StackedConvCore", "channels": 4, "layers": 2},
        "readout": {"_target_": "egg_cli.models.readouts.GaussianReadout"},
        "output": {"_target_": "egg_cli.models.EluPlusOne"},
    }
    mean = np.array([0.5, 2.0, 4.0])
    model = build_model(cfg, (1, 24, 24), ["a", "b", "c"], 100.0, 50.0, mean)
    assert torch.allclose(model.output(model.readout.bias), torch.tensor(mean, dtype=torch.float32), atol=1e-6)
    assert model.readout.in_shape == (4, 16, 16)
    out = model.eval()(torch.randn(5, 1, 24, 24))
    assert out.shape == (5, 3) and (out > 0).all()
    assert model.n_neurons == 3 and model.input_shape == (1, 24, 24) and list(model.neuron_ids) == ["a", "b", "c"]


@pytest.mark.parametrize("readout", ["AttentionReadout", "GaussianReadout"])
def test_input_gradient_of_one_image_equals_its_row_in_a_batch_and_finite_differences(readout):
    cfg = {
        "core": {"_target_": "egg_cli.models.cores.StackedConvCore", "channels": 8, "layers": 3},
        "readout": {"_target_": f"egg_cli.models.readouts.{readout}"},
        "output": {"_target_": "egg_cli.models.EluPlusOne"},
    }
    torch.manual_seed(0)
    model = build_model(cfg, (1, 32, 32), ["a", "b"], 0.0, 1.0, np.array([1.0, 2.0])).eval()
    images = torch.randn(3, 1, 32, 32)
    batch = images.clone().requires_grad_(True)
    grad_batch = torch.autograd.grad(model(batch)[:, 0].sum(), batch)[0]
    for i in range(3):
        one = images[i : i + 1].clone().requires_grad_(True)
        grad_one = torch.autograd.grad(model(one)[:, 0].sum(), one)[0]
        assert torch.allclose(grad_one, grad_batch[i : i + 1], atol=1e-6)
        direction = torch.randn_like(one)
        with torch.no_grad():
            eps = 1e-2
            finite = (model(one + eps * direction)[0, 0] - model(one - eps * direction)[0, 0]) / (2 * eps)
        assert abs(float(finite) - float((grad_one * direction).sum())) < 1e-2 * max(1.0, abs(float(finite)))


def test_build_model_names_the_config_key_that_does_not_build():
    cfg = {
        "core": {"_target_": "egg_cli.models.cores.StackedConvCore", "chanels": 4},
        "readout": {"_target_": "egg_cli.models.readouts.GaussianReadout"},
        "output": {"_target_": "egg_cli.models.EluPlusOne"},
    }
    with pytest.raises(EggError, match=r"model.core could not be built .*chanels"):
        build_model(cfg, (1, 24, 24), [0], 0.0, 1.0)
    cfg["core"] = {"_target_": "egg_cli.models.cores.StackedConvCore", "channels": 4, "layers": 1}
    with pytest.raises(EggError, match="features of shape"):
        build_model(cfg, (1, 6, 6), [0], 0.0, 1.0)  # a 9x9 valid conv does not fit a 6x6 image


@pytest.fixture(scope="module")
def resnet18_weights(tmp_path_factory):
    import timm

    torch.manual_seed(1)
    net = timm.create_model("resnet18", pretrained=False)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, path)
    return path, net


def test_task_driven_core_cuts_a_timm_network_at_a_named_layer_and_loads_local_weights(resnet18_weights):
    path, net = resnet18_weights
    core = TaskDrivenCore(in_channels=1, model_name="resnet18", layer="layer2", weights=str(path), final_norm=False)
    x = torch.randn(2, 1, 48, 48)
    out = core.train()(x)
    assert out.shape == (2, 128, 6, 6)
    net.eval()
    with torch.no_grad():
        ref = net.layer2(net.layer1(net.maxpool(net.act1(net.bn1(net.conv1(x.expand(-1, 3, -1, -1)))))))
    assert torch.allclose(out, ref, atol=1e-5)  # same weights, grayscale repeated to 3 channels, frozen BN
    assert not any(p.requires_grad for p in core.backbone.parameters())
    assert not core.backbone.training  # a frozen backbone keeps its batch-norm statistics


def test_task_driven_core_without_weights_says_random_init_and_trains_its_norm(caplog):
    with caplog.at_level(logging.WARNING):
        core = TaskDrivenCore(model_name="resnet18", layer="layer1", frozen=True, final_norm=True)
    assert "random initialization" in caplog.text
    trainable = [n for n, p in core.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith("norm.") for n in trainable)
    assert (core(torch.randn(1, 1, 32, 32)) >= 0).all()  # ReLU after batch norm


def test_task_driven_core_errors_name_the_problem(tmp_path):
    with pytest.raises(EggError, match=r"model.core.layer='layer9' is not a module of resnet18; top-level modules: conv1"):
        TaskDrivenCore(model_name="resnet18", layer="layer9")
    with pytest.raises(EggError, match="does not exist"):
        TaskDrivenCore(model_name="resnet18", layer="layer1", weights=str(tmp_path / "missing.pt"))
    with pytest.raises(EggError, match="is not a timm model"):
        TaskDrivenCore(model_name="no_such_net", layer="layer1")
    wrong = tmp_path / "wrong.pt"
    torch.save({"conv1.weight": torch.zeros(3)}, wrong)
    with pytest.raises(EggError, match="missing keys: .*shape mismatches: conv1.weight"):
        TaskDrivenCore(model_name="resnet18", layer="layer1", weights=str(wrong))


def test_task_driven_pretrained_offline_fails_in_one_line_naming_the_weights_file_alternative(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads the variable once, at import: when an earlier test imported it, only
    # its constant makes the download fail at once instead of after network retries (47 s here)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(EggError) as err:
        TaskDrivenCore(model_name="resnet18", layer="layer2", pretrained=True)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("model.core.pretrained=true: timm could not fetch the weights of resnet18")
    assert "model.core.weights=<file>" in message
    with pytest.raises(EggError, match="exclusive"):
        TaskDrivenCore(model_name="resnet18", layer="layer2", pretrained=True, weights="w.pt")


def test_shipped_task_backbone_loads_frozen_and_is_not_the_random_initialization():
    from egg_cli.models.cores.task_driven import SHIPPED_WEIGHTS

    assert SHIPPED_WEIGHTS.stat().st_size < 20e6
    saved = torch.load(SHIPPED_WEIGHTS, weights_only=True)
    assert (saved["model_name"], saved["layer"], saved["task"]) == ("resnet18", "layer2", "rotation")
    torch.manual_seed(0)
    core = TaskDrivenCore(in_channels=1, model_name="resnet18", layer="layer2", weights="shipped").train()
    torch.manual_seed(0)
    random = TaskDrivenCore(in_channels=1, model_name="resnet18", layer="layer2", weights=None)
    assert not any(p.requires_grad for p in core.backbone.parameters()) and not core.backbone.training
    torch.testing.assert_close(core.backbone.state_dict()["conv1.weight"], saved["state_dict"]["conv1.weight"])
    assert not torch.equal(core.backbone.state_dict()["conv1.weight"], random.backbone.state_dict()["conv1.weight"])
    x = torch.randn(2, 1, 32, 32)
    out = core(x)
    assert out.shape == (2, 128, 4, 4) and torch.isfinite(out).all()
    with pytest.raises(EggError, match="weights=shipped is egg's resnet18 trunk to layer2"):
        TaskDrivenCore(model_name="resnet50", layer="layer3.0", weights="shipped")
