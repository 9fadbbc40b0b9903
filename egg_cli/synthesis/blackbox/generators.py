"""Code generators for gradient-free search: a code vector -> an image in a synthesis space.

Every generator maps a batch of codes (B, D) to images (B, C, H, W) in one of the adapter's
source spaces (``zscored`` pixels at the model's size, or ``diffusion`` RGB in [-1, 1]); the
synth adapter (:class:`~egg_cli.synthesis.adapter.ImageAdapter`) then maps them to the model's
input at the fixed contrast, exactly as for gradient ascent and EGG.

``configs/generator/*.yaml`` name one builder each (``_target_``), called by the method as
``builder(shape=<model input (C, H, W)>, device=..., **options)``.

- :class:`PixelGenerator` (``generator=pixel``): a coarse grid of z-scored pixels upsampled
  bilinearly to the model's input.
- :class:`PriorGenerator` (``generator=prior``): the initial noise of a diffusion prior decoded
  deterministically by DDIM (eta 0), so a code is an image of the prior's manifold.
- :class:`DeePSiMGenerator` (``generator=deepsim``): the DeePSiM fc6 up-convolutional generator
  of XDream (Dosovitskiy & Brox 2016; Xiao & Kreiman 2020), 4,096-d code -> 256x256 RGB, with
  weights from a user file.

``code_std`` is the per-dimension scale of a random initial population (XDream) and
``sphere_radius`` the code norm of the sphere-constrained CMA variant.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from egg_cli.errors import EggError
from egg_cli.io import read_state_dict

log = logging.getLogger(__name__)


class CodeGenerator(nn.Module):
    """Base class: ``forward(codes (B, code_dim)) -> images (B, *shape)`` in ``space``."""

    name = "generator"
    space = "zscored"
    code_dim: int
    shape: tuple[int, int, int]
    code_std: float = 1.0
    sphere_radius: float = 1.0

    def settings(self) -> dict[str, Any]:
        """Resolved settings saved with the results."""
        return {"generator": self.name, "code_dim": self.code_dim, "shape": list(self.shape), "space": self.space}

    def check_codes(self, codes: torch.Tensor) -> None:
        if codes.dim() != 2 or codes.shape[1] != self.code_dim:
            raise EggError(f"generator={self.name} expected codes of shape (batch, {self.code_dim}), got {tuple(codes.shape)}")


def _grid(grid: int | Sequence[int], height: int, width: int) -> tuple[int, int]:
    """(rows, columns) of the pixel grid: an int sets the rows and keeps the aspect ratio."""
    if isinstance(grid, int) or (isinstance(grid, str) and grid.isdigit()):
        rows = int(grid)
        cols = max(1, round(rows * width / height))
    else:
        values = [int(g) for g in grid]
        if len(values) != 2:
            raise EggError(f"generator.grid={list(grid)} not understood; expected an int or [rows, columns]")
        rows, cols = values
    if rows < 1 or cols < 1:
        raise EggError(f"generator.grid={grid} must be positive")
    if rows > height or cols > width:
        raise EggError(f"generator.grid={rows}x{cols} is finer than the model input {height}x{width}; expected at most that")
    return rows, cols


class PixelGenerator(CodeGenerator):
    """A coarse grid of z-scored pixels (C x rows x cols), upsampled bilinearly to (C, H, W)."""

    name = "pixel"
    space = "zscored"

    def __init__(self, shape: Sequence[int], grid: int | Sequence[int] = 16) -> None:
        super().__init__()
        c, h, w = (int(s) for s in shape)
        self.rows, self.cols = _grid(grid, h, w)
        self.shape = (c, h, w)
        self.code_dim = c * self.rows * self.cols
        self.code_std = 1.0
        self.sphere_radius = math.sqrt(self.code_dim)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        self.check_codes(codes)
        c, h, w = self.shape
        coarse = codes.view(-1, c, self.rows, self.cols)
        if (self.rows, self.cols) == (h, w):
            return coarse
        return F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "grid": [self.rows, self.cols]}


class PriorGenerator(CodeGenerator):
    """A diffusion prior as a deterministic generator: code = initial noise x_T, decoded by DDIM.

    With ``normalize`` the code is rescaled to norm sqrt(D) first (Gaussian noise in D
    dimensions concentrates there), so any code scale is a valid noise and the search works on
    directions; a zero code stays zero.
    """

    name = "prior"
    space = "diffusion"

    def __init__(self, prior: Any, normalize: bool = True, prior_name: str = "") -> None:
        super().__init__()
        self.prior = prior
        self.prior_name = prior_name
        self.normalize = bool(normalize)
        size, channels = int(prior.image_size), int(prior.channels)
        self.shape = (channels, size, size)
        self.code_dim = channels * size * size
        self.code_std = 1.0
        self.sphere_radius = math.sqrt(self.code_dim)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        self.check_codes(codes)
        noise = codes.view(-1, *self.shape).float()
        if self.normalize:
            norms = noise.flatten(1).norm(dim=1).clamp_min(1e-12)
            noise = noise * (math.sqrt(self.code_dim) / norms).view(-1, 1, 1, 1)
        generators = [torch.Generator(device=noise.device).manual_seed(0) for _ in range(len(noise))]
        final = None
        with torch.no_grad():
            for step in self.prior.sample_progressive(noise, generators, guidance=None, ddim=True, eta=0.0):
                final = step["sample"]
        if final is None:
            raise EggError(f"prior {self.prior_name!r} has no sampling steps; expected at least one respaced step")
        return final.clamp(-1.0, 1.0)

    def settings(self) -> dict[str, Any]:
        return {
            **super().settings(),
            "prior": self.prior_name,
            "steps": int(self.prior.num_steps),
            "normalize": self.normalize,
            "decoder": "ddim eta=0",
        }


class DeePSiMFc6(nn.Module):
    """The DeePSiM fc6 generator architecture (4,096-d code -> 3x256x256, Caffe BGR, mean removed).

    Three fully connected layers (4096 -> 4096, leaky ReLU 0.3), reshape to 256x4x4, then
    up-convolutions 4x4 stride 2 (doubling the size) alternating with 3x3 stride 1 ones:
    256 -> 256 (8) -> 512 -> 256 (16) -> 256 -> 128 (32) -> 128 -> 64 (64) -> 32 (128) -> 3 (256).
    Parameter names follow the PyTorch port used by XDream (``defc7``, ``deconv5_0``, ...).
    """

    #: (name, in, out, kernel, stride) of the up-convolutions, in order
    DECONVS = (
        ("deconv5_0", 256, 256, 4, 2),
        ("deconv5_1", 256, 512, 3, 1),
        ("deconv4_0", 512, 256, 4, 2),
        ("deconv4_1", 256, 256, 3, 1),
        ("deconv3_0", 256, 128, 4, 2),
        ("deconv3_1", 128, 128, 3, 1),
        ("deconv2", 128, 64, 4, 2),
        ("deconv1", 64, 32, 4, 2),
        ("deconv0", 32, 3, 4, 2),
    )
    CODE_DIM = 4096

    def __init__(self) -> None:
        super().__init__()
        self.defc7 = nn.Linear(4096, 4096)
        self.defc6 = nn.Linear(4096, 4096)
        self.defc5 = nn.Linear(4096, 4096)
        for name, cin, cout, k, s in self.DECONVS:
            setattr(self, name, nn.ConvTranspose2d(cin, cout, k, stride=s, padding=1))

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        x = codes
        for layer in (self.defc7, self.defc6, self.defc5):
            x = F.leaky_relu(layer(x), 0.3)
        x = x.view(-1, 256, 4, 4)
        last = self.DECONVS[-1][0]
        for name, *_ in self.DECONVS:
            x = getattr(self, name)(x)
            if name != last:
                x = F.leaky_relu(x, 0.3)
        return x


def load_deepsim_weights(weights: str | os.PathLike) -> DeePSiMFc6:
    """The fc6 generator with the weights of a PyTorch state dict file (optionally under ``state_dict``).

    The module is built on the meta device and takes the loaded tensors as they are, so no time
    goes into a random initialization that the file replaces.
    """
    from egg_cli.models.state import state_incompatibilities

    path = Path(weights).expanduser()
    state = read_state_dict(path, "generator.weights", "a state dict of the DeePSiM fc6 generator (.pt/.pth/.safetensors)")
    with torch.device("meta"):
        module = DeePSiMFc6()
    problems = state_incompatibilities(module, state)
    if problems:
        raise EggError(f"generator.weights={path} does not fit the DeePSiM fc6 generator: {'; '.join(problems)}")
    module.load_state_dict({k: v.float() for k, v in state.items()}, assign=True)
    return module


class DeePSiMGenerator(CodeGenerator):
    """XDream's fc6 generator: codes -> RGB in [-1, 1] (BGR -> RGB, plus the Caffe mean, clipped).

    ``weights`` is a state-dict file, or ``random`` for seeded random weights (for tests only:
    the images then carry no natural structure).
    """

    name = "deepsim"
    space = "diffusion"

    def __init__(
        self,
        weights: str,
        bgr_mean: Sequence[float] = (104.0, 117.0, 123.0),
        seed: int = 0,
        code_std: float = 1.0,
        sphere_radius: float = 300.0,
    ) -> None:
        super().__init__()
        if weights is None or str(weights) in ("", "???"):
            raise EggError("generator.weights is not set; expected the DeePSiM fc6 state dict file (or 'random' for tests)")
        if len(bgr_mean) != 3:
            raise EggError(f"generator.bgr_mean={list(bgr_mean)} must have 3 values (B, G, R)")
        self.weights = str(weights)
        if self.weights == "random":
            log.warning("generator=deepsim with random weights: images carry no natural structure (for tests only)")
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seed))
                self.net = DeePSiMFc6()
        else:
            self.net = load_deepsim_weights(self.weights)
        self.net.requires_grad_(False).eval()
        self.register_buffer("bgr_mean", torch.tensor([float(v) for v in bgr_mean]).view(1, 3, 1, 1))
        self.shape = (3, 256, 256)
        self.code_dim = DeePSiMFc6.CODE_DIM
        self.code_std = float(code_std)
        self.sphere_radius = float(sphere_radius)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        self.check_codes(codes)
        with torch.no_grad():
            bgr = self.net(codes.float()) + self.bgr_mean
        rgb = bgr.flip(1).clamp(0.0, 255.0)
        return rgb / 127.5 - 1.0

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "weights": self.weights, "bgr_mean": self.bgr_mean.flatten().tolist()}


def pixel_generator(shape: Sequence[int], device: torch.device, grid: int | Sequence[int] = 16) -> PixelGenerator:
    """``generator=pixel``: a coarse pixel grid for a model input of ``shape`` (C, H, W)."""
    return PixelGenerator(shape, grid).to(device)


def prior_generator(
    shape: Sequence[int], device: torch.device, prior: Any, steps: str | int = "20", normalize: bool = True
) -> PriorGenerator:
    """``generator=prior``: the prior of ``prior=`` (a ``configs/prior`` entry) decoded by DDIM over ``steps``.

    The prior's own image size is the generator's; the adapter maps it to ``shape``.
    """
    from egg_cli.diffusion import build_prior

    model = build_prior(prior, steps, device, "generator.prior")
    return PriorGenerator(model, normalize=normalize, prior_name=str(prior.get("name_or_path")))


def deepsim_generator(shape: Sequence[int], device: torch.device, **options: Any) -> DeePSiMGenerator:
    """``generator=deepsim``: XDream's fc6 generator (256x256 RGB whatever ``shape``; the adapter resizes)."""
    return DeePSiMGenerator(**options).to(device)
