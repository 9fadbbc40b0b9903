"""Energy-guided diffusion (EGG; Pierzchlewicz et al. 2023): diffusion sampling steered by an energy.

At every respaced step ``i`` the prior's UNet runs on the noisy sample ``x_t`` (with gradients
on), giving the posterior mean and variance and the prediction ``x0_hat``. The adapter maps
``x0_hat`` to the model's input, the energy is minus the objective, and its gradient with
respect to ``x_t`` (through the UNet) is normalized to unit L2 norm *per image* (the public
code takes one norm over the whole batch, which couples the elements). The ancestral sample
``mean + sigma * z`` is then moved by ``-energy_scale * g``. The final sample is adapted once
more and scored: that is the reported image and score.

Defaults from the paper: 100 steps and energy scale 5 for MEIs, 50 steps and a small scale
(1-2) for most exciting natural images and reconstructions. When ``steps`` or ``energy_scale``
is left null the method's ``objective_defaults`` entry for the objective is used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from egg_cli.errors import EggError
from egg_cli.runtime import plain
from egg_cli.synthesis.adapter import EPS, ImageAdapter
from egg_cli.synthesis.base import GeneratorSpace, MethodInfo, MethodOutput, StepCallback, SynthesisMethod
from egg_cli.synthesis.objectives import Objective


def unit_per_image(grad: torch.Tensor) -> torch.Tensor:
    """Each element's gradient divided by its own L2 norm."""
    norms = grad.flatten(1).norm(dim=1).clamp_min(EPS)
    return grad / norms.view(-1, *([1] * (grad.dim() - 1)))


class EnergyGuidedDiffusion(SynthesisMethod):
    """EGG sampling with a diffusion prior (``method=egg``).

    ``prior`` is a ``configs/prior/*.yaml`` entry (a mapping with ``_target_``), built with the
    respacing and device at :meth:`prepare`. ``steps`` and ``energy_scale`` left None take the
    entry of ``objective_defaults`` named after the objective (``neuron``, ``meni``,
    ``reconstruction``; configs/method/egg.yaml holds the paper's values).
    """

    name = "egg"

    def __init__(
        self,
        prior: Mapping[str, Any],
        steps: str | int | None = None,
        energy_scale: float | None = None,
        ddim: bool = False,
        eta: float = 0.0,
        objective_defaults: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        if energy_scale is not None and not energy_scale >= 0:
            raise EggError(f"method.energy_scale={energy_scale} must be non-negative")
        self.prior_config = plain(prior)
        self.prior_name = str(self.prior_config.get("name_or_path")) if isinstance(self.prior_config, Mapping) else None
        self.requested_steps = None if steps is None else str(steps)
        self.requested_scale = None if energy_scale is None else float(energy_scale)
        self.ddim = bool(ddim)
        self.eta = float(eta)
        self.objective_defaults = {str(k): dict(v) for k, v in (plain(objective_defaults) or {}).items()}
        self.prior: Any = None
        self._priors: dict[tuple[str, str], Any] = {}  # loaded priors by (respacing, device)
        self.energy_scale: float | None = self.requested_scale
        self.respacing: str | None = self.requested_steps

    @property
    def steps(self) -> int:
        if self.prior is None:
            raise RuntimeError("EnergyGuidedDiffusion.prepare() must run before the step count is known")
        return int(self.prior.num_steps)

    def _objective_default(self, objective: Objective, key: str) -> Any:
        """``objective_defaults[<objective name>][key]`` for a setting left None."""
        value = self.objective_defaults.get(objective.name, {}).get(key)
        if value is None:
            raise EggError(
                f"method.{key} is null and method.objective_defaults has no {key} for objective {objective.name!r}; "
                f"set method.{key}=<value>"
            )
        return value

    def prepare(self, objective: Objective, model_shape: Sequence[int], device: torch.device) -> GeneratorSpace:
        self.respacing = self.requested_steps or str(self._objective_default(objective, "steps"))
        scale = self.requested_scale
        if scale is None:
            scale = float(self._objective_default(objective, "energy_scale"))
            if not scale >= 0:
                raise EggError(f"method.objective_defaults.{objective.name}.energy_scale={scale} must be non-negative")
        self.energy_scale = scale
        key = (self.respacing, str(device))
        if key not in self._priors:
            from egg_cli.diffusion import build_prior

            self._priors[key] = build_prior(self.prior_config, self.respacing, device, "method.prior")
        self.prior = self._priors[key]
        size = int(self.prior.image_size)
        return GeneratorSpace((int(self.prior.channels), size, size), "diffusion")

    def info(self) -> MethodInfo:
        return MethodInfo(
            self.name,
            {
                "prior": self.prior_name,
                "respacing": self.respacing,
                "steps": None if self.prior is None else self.steps,
                "energy_scale": self.energy_scale,
                "ddim": self.ddim,
                "eta": self.eta,
                "gradient_normalization": "per_image",
            },
        )

    def run(
        self,
        objective: Objective,
        problem: torch.Tensor,
        seeds: Sequence[int],
        adapter: ImageAdapter,
        device: torch.device,
        on_step: StepCallback | None = None,
    ) -> MethodOutput:
        prior = self.prior
        problem = problem.to(device)
        shape = (int(prior.channels), int(prior.image_size), int(prior.image_size))
        generators = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]
        noise = torch.stack([torch.randn(shape, generator=g, device=device) for g in generators])
        trace: list[torch.Tensor] = []
        scale = float(self.energy_scale)

        def guidance(x_t: torch.Tensor, out: dict[str, torch.Tensor], i: int) -> torch.Tensor:
            score = objective(adapter(out["pred_xstart"]), problem)
            (grad,) = torch.autograd.grad(-score.sum(), x_t)
            trace.append(score.detach().float())
            return -scale * unit_per_image(grad)

        final = None
        for done, step in enumerate(
            prior.sample_progressive(noise, generators, guidance=guidance if scale > 0 else None, ddim=self.ddim, eta=self.eta),
            start=1,
        ):
            final = step["sample"]
            if scale == 0:
                with torch.no_grad():
                    trace.append(objective(adapter(step["pred_xstart"]), problem).float())
            if on_step is not None:
                on_step(done)
        if final is None:
            raise EggError(f"prior {self.prior_name!r} produced no sampling steps")
        final = final.detach()
        with torch.no_grad():
            images = adapter(final)
            scores = objective(images, problem)
        return MethodOutput(images=images, scores=scores, trace=torch.stack(trace, dim=1).cpu(), generator_images=final)

    def probe(self, objective: Objective, adapter: ImageAdapter, device: torch.device, batch: int = 1) -> None:
        prior = self.prior
        x_t = torch.randn(batch, int(prior.channels), int(prior.image_size), int(prior.image_size), device=device)
        x_t.requires_grad_(True)
        out = prior.p_mean_variance(x_t, int(prior.num_steps) - 1)
        score = objective(adapter(out["pred_xstart"]), torch.zeros(batch, dtype=torch.long, device=device))
        torch.autograd.grad(score.sum(), x_t)
