"""Code generators: pixel grid, diffusion prior decoded by DDIM, DeePSiM fc6 (random weights)."""

import math
import sys
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

import egg_cli.configs
from egg_cli.diffusion import prior_config
from egg_cli.errors import EggError
from egg_cli.synthesis.adapter import ImageAdapter
from egg_cli.synthesis.blackbox.generators import DeePSiMFc6, DeePSiMGenerator, PixelGenerator, PriorGenerator, prior_generator


def test_pixel_generator_upsamples_a_coarse_grid_to_the_model_input():
    gen = PixelGenerator((1, 24, 36), grid=4)
    assert (gen.rows, gen.cols) == (4, 6) and gen.code_dim == 24
    constant = gen(torch.full((2, 24), 1.5))
    assert constant.shape == (2, 1, 24, 36) and torch.allclose(constant, torch.full_like(constant, 1.5))
    one_hot = torch.zeros(1, 24)
    one_hot[0, 0] = 1.0
    image = gen(one_hot)[0, 0]
    assert image[0, 0] == image.max() and image[-1, -1] == 0  # a top-left blob
    full = PixelGenerator((1, 8, 8), grid=8)
    codes = torch.randn(3, 64)
    assert torch.equal(full(codes), codes.view(3, 1, 8, 8))
    assert math.isclose(full.sphere_radius, 8.0)


def test_pixel_generator_rejects_a_grid_finer_than_the_image_and_wrong_codes():
    with pytest.raises(EggError, match="finer"):
        PixelGenerator((1, 8, 8), grid=16)
    with pytest.raises(EggError, match="codes of shape"):
        PixelGenerator((1, 8, 8), grid=4)(torch.zeros(2, 15))


class LinearDDIMPrior:
    """A stand-in for egg_cli.diffusion priors: each DDIM step is x <- 0.5 * x + 0.1 (deterministic)."""

    image_size = 8
    channels = 3
    num_steps = 4

    def __init__(self):
        self.calls = []

    def sample_progressive(self, noise, generators, guidance=None, ddim=False, eta=0.0):
        self.calls.append((ddim, eta, guidance, len(generators)))
        x = noise
        for i in reversed(range(self.num_steps)):
            x = 0.5 * x + 0.1
            yield {"i": i, "sample": x, "pred_xstart": x}


def test_prior_generator_decodes_codes_deterministically_at_the_noise_norm():
    prior = LinearDDIMPrior()
    gen = PriorGenerator(prior, normalize=True, prior_name="toy")
    assert gen.code_dim == 192 and gen.shape == (3, 8, 8) and gen.space == "diffusion"
    codes = torch.randn(2, 192)
    out = gen(codes)
    assert prior.calls[-1] == (True, 0.0, None, 2)  # DDIM, eta 0, no guidance, one generator per image
    noise = codes * (math.sqrt(192) / codes.norm(dim=1, keepdim=True))
    expected = noise.view(2, 3, 8, 8) * 0.5**4 + 0.1 * (1 - 0.5**4) / 0.5
    assert torch.allclose(out, expected.clamp(-1, 1), atol=1e-6)
    assert torch.allclose(gen(3.0 * codes), out, atol=1e-6)  # only the direction of a code matters
    assert torch.equal(gen(codes[:1]), out[:1])  # an image does not depend on the rest of the batch


def test_deepsim_fc6_architecture_maps_4096_codes_to_256_pixel_rgb():
    with torch.device("meta"):  # shapes only
        net = DeePSiMFc6()
    shapes = {name: tuple(p.shape) for name, p in net.named_parameters()}
    assert shapes["defc7.weight"] == (4096, 4096) and shapes["defc5.bias"] == (4096,)
    assert shapes["deconv5_0.weight"] == (256, 256, 4, 4) and shapes["deconv5_1.weight"] == (256, 512, 3, 3)
    assert shapes["deconv0.weight"] == (32, 3, 4, 4)
    assert len(shapes) == 2 * 12
    # 4x4 stride-2 up-convolutions double the 4x4 start six times (3x3 stride-1 ones keep the size): 256
    doubling = [name for name, _, _, k, s in DeePSiMFc6.DECONVS if (k, s) == (4, 2)]
    assert 4 * 2 ** len(doubling) == 256  # the forward pass itself is checked with loaded weights below


@pytest.fixture(scope="module")
def deepsim_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("deepsim") / "fc6.pt"
    gen = DeePSiMGenerator("random", seed=3)
    torch.save({"state_dict": gen.net.state_dict()}, path)
    return path, gen


