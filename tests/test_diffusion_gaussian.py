"""Gaussian diffusion: respacing strings, p_mean_variance against guided-diffusion, schedules, losses."""

import math

import numpy as np
import pytest
import torch
from diffusion_fixtures import PMV_TOLERANCES, small_reference, small_state_dict

from egg_cli.diffusion import DiffusionConfig, GaussianDiffusion, UNetConfig, UNetModel, beta_schedule, space_timesteps
from egg_cli.errors import EggError


def test_respacing_strings_keep_the_reference_timesteps():
    meta, _ = small_reference()
    for text, expected in meta["timestep_respacing_1000"].items():
        assert space_timesteps(1000, text) == sorted(expected), text
    assert space_timesteps(1000, "ddim25")[:3] == [0, 40, 80]
    assert len(space_timesteps(1000, "10,20")) == 30


def test_bad_respacing_raises_egg_error():
    with pytest.raises(EggError, match="ddim999"):
        space_timesteps(1000, "ddim999")  # no integer stride gives exactly 999 steps
    with pytest.raises(EggError, match="fifty"):
        space_timesteps(1000, "fifty")
    with pytest.raises(EggError, match="600"):
        space_timesteps(1000, "600,10")


def test_p_mean_variance_matches_reference_at_respaced_indices():
    meta, arrays = small_reference()
    model = UNetModel(UNetConfig.from_flags(meta["config"]))
    model.load_state_dict(small_state_dict(arrays))
    diffusion = GaussianDiffusion(DiffusionConfig.from_flags(meta["config"]))
    assert diffusion.num_timesteps == 50
    with torch.no_grad():
        out = diffusion.p_mean_variance(
            model, torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["t_respaced"]), clip_denoised=True
        )
    for key, tol in PMV_TOLERANCES.items():
        ref = torch.from_numpy(arrays[f"pmv_{key}"])
        assert (out[key] - ref).abs().max().item() <= tol * max(1.0, ref.abs().max().item()), key


def test_linear_and_cosine_schedules_have_expected_values():
    linear = beta_schedule("linear", 1000)
    assert linear[0] == pytest.approx(1e-4) and linear[-1] == pytest.approx(0.02)
    assert beta_schedule("linear", 100)[-1] == pytest.approx(0.2)
    cosine = beta_schedule("cosine", 1000)
    abar = np.cumprod(1 - cosine)
    f = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
    assert abar[499] == pytest.approx(f(0.5) / f(0), rel=1e-9)
    assert cosine.max() == pytest.approx(0.999)
    with pytest.raises(EggError, match="quadratic"):
        beta_schedule("quadratic", 10)


def test_respaced_chain_keeps_cumulative_alphas_of_kept_steps():
    config = DiffusionConfig(noise_schedule="cosine")
    full = GaussianDiffusion(config, "")
    spaced = GaussianDiffusion(config, "10,20")
    kept = spaced.timestep_map
    np.testing.assert_allclose(spaced.alphas_cumprod, full.alphas_cumprod[kept], rtol=1e-9)
    assert spaced.model_timesteps(torch.tensor([0, 29])).tolist() == [kept[0], kept[-1]]


def test_parametrizations_recover_x0_from_exact_targets():
    diffusion = GaussianDiffusion(DiffusionConfig(noise_schedule="linear", learn_sigma=False), "")
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.rand(3, 1, 4, 4, generator=g) * 2 - 1, torch.randn(3, 1, 4, 4, generator=g)
    t = torch.tensor([5, 400, 990])
    x_t = diffusion.q_sample(x0, t, noise)
    torch.testing.assert_close(diffusion.predict_xstart_from_eps(x_t, t, noise), x0, atol=2e-4, rtol=0)
    torch.testing.assert_close(diffusion.predict_xstart_from_v(x_t, t, diffusion.v_target(x0, t, noise)), x0, atol=1e-5, rtol=0)
    torch.testing.assert_close(diffusion.predict_eps_from_xstart(x_t, t, x0), noise, atol=1e-3, rtol=0)


