"""Gradient ascent (GA) on pixels under a fixed contrast, after sinzlab/mei and the EGG paper.

Each step: (optionally jitter) -> objective of the iterate -> backward; the gradient with
respect to the image is blurred with a Gaussian (sigma 1, truncated at 4 sigma, reflect
padding), its radial part (along the image, which the norm projection undoes anyway) is removed,
and for SGD it is divided by the L2 norm of the blurred gradient of that image. An optimizer step
(in pixel or Fourier parameters) follows and the image is rescaled to the fixed L2 norm, then
optionally clipped to the pixel range. Taking the tangential part makes the constrained optima
the only fixed points for every optimizer and parameterization (Adam's element-wise scaling or
Fourier preconditioning would otherwise bias a plain projected step), and dividing by the full
gradient norm makes the steps shrink near the optimum instead of oscillating. One model
evaluation per step, exactly ``steps`` updates, and the reported score is that of the final
image, evaluated once more after the last update (the flaws of mei in REFERENCES.md are not
repeated).

With ``match`` (a finished ``egg synth`` run of the same objective and seeds) each image stops at
equal fit, as the EGG paper stops GA reconstructions at EGG's loss: once the generating-model
score of the iterate reaches the score the image of the same problem and seed has in that run,
the iterate is kept unchanged for the remaining steps (the loop ends when every image has
stopped), and the step it stopped at is saved as ``extras/stop_step`` (``steps`` if never).

Nothing couples the images of a batch: every image has its own generator (start and jitter),
Adam's statistics are element-wise and gradients are normalized per image. The optional
diversity term is the one deliberate exception: it penalizes the cosine similarity between
the images of the same problem (different seeds), so chunks then hold whole problems.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from egg_cli.errors import EggError
from egg_cli.synthesis.adapter import EPS, ImageAdapter, project_norm
from egg_cli.synthesis.base import GeneratorSpace, MethodInfo, MethodOutput, StepCallback, SynthesisMethod
from egg_cli.synthesis.filters import gaussian_blur, spectrum_scale
from egg_cli.synthesis.objectives import Objective

OPTIMIZERS = ("sgd", "adamw")


def seeded_normal(shape: Sequence[int], seeds: Sequence[int]) -> tuple[torch.Tensor, list[torch.Generator]]:
    """One standard normal image per seed from its own CPU generator (batch-position independent)."""
    generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
    images = torch.stack([torch.randn(tuple(shape), generator=g) for g in generators])
    return images, generators


def tangential(grad: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Remove from each image's gradient its component along the image (the radial part)."""
    flat_g, flat_x = grad.flatten(1), images.flatten(1)
    unit = flat_x / flat_x.norm(dim=1, keepdim=True).clamp_min(EPS)
    return (flat_g - (flat_g * unit).sum(1, keepdim=True) * unit).view_as(grad)


def jitter_images(images: torch.Tensor, generators: Sequence[torch.Generator], max_shift: int) -> torch.Tensor:
    """Circularly shift each image by its own random offset in [-max_shift, max_shift] pixels."""
    if max_shift <= 0:
        return images
    shifted = []
    for img, gen in zip(images, generators):
        dy, dx = torch.randint(-max_shift, max_shift + 1, (2,), generator=gen).tolist()
        shifted.append(torch.roll(img, shifts=(dy, dx), dims=(-2, -1)))
    return torch.stack(shifted)


def seed_similarity(images: torch.Tensor, problem: torch.Tensor) -> torch.Tensor:
    """Per image, mean cosine similarity to the other images of the same problem (0 if alone)."""
    flat = images.flatten(1)
    unit = flat / flat.norm(dim=1, keepdim=True).clamp_min(EPS)
    cosine = unit @ unit.T
    same = (problem[:, None] == problem[None, :]).to(cosine.dtype)
    same = same - torch.eye(len(problem), dtype=cosine.dtype, device=cosine.device)
    count = same.sum(dim=1).clamp_min(1.0)
    return (cosine * same).sum(dim=1) / count


def _match_table(path: str) -> tuple[np.ndarray, dict[int, int]]:
    """Generating-model scores (problems x seeds) of a finished run, and each seed's column."""
    from egg_cli.synthesis.results import GENERATING, read_synthesis, result_path

    result = read_synthesis(result_path(path, "method.match"))
    return np.asarray(result.scores[GENERATING], dtype=np.float64), {int(s): k for k, s in enumerate(result.seeds)}


