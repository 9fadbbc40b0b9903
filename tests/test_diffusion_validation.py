"""Held-out denoising loss (diffusion/validation.py) and the training image sources of egg train-prior."""

import numpy as np
import pytest
import torch

from egg_cli.data.natural import load_photographs, random_crops
from egg_cli.diffusion.config import DiffusionConfig
from egg_cli.diffusion.data import CropBank
from egg_cli.diffusion.gaussian import GaussianDiffusion
from egg_cli.diffusion.spectrum import spectral_slope
from egg_cli.diffusion.validation import denoising_loss
from egg_cli.errors import EggError


class Constant(torch.nn.Module):
    """A denoiser that always outputs ``value`` (one parameter, so it has a device)."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = torch.nn.Parameter(torch.tensor(float(value)))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.full_like(x, self.value.item())


def _x0_diffusion() -> GaussianDiffusion:
    return GaussianDiffusion(DiffusionConfig(diffusion_steps=100, noise_schedule="cosine", mean_type="x0", learn_sigma=False), "")


def test_denoising_loss_of_a_constant_x0_predictor_is_the_images_squared_distance_to_it():
    images = torch.linspace(-1, 1, 4 * 64).view(4, 1, 8, 8)
    for value in (0.0, 0.5):
        out = denoising_loss(Constant(value), _x0_diffusion(), images, weighting="uniform", timesteps=10, batch_size=3)
        expected = (images - value).pow(2).mean().item()
        assert out["x0_mse"] == pytest.approx(expected, rel=1e-6)
        assert out["loss"] == pytest.approx(expected, rel=1e-6)  # x0 target, uniform weighting: the same number


def test_denoising_loss_uses_the_same_noise_for_every_model_and_needs_the_unrespaced_chain():
    diffusion = GaussianDiffusion(
        DiffusionConfig(diffusion_steps=100, noise_schedule="cosine", mean_type="v", learn_sigma=False), ""
    )
    images = torch.rand(6, 1, 8, 8) * 2 - 1
    a = denoising_loss(Constant(0.1), diffusion, images, timesteps=5, seed=3)
    b = denoising_loss(Constant(0.1), diffusion, images, timesteps=5, seed=3)
    assert a == b
    assert denoising_loss(Constant(0.1), diffusion, images, timesteps=5, seed=4) != a
    with pytest.raises(ValueError, match="unrespaced"):
        denoising_loss(Constant(0.0), GaussianDiffusion(DiffusionConfig(diffusion_steps=100, mean_type="v"), "10"), images)


def test_bundled_crop_bank_is_unchanged_by_the_image_sources():
    """The shipped default prior's recipe: photograph crops with flips, drawn from the seed's generator."""
    bank = CropBank("bundled", 12, 16, 1, (0.25, 1.0), seed=5)
    old = random_crops(load_photographs(None), 12, 16, np.random.default_rng(5), (0.25, 1.0), flip=True)
    np.testing.assert_array_equal(bank.images.numpy(), np.round(old * 255.0).astype(np.uint8))


def test_the_simulated_world_draws_photograph_crops_as_before():
    """natural_images (egg simulate's images) keeps random_crops' defaults, flips included: the same seed
    gives the same world as before the image sources were shared with egg train-prior."""
    from egg_cli.data.natural import natural_images

    images = natural_images("bundled", 10, 16, np.random.default_rng(7))
    np.testing.assert_array_equal(images, random_crops(load_photographs(None), 10, 16, np.random.default_rng(7)))


def test_dead_leaves_and_mixed_banks_hold_the_world_images():
    dead = CropBank("dead_leaves", 96, 32, 1, seed=0)
    photos = CropBank("bundled", 96, 32, 1, seed=0)
    mixed = CropBank("mixed", 96, 32, 1, seed=0)
    assert dead.images.shape == mixed.images.shape == (96, 1, 32, 32)

    # dead leaves: occluding edges, where neighbouring pixels jump by 40 gray levels or more (15 %
    # of neighbours against 7 % in photograph crops); the mixed bank lies in between
    def edges(bank: CropBank) -> float:
        return (bank.images[..., 1:].int() - bank.images[..., :-1].int()).abs().ge(40).float().mean().item()

    assert edges(dead) > 0.12 and edges(photos) < 0.09
    assert edges(photos) < edges(mixed) < edges(dead)
    slopes = [spectral_slope(b.sample(96, seed=0)) for b in (dead, mixed, photos)]
    assert all(-3.2 < s < -1.5 for s in slopes), slopes


def test_crop_bank_names_a_missing_folder():
    with pytest.raises(EggError, match="image folder .*nowhere does not exist"):
        CropBank("/nowhere", 4, 16, 1)