def test_ddim_with_exact_denoiser_lands_on_the_single_training_image():
    # data distribution = one image: the exact x0 prediction is that image at every step
    diffusion = GaussianDiffusion(DiffusionConfig(noise_schedule="cosine", learn_sigma=False, sigma_small=True), "ddim25")
    target = torch.linspace(-0.8, 0.8, 16).view(1, 1, 4, 4)
    x = torch.randn(1, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    for i in reversed(range(diffusion.num_timesteps)):
        t = torch.tensor([i])
        x = diffusion.ddim_sample(x, t, target, torch.zeros_like(x), eta=0.0)
    torch.testing.assert_close(x, target, atol=1e-5, rtol=0)


def test_min_snr_weighting_equals_clipped_snr_times_x0_error():
    # a model that outputs zeros: for v-prediction the weighted loss is min(snr, 5) * |x0_hat - x0|^2
    diffusion = GaussianDiffusion(DiffusionConfig(noise_schedule="cosine", mean_type="v", learn_sigma=False), "")
    zero_model = lambda x, t: torch.zeros_like(x)
    g = torch.Generator().manual_seed(2)
    x0, noise = torch.rand(4, 1, 8, 8, generator=g) * 2 - 1, torch.randn(4, 1, 8, 8, generator=g)
    t = torch.tensor([10, 200, 500, 950])
    terms = diffusion.training_losses(zero_model, x0, t, noise, "min_snr", 5.0)
    x_t = diffusion.q_sample(x0, t, noise)
    x0_err = ((diffusion.predict_xstart_from_v(x_t, t, torch.zeros_like(x0)) - x0) ** 2).mean(dim=(1, 2, 3))
    expected = diffusion.snr(t).clamp(max=5.0) * x0_err
    torch.testing.assert_close(terms["loss"], expected, rtol=1e-4, atol=1e-6)


def test_learned_variance_loss_adds_variational_bound_with_gradient_only_to_variance_channels():
    cfg = UNetConfig.from_flags(dict(image_size=8, num_channels=32, channel_mult="1,2", attention_resolutions="", in_channels=1))
    model = UNetModel(cfg)
    for p in model.out.parameters():
        torch.nn.init.normal_(p, std=0.1)
    diffusion = GaussianDiffusion(DiffusionConfig(learn_sigma=True), "")
    x0 = torch.rand(2, 1, 8, 8) * 2 - 1
    terms = diffusion.training_losses(model, x0, torch.tensor([0, 500]), torch.randn_like(x0))
    assert terms["vb"].shape == (2,) and torch.all(terms["vb"] > 0)
    terms["vb"].sum().backward()
    grad = model.out[2].weight.grad
    assert grad[:1].abs().max() == 0  # mean channel frozen in the bound
    assert grad[1:].abs().max() > 0


def test_ema_warmup_decay_follows_the_schedule_and_tracks_weights():
    from egg_cli.diffusion.ema import EMA

    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    ema = EMA(model, decay=0.99, warmup=True)
    assert ema.current_decay() == pytest.approx(0.1)  # (1 + 0) / (10 + 0)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)
    assert ema.shadow.weight.item() == pytest.approx(0.9)
    ema.updates = 10_000
    assert ema.current_decay() == 0.99


def test_calibrated_variance_adds_the_denoisers_x0_error_to_the_posterior_variance():
    config = DiffusionConfig(noise_schedule="cosine", learn_sigma=False, sigma_small=True)
    mse = np.linspace(0.2, 0.0, 1000)
    plain = GaussianDiffusion(config, "50")
    calibrated = GaussianDiffusion(config, "50", x0_mse=mse)
    x = torch.zeros(1, 1, 2, 2)
    for i in (1, 10, 49):
        t = torch.tensor([i])
        _, var, log_var = calibrated.split_output(x, x, t)
        expected = plain.posterior_variance[i] + plain.posterior_mean_coef1[i] ** 2 * mse[plain.timestep_map[i]]
        assert var[0, 0, 0, 0].item() == pytest.approx(expected, rel=1e-6)
        assert log_var[0, 0, 0, 0].item() == pytest.approx(math.log(expected), rel=1e-6)
        assert expected > plain.posterior_variance[i] or mse[plain.timestep_map[i]] == 0
    with pytest.raises(EggError, match="1000 finite non-negative values"):
        GaussianDiffusion(config, "50", x0_mse=np.zeros(10))


def test_x0_error_table_is_zero_for_an_exact_denoiser_and_interpolated_between_grid_points():
    from egg_cli.diffusion.calibration import x0_mse_table

    diffusion = GaussianDiffusion(DiffusionConfig(noise_schedule="linear", mean_type="x0", learn_sigma=False), "")
    images = torch.full((4, 1, 4, 4), 0.3)
    images[:2] = -0.3
    exact = torch.nn.Module()
    exact.register_parameter("p", torch.nn.Parameter(torch.zeros(1)))
    exact.forward = lambda x_t, t: torch.sign(x_t.mean(dim=(1, 2, 3), keepdim=True)).expand_as(x_t) * 0.3
    table = x0_mse_table(exact, diffusion, images, grid="50")
    assert table.shape == (1000,)
    assert table[:61].max() < 1e-12  # low noise: the sign is always right
    assert table[-1] > 0.01  # pure noise: the sign is a coin flip
    assert table.max() <= images.double().var().item() + 1e-12
