"""The Prior contract: load_prior, per-element generators, guidance hook, DDIM, loading errors."""

import pytest
import torch
from diffusion_fixtures import PMV_TOLERANCES, small_reference, small_state_dict

from egg_cli.diffusion import SpectralPrior, load_prior
from egg_cli.errors import EggError


@pytest.fixture(scope="module")
def reference_file(tmp_path_factory):
    """The small reference UNet saved as a plain guided-diffusion state dict."""
    meta, arrays = small_reference()
    path = tmp_path_factory.mktemp("adm") / "small.pt"
    torch.save(small_state_dict(arrays), path)
    return path, meta, arrays


def _small_prior(reference_file, steps="50"):
    path, meta, _ = reference_file
    return load_prior(str(path), steps=steps, device="cpu", flags=meta["config"], clip_denoised=True)


def test_plain_state_dict_with_flags_loads_and_matches_reference_p_mean_variance(reference_file):
    _, _, arrays = reference_file
    prior = _small_prior(reference_file)
    assert (prior.image_size, prior.channels, prior.num_steps, prior.device.type) == (32, 3, 50, "cpu")
    x = torch.from_numpy(arrays["x"])
    for b, i in enumerate(arrays["t_respaced"].tolist()):
        out = prior.p_mean_variance(x[b : b + 1], i)
        for key, tol in PMV_TOLERANCES.items():
            ref = torch.from_numpy(arrays[f"pmv_{key}"][b : b + 1])
            assert (out[key] - ref).abs().max().item() <= tol * max(1.0, ref.abs().max().item()), key


def test_trajectory_of_an_element_does_not_depend_on_the_rest_of_the_batch(reference_file):
    prior = _small_prior(reference_file, steps="5")
    shape = (3, 32, 32)

    def run(seeds):
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        noise = torch.stack([torch.randn(shape, generator=g) for g in gens])
        return [step["sample"] for step in prior.sample_progressive(noise, gens)]

    alone = run([7])
    batched = run([3, 7])
    assert len(alone) == 5
    for a, b in zip(alone, batched):
        torch.testing.assert_close(a[0], b[1], atol=1e-5, rtol=0)
    assert (batched[-1][0] - batched[-1][1]).abs().max() > 0.1


def test_guidance_gets_differentiable_x_t_and_its_delta_is_added(reference_file):
    prior = _small_prior(reference_file, steps="4")
    gens = [torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)]
    noise = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    calls = []

    def guidance(x_t, out, i):
        assert x_t.requires_grad
        (grad,) = torch.autograd.grad(out["pred_xstart"].mean(dim=(1, 2, 3)).sum(), x_t)
        calls.append(i)
        return 0.25 * torch.ones_like(x_t)

    guided = list(prior.sample_progressive(noise, [torch.Generator().manual_seed(s) for s in (0, 1)], guidance=guidance))
    plain = list(prior.sample_progressive(noise, gens))
    assert calls == [3, 2, 1, 0] and [s["i"] for s in guided] == [3, 2, 1, 0]
    # first step: same x_t, same noise -> guided sample is the plain one plus the delta
    torch.testing.assert_close(guided[0]["sample"], plain[0]["sample"] + 0.25, atol=1e-5, rtol=0)


def test_ddim_eta_zero_is_deterministic_and_needs_noise_when_eta_positive(reference_file):
    prior = _small_prior(reference_file, steps="ddim25")
    assert prior.num_steps == 25
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    a = prior.ddim_step(x, 10)["sample"]
    b = prior.ddim_step(x, 10, eta=0.0, noise=torch.randn_like(x))["sample"]
    torch.testing.assert_close(a, b)
    with pytest.raises(EggError, match="eta > 0 needs noise"):
        prior.ddim_step(x, 10, eta=0.5)
    s1 = [s["sample"] for s in prior.sample_progressive(x, [torch.Generator().manual_seed(0)], ddim=True)][-1]
    s2 = [s["sample"] for s in prior.sample_progressive(x, [torch.Generator().manual_seed(99)], ddim=True)][-1]
    torch.testing.assert_close(s1, s2)


def test_step_index_and_input_shape_are_checked(reference_file):
    prior = _small_prior(reference_file, steps="10")
    with pytest.raises(EggError, match="index 10 is outside 0..9"):
        prior.p_mean_variance(torch.zeros(1, 3, 32, 32), 10)
    with pytest.raises(EggError, match=r"expected \(batch, 3, 32, 32\)"):
        prior.p_mean_variance(torch.zeros(1, 1, 32, 32), 0)
    with pytest.raises(EggError, match="2 generators for a batch of 1"):
        next(prior.sample_progressive(torch.zeros(1, 3, 32, 32), [torch.Generator(), torch.Generator()]))