class _Pixels(torch.nn.Module):
    """Plain pixel parameterization."""

    def __init__(self, start: torch.Tensor) -> None:
        super().__init__()
        self.param = torch.nn.Parameter(start.clone())

    def forward(self) -> torch.Tensor:
        return self.param

    @torch.no_grad()
    def set_image(self, image: torch.Tensor) -> None:
        self.param.copy_(image)


class _Fourier(torch.nn.Module):
    """Fourier preconditioning: the image is ``irfft2(coefficients * 1/f^decay)``."""

    def __init__(self, start: torch.Tensor, decay: float) -> None:
        super().__init__()
        h, w = start.shape[-2:]
        self.size = (h, w)
        self.register_buffer("scale", spectrum_scale(h, w, decay, start.device))
        spectrum = torch.fft.rfft2(start, norm="ortho") / self.scale
        self.param = torch.nn.Parameter(torch.view_as_real(spectrum).contiguous())

    def forward(self) -> torch.Tensor:
        spectrum = torch.view_as_complex(self.param) * self.scale
        return torch.fft.irfft2(spectrum, s=self.size, norm="ortho")

    @torch.no_grad()
    def set_image(self, image: torch.Tensor) -> None:
        self.param.copy_(torch.view_as_real(torch.fft.rfft2(image, norm="ortho") / self.scale))


