"""The ``Prior`` contract used by EGG (docs/architecture.md, "Diffusion priors").

A prior wraps a respaced :class:`GaussianDiffusion` and a denoiser. Subclasses implement
:meth:`Prior.p_mean_variance`; the DDIM step and the step-by-step sampler with per-element
generators and a guidance hook are shared.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch

from egg_cli.diffusion.gaussian import GaussianDiffusion
from egg_cli.diffusion.unet import UNetModel
from egg_cli.errors import EggError

Guidance = Callable[[torch.Tensor, dict, int], torch.Tensor]


class Prior:
    """An unconditional diffusion prior over images in [-1, 1] of shape (channels, size, size)."""

    image_size: int
    channels: int
    device: torch.device
    diffusion: GaussianDiffusion

    @property
    def num_steps(self) -> int:
        """Number of respaced steps."""
        return self.diffusion.num_timesteps

    def _index(self, x: torch.Tensor, i: int) -> torch.Tensor:
        if not 0 <= int(i) < self.num_steps:
            raise EggError(f"respaced step index {i} is outside 0..{self.num_steps - 1}")
        return torch.full((x.shape[0],), int(i), dtype=torch.long, device=x.device)

    def check_shape(self, x: torch.Tensor) -> None:
        expected = (self.channels, self.image_size, self.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise EggError(f"prior input has shape {tuple(x.shape)}; expected (batch, {', '.join(map(str, expected))})")

    def p_mean_variance(self, x_t: torch.Tensor, i: int) -> dict[str, torch.Tensor]:
        """``dict(mean, variance, log_variance, pred_xstart)`` of p(x_{i-1} | x_i) at respaced index ``i``."""
        raise NotImplementedError

    def ancestral_noise(self, out: dict[str, torch.Tensor], i: int, z: torch.Tensor) -> torch.Tensor:
        """The random part of an ancestral step from standard normal ``z`` (zero at ``i == 0``)."""
        if i == 0:
            return torch.zeros_like(z)
        return torch.exp(0.5 * out["log_variance"]) * z

    def ddim_step(
        self,
        x_t: torch.Tensor,
        i: int,
        eta: float = 0.0,
        noise: torch.Tensor | None = None,
        out: dict[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """One DDIM step: ``dict(sample, pred_xstart)``; ``noise`` (standard normal) is needed when ``eta > 0``."""
        out = self.p_mean_variance(x_t, i) if out is None else out
        if noise is None:
            if eta > 0:
                raise EggError("ddim_step with eta > 0 needs noise (a standard normal tensor like x_t)")
            noise = torch.zeros_like(x_t)
        sample = self.diffusion.ddim_sample(x_t, self._index(x_t, i), out["pred_xstart"], noise, eta)
        return {"sample": sample, "pred_xstart": out["pred_xstart"]}

    def sample_progressive(
        self,
        noise: torch.Tensor,
        generators: Sequence[torch.Generator],
        guidance: Guidance | None = None,
        ddim: bool = False,
        eta: float = 0.0,
    ) -> Iterator[dict]:
        """Run the reverse chain from ``noise`` (x_T), yielding ``dict(i, sample, pred_xstart)`` per step.

        Element ``b``'s step noise comes from ``generators[b]`` only, so a trajectory does not
        depend on the rest of the batch. ``guidance(x_t, out, i)`` (``x_t`` requiring grad, ``out``
        the ``p_mean_variance`` dict computed from it) returns a delta added to the step's sample.
        """
        self.check_shape(noise)
        if len(generators) != noise.shape[0]:
            raise EggError(
                f"sample_progressive got {len(generators)} generators for a batch of {noise.shape[0]}; expected one per element"
            )
        x = noise.to(self.device, torch.float32)
        shape = tuple(x.shape[1:])
        for i in reversed(range(self.num_steps)):
            z = torch.stack([torch.randn(shape, generator=g, device=g.device) for g in generators]).to(self.device)
            with torch.enable_grad() if guidance is not None else torch.no_grad():
                x_t = x.detach().requires_grad_(guidance is not None)
                out = self.p_mean_variance(x_t, i)
                if ddim:
                    sample = self.ddim_step(x_t, i, eta=eta, noise=z, out=out)["sample"]
                else:
                    sample = out["mean"] + self.ancestral_noise(out, i, z)
                if guidance is not None:
                    sample = sample + guidance(x_t, out, i)
            x = sample.detach()
            yield {"i": i, "sample": x, "pred_xstart": out["pred_xstart"].detach()}

    def sample(self, count: int, seed: int = 0, ddim: bool = False, eta: float = 0.0) -> torch.Tensor:
        """``count`` unguided samples in [-1, 1]; element ``k`` is seeded with ``seed + k``."""
        generators = [torch.Generator(device=self.device).manual_seed(seed + k) for k in range(count)]
        shape = (self.channels, self.image_size, self.image_size)
        noise = torch.stack([torch.randn(shape, generator=g, device=self.device) for g in generators])
        final = noise
        for step in self.sample_progressive(noise, generators, ddim=ddim, eta=eta):
            final = step["sample"]
        return final


class LearnedPrior(Prior):
    """A UNet denoiser (ADM or egg train-prior) on a respaced Gaussian diffusion."""

    def __init__(
        self,
        model: UNetModel,
        diffusion: GaussianDiffusion,
        image_size: int,
        channels: int,
        device: torch.device,
        clip_denoised: bool = False,
        name: str = "",
    ) -> None:
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.diffusion = diffusion
        self.image_size = int(image_size)
        self.channels = int(channels)
        self.device = torch.device(device)
        self.clip_denoised = bool(clip_denoised)
        self.name = name

    def p_mean_variance(self, x_t: torch.Tensor, i: int) -> dict[str, torch.Tensor]:
        self.check_shape(x_t)
        return self.diffusion.p_mean_variance(self.model, x_t, self._index(x_t, i), clip_denoised=self.clip_denoised)
