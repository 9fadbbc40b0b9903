"""Adapter from generator space to model input, contrast, and the gradient blur."""

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from egg_cli.errors import EggError
from egg_cli.synthesis.adapter import ImageAdapter, contrast_norm, image_norms, project_norm
from egg_cli.synthesis.filters import gaussian_blur, spectrum_scale


def test_contrast_norm_is_25_for_v4_images_and_keeps_rms_contrast_for_other_sizes():
    assert contrast_norm((1, 100, 100)) == pytest.approx(25.0)
    assert contrast_norm((1, 50, 50)) == pytest.approx(12.5)
    assert contrast_norm((3, 64, 64)) == pytest.approx(0.25 * math.sqrt(3 * 64 * 64))
    assert contrast_norm((1, 100, 100), norm=60.0) == 60.0
    assert contrast_norm((1, 10, 10), rms_contrast=None) is None
    with pytest.raises(EggError, match="rms_contrast"):
        contrast_norm((1, 10, 10), rms_contrast=-1.0)


def test_project_norm_rescales_each_image_alone():
    x = torch.randn(3, 1, 8, 8) * torch.tensor([0.1, 1.0, 10.0]).view(3, 1, 1, 1)
    y = project_norm(x, 5.0)
    assert torch.allclose(image_norms(y), torch.full((3,), 5.0), atol=1e-5)
    assert torch.allclose(y[1], x[1] * 5.0 / x[1].norm(), atol=1e-6)


def test_diffusion_adapter_maps_rgb_minus_one_one_to_zscored_gray_at_fixed_norm():
    adapter = ImageAdapter((3, 16, 16), (1, 8, 8), pixel_mean=100.0, pixel_std=50.0, source_space="diffusion", norm=None)
    x = torch.zeros(2, 3, 16, 16)
    x[0] = 1.0  # white -> 255 -> (255 - 100) / 50
    x[1, 0] = -1.0  # red channel black, others mid gray: mean = (0 + 127.5 + 127.5) / 3
    y = adapter(x)
    assert y.shape == (2, 1, 8, 8)
    assert torch.allclose(y[0], torch.full((1, 8, 8), 3.1))
    assert torch.allclose(y[1], torch.full((1, 8, 8), (85.0 - 100.0) / 50.0))
    fixed = adapter.with_norm(25.0)(torch.rand(2, 3, 16, 16) * 2 - 1)
    assert torch.allclose(image_norms(fixed), torch.full((2,), 25.0), atol=1e-4)


def test_gray_generator_is_repeated_for_a_colour_model():
    adapter = ImageAdapter((1, 4, 4), (3, 4, 4), 0.0, 1.0, source_space="zscored")
    x = torch.randn(1, 1, 4, 4)
    assert torch.equal(adapter(x), x.expand(-1, 3, -1, -1))


def test_adapter_refuses_sizes_it_cannot_adapt_with_one_line():
    with pytest.raises(EggError, match="aspect ratios differ.*center_crop"):
        ImageAdapter((3, 64, 64), (1, 36, 64), 0.0, 1.0, fit="resize")
    with pytest.raises(EggError, match="channels must match"):
        ImageAdapter((3, 64, 64), (2, 64, 64), 0.0, 1.0)
    with pytest.raises(EggError, match="sizes must be positive"):
        ImageAdapter((3, 64, 64), (1, 0, 64), 0.0, 1.0)


def test_center_crop_takes_the_middle_band_for_a_wide_model():
    adapter = ImageAdapter((1, 64, 64), (1, 36, 64), 0.0, 1.0, fit="center_crop")
    assert adapter.crop_box() == (14, 0, 36, 64)
    x = torch.arange(64.0).view(1, 1, 64, 1).expand(1, 1, 64, 64)
    y = adapter(x)
    assert y.shape == (1, 1, 36, 64)
    assert y[0, 0, 0, 0] == 14.0 and y[0, 0, -1, 0] == 49.0


def test_gaussian_blur_matches_scipy_mirror_mode_truncated_at_4_sigma():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(2, 1, 20, 24)).astype(np.float32)
    ours = gaussian_blur(torch.from_numpy(image), sigma=1.0, truncate=4.0).numpy()
    ref = np.stack([ndimage.gaussian_filter(im[0], sigma=1.0, mode="mirror", truncate=4.0)[None] for im in image])
    assert np.abs(ours - ref).max() < 1e-5


def test_spectrum_scale_has_largest_gain_one_and_decays_with_frequency():
    scale = spectrum_scale(16, 16, decay=1.0)
    assert scale.max().item() == pytest.approx(1.0)
    assert scale[0, 1] > scale[0, 4] > scale[8, 8]