class GradientAscent(SynthesisMethod):
    """Projected gradient ascent in the model's z-scored pixel space (``method=ga``)."""

    name = "ga"

    def __init__(
        self,
        steps: int = 1000,
        optimizer: str = "sgd",
        lr: float = 1.0,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        normalize_gradient: bool = True,
        blur_sigma: float = 1.0,
        blur_truncate: float = 4.0,
        jitter: int = 0,
        fourier: bool = False,
        fourier_decay: float = 1.0,
        clip: bool = False,
        diversity: float = 0.0,
        match: str | None = None,
    ) -> None:
        if optimizer not in OPTIMIZERS:
            raise EggError(f"method.optimizer={optimizer!r} unknown; expected one of {OPTIMIZERS}")
        if int(steps) < 1:
            raise EggError(f"method.steps={steps} must be at least 1")
        if not lr > 0:
            raise EggError(f"method.lr={lr} must be positive")
        if blur_sigma < 0 or jitter < 0 or diversity < 0:
            raise EggError("method.blur_sigma, method.jitter and method.diversity must be non-negative")
        self.n_steps = int(steps)
        self.optimizer = optimizer
        self.lr = float(lr)
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)
        self.normalize_gradient = bool(normalize_gradient)
        self.blur_sigma = float(blur_sigma)
        self.blur_truncate = float(blur_truncate)
        self.jitter = int(jitter)
        self.fourier = bool(fourier)
        self.fourier_decay = float(fourier_decay)
        self.clip = bool(clip)
        self.diversity = float(diversity)
        self.couples_seeds = self.diversity > 0
        self.match = None if match in (None, "") else str(match)
        self._match_scores, self._match_seeds = _match_table(self.match) if self.match else (None, {})

    @property
    def steps(self) -> int:
        return self.n_steps

    def prepare(self, objective: Objective, model_shape: Sequence[int], device: torch.device) -> GeneratorSpace:
        c, h, w = (int(s) for s in model_shape)
        return GeneratorSpace((c, h, w), "zscored")

    def info(self) -> MethodInfo:
        keys = (
            "optimizer",
            "lr",
            "momentum",
            "weight_decay",
            "normalize_gradient",
            "blur_sigma",
            "blur_truncate",
            "jitter",
            "fourier",
            "fourier_decay",
            "clip",
            "diversity",
            "match",
        )
        return MethodInfo(self.name, {"steps": self.n_steps, **{k: getattr(self, k) for k in keys}})

    def _optimizer(self, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
        if self.optimizer == "sgd":
            return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)
        return torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)

    def _constrain(self, image: torch.Tensor, adapter: ImageAdapter) -> torch.Tensor:
        if adapter.norm is not None:
            image = project_norm(image, adapter.norm)
        if self.clip:
            lo, hi = adapter.zscore_bounds()
            image = image.clamp(lo, hi)
        return image

    def run(
        self,
        objective: Objective,
        problem: torch.Tensor,
        seeds: Sequence[int],
        adapter: ImageAdapter,
        device: torch.device,
        on_step: StepCallback | None = None,
    ) -> MethodOutput:
        start, generators = seeded_normal(adapter.source_shape, seeds)
        start = self._constrain(start.to(device), adapter)
        targets = self._targets(problem, seeds, device)
        stopped = torch.full((len(seeds),), self.n_steps, dtype=torch.long, device=device)
        problem = problem.to(device)
        image_param = _Fourier(start, self.fourier_decay) if self.fourier else _Pixels(start)
        optimizer = self._optimizer(list(image_param.parameters()))
        trace = torch.empty(len(seeds), self.n_steps, device=device)  # moved to the CPU once, at the end
        # The model sees the iterate itself (already at the fixed norm after each projection), so
        # the gradient keeps its radial part; rescaling inside the graph would leave only the
        # tangential part, which vanishes at the optimum and makes normalized steps oscillate.
        view = adapter.with_norm(None)
        for step in range(self.n_steps):
            optimizer.zero_grad(set_to_none=True)
            image = image_param()
            pixels = image.detach().requires_grad_(True)
            score = objective(view(jitter_images(pixels, generators, self.jitter)), problem)
            trace[:, step] = score.detach().float()
            if targets is not None:
                reached = (score.detach() >= targets) & (stopped == self.n_steps)
                stopped[reached] = step
                frozen = (stopped < self.n_steps).view(-1, 1, 1, 1)
                if bool(frozen.all()):
                    trace[:, step:] = trace[:, step : step + 1]
                    break
                kept = pixels.detach().clone()  # the pixel parameter shares storage with ``pixels``
            loss = -score.sum()
            if self.diversity > 0:
                loss = loss + self.diversity * seed_similarity(pixels, problem).sum()
            (grad,) = torch.autograd.grad(loss, pixels)
            grad = gaussian_blur(grad, self.blur_sigma, self.blur_truncate)
            scale = grad.flatten(1).norm(dim=1).clamp_min(EPS)
            grad = tangential(grad, pixels.detach())
            if self.normalize_gradient and self.optimizer == "sgd":
                grad = grad / scale.view(-1, 1, 1, 1)
            image.backward(grad)
            optimizer.step()
            with torch.no_grad():
                stepped = self._constrain(image_param(), adapter)
                if targets is not None:  # images at equal fit keep the iterate that reached it
                    stepped = torch.where(frozen, kept, stepped)
                image_param.set_image(stepped)
            if on_step is not None:
                on_step(step + 1)
        with torch.no_grad():
            final = view(image_param())  # the constrained iterate (clipping may leave it below the norm)
            scores = objective(final, problem)
        extras = {} if targets is None else {"stop_step": stopped.cpu()}
        return MethodOutput(images=final.detach(), scores=scores.detach(), trace=trace.cpu(), extras=extras)

    def _targets(self, problem: torch.Tensor, seeds: Sequence[int], device: torch.device) -> torch.Tensor | None:
        """Per image, the ``match`` run's generating score of the same problem and seed (None without ``match``)."""
        if self._match_scores is None:
            return None
        n_problems = self._match_scores.shape[0]
        values = []
        for p, seed in zip(problem.tolist(), seeds):
            if int(seed) not in self._match_seeds or not 0 <= int(p) < n_problems:
                raise EggError(
                    f"method.match={self.match} has no image for problem {p} and seed {seed} (it holds {n_problems} "
                    f"problems, seeds {sorted(self._match_seeds)}); expected a run of the same objective and seeds"
                )
            values.append(float(self._match_scores[int(p), self._match_seeds[int(seed)]]))
        return torch.tensor(values, dtype=torch.float32, device=device)

    def probe(self, objective: Objective, adapter: ImageAdapter, device: torch.device, batch: int = 1) -> None:
        image = torch.randn(batch, *adapter.source_shape, device=device, requires_grad=True)
        score = objective(adapter.with_norm(None)(image), torch.zeros(batch, dtype=torch.long, device=device))
        torch.autograd.grad(score.sum(), image)