def test_deepsim_generator_loads_user_weights_and_outputs_rgb_in_diffusion_range(deepsim_weights):
    path, random_gen = deepsim_weights
    loaded = DeePSiMGenerator(str(path))
    codes = torch.randn(2, 4096) * 3
    out = loaded(codes)
    assert out.shape == (2, 3, 256, 256) and out.min() >= -1 and out.max() <= 1
    assert torch.equal(out, random_gen(codes))
    # zero code: the output is the Caffe mean (plus biases), flipped BGR -> RGB
    with torch.no_grad():
        bgr = loaded.net(torch.zeros(1, 4096)) + torch.tensor([104.0, 117.0, 123.0]).view(1, 3, 1, 1)
    expected = bgr.flip(1).clamp(0, 255) / 127.5 - 1
    assert torch.allclose(loaded(torch.zeros(1, 4096)), expected)
    adapter = ImageAdapter(loaded.shape, (1, 50, 50), 120.0, 60.0, source_space="diffusion", norm=12.5)
    assert adapter(out).shape == (2, 1, 50, 50)


def test_deepsim_generator_rejects_missing_and_incompatible_weights(tmp_path):
    with pytest.raises(EggError, match="does not exist"):
        DeePSiMGenerator(str(tmp_path / "none.pt"))
    bad = tmp_path / "bad.pt"
    torch.save({"defc7.weight": torch.zeros(3, 3)}, bad)
    with pytest.raises(EggError, match="missing keys"):
        DeePSiMGenerator(str(bad))
    with pytest.raises(EggError, match="weights is not set"):
        DeePSiMGenerator("???")


def _generator_entry(name: str, **options):
    """configs/generator/<name>.yaml as shipped, with ``options`` replaced."""
    entry = OmegaConf.to_container(OmegaConf.load(Path(egg_cli.configs.__file__).parent / "generator" / f"{name}.yaml"))
    return {**entry, **options}


def test_generator_configs_build_their_generator_for_the_model_shape():
    pixel = instantiate(_generator_entry("pixel"), shape=(1, 16, 24), device=torch.device("cpu"))
    assert isinstance(pixel, PixelGenerator) and (pixel.rows, pixel.cols) == (16, 24) and pixel.shape == (1, 16, 24)
    deepsim = instantiate(_generator_entry("deepsim", weights="random"), shape=(1, 16, 16), device=torch.device("cpu"))
    assert isinstance(deepsim, DeePSiMGenerator) and deepsim.shape == (3, 256, 256)


def test_prior_generator_refuses_a_prior_name_in_place_of_its_config():
    with pytest.raises(
        EggError, match="generator.prior='spectral': expected the prior group's config; choose the prior with prior="
    ):
        prior_generator((1, 16, 16), torch.device("cpu"), prior="spectral")


@pytest.mark.slow
def test_prior_generator_with_the_spectral_prior_drives_a_model_through_the_adapter():
    """generator=prior end to end: load_prior('spectral'), DDIM decoding, adapter, XDream."""
    sys.path.insert(0, str(Path(__file__).parent))
    from synthesis_toys import TinyCNN

    from egg_cli.synthesis import XDream
    from egg_cli.synthesis.objectives import NeuronObjective
    from egg_cli.synthesis.runner import synthesize

    spectral = prior_config("spectral", image_size=16, fit_crops=200)
    gen = prior_generator((1, 20, 20), torch.device("cpu"), prior=spectral, steps="5")
    codes = torch.randn(3, gen.code_dim)
    images = gen(codes)
    assert images.shape == (3, 1, 16, 16) and images.abs().max() <= 1
    assert torch.allclose(gen(codes[1:2]), images[1:2], atol=1e-5) and torch.allclose(gen(2 * codes), images, atol=1e-5)
    objective = NeuronObjective(TinyCNN(n_neurons=2, size=20), [0, 1])
    method = XDream(
        budget=120,
        generator={"_target_": "egg_cli.synthesis.blackbox.generators.prior_generator", "prior": spectral, "steps": "5"},
    )
    result = synthesize(method, objective, [0], torch.device("cpu"), progress=False)
    assert result.generator_images.shape == (2, 1, 1, 16, 16) and result.images.shape == (2, 1, 1, 20, 20)
    assert (result.trace[:, 0, -1] > result.trace[:, 0, 0]).all()
    assert method.info().settings["generator"]["decoder"] == "ddim eta=0"