def test_adm256_without_checkpoint_names_the_config_key(tmp_path):
    with pytest.raises(EggError, match=r"set prior.checkpoint=/path/to/256x256_diffusion_uncond.pt"):
        load_prior("adm256", steps="50", device="cpu")
    missing = tmp_path / "nope.pt"
    with pytest.raises(EggError, match=rf"prior.checkpoint={missing} does not exist"):
        load_prior("adm256", steps="50", device="cpu", checkpoint=str(missing))


def test_unknown_prior_names_and_options_raise(reference_file, tmp_path):
    with pytest.raises(EggError, match="neither default, mixed, spectral, adm256 nor an existing checkpoint"):
        load_prior("imagenet", device="cpu")
    path, meta, _ = reference_file
    with pytest.raises(EggError, match="not written by egg train-prior; pass its guided-diffusion flags"):
        load_prior(str(path), device="cpu")
    with pytest.raises(EggError, match=r"unknown options \['temperature'\]"):
        load_prior(str(path), device="cpu", flags=meta["config"], temperature=2)
    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    with pytest.raises(EggError, match="cannot be read as a torch checkpoint"):
        load_prior(str(bad), device="cpu")


def test_spectral_prior_loads_by_name_fitted_to_bundled_crops():
    prior = load_prior("spectral", steps="20", device="cpu", image_size=16, fit_crops=300)
    assert isinstance(prior, SpectralPrior)
    assert (prior.image_size, prior.channels, prior.num_steps) == (16, 1, 20)
    assert 1.5 < prior.model.exponent[0] < 3.5  # natural images: power falls as about 1/f^2
    out = prior.p_mean_variance(torch.zeros(2, 1, 16, 16), 19)
    assert torch.isfinite(out["mean"]).all() and out["variance"].min() > 0


def test_shipped_priors_load_by_name_and_record_their_training_images():
    from egg_cli.diffusion.checkpoint import read_checkpoint
    from egg_cli.diffusion.loading import SHIPPED_PRIORS, prior_file

    default, mixed = (load_prior(name, steps="10", device="cpu") for name in ("default", "mixed"))
    for prior in (default, mixed):
        assert (prior.image_size, prior.channels, prior.num_steps) == (32, 1, 10)
        assert prior.diffusion.calibrated is not None
    ckpt = read_checkpoint(prior_file("mixed"))
    assert ckpt["data"]["source"] == "mixed" and ckpt["init"] == "default"
    assert ckpt["step"] > read_checkpoint(SHIPPED_PRIORS["default"])["step"]
    x = torch.zeros(1, 1, 32, 32)
    assert not torch.equal(default.p_mean_variance(x, 5)["pred_xstart"], mixed.p_mean_variance(x, 5)["pred_xstart"])


def test_spectral_prior_fits_the_world_images_of_any_source():
    photos = load_prior("spectral", steps="10", device="cpu", image_size=16, fit_crops=200)
    world = load_prior("spectral", steps="10", device="cpu", image_size=16, fit_crops=200, source="dead_leaves")
    assert photos.model.exponent[0] != world.model.exponent[0]
    assert 1.5 < world.model.exponent[0] < 3.5


def test_loading_assigns_memory_mapped_weights_without_copying(reference_file):
    from egg_cli.diffusion.checkpoint import read_checkpoint
    from egg_cli.diffusion.loading import build_unet_prior

    path, meta, _ = reference_file
    state = read_checkpoint(path)
    prior = build_unet_prior(meta["config"], state, str(path), "50", torch.device("cpu"))
    params = dict(prior.model.named_parameters())
    assert all(params[k].data_ptr() == v.data_ptr() for k, v in state.items())
    assert not any(p.requires_grad for p in params.values())


def test_half_precision_blocks_keep_float32_output_close_to_reference():
    meta, arrays = small_reference()
    from egg_cli.diffusion import UNetConfig, UNetModel

    model = UNetModel(UNetConfig.from_flags(meta["config"]))
    model.load_state_dict(small_state_dict(arrays))
    model.convert_blocks(torch.bfloat16)  # fp16 on a GPU; bfloat16 runs on the CPU
    assert model.input_blocks[1][0].in_layers[2].weight.dtype == torch.bfloat16
    assert model.input_blocks[1][0].in_layers[0].weight.dtype == torch.float32  # group norm
    assert model.out[2].weight.dtype == model.time_embed[0].weight.dtype == torch.float32
    with torch.no_grad():
        out = model(torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["t_raw"]))
    ref = torch.from_numpy(arrays["out_raw"])
    assert out.dtype == torch.float32
    assert (out - ref).abs().max().item() < 0.05 * ref.abs().max().item()
