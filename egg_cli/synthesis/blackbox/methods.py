"""``method=xdream`` and ``method=cmaes``: gradient-free synthesis as egg synth methods.

Both plug into :func:`egg_cli.synthesis.runner.synthesize` like GA and EGG: the generator's
space (``generator=pixel|prior|deepsim``) goes through the same adapter to the model's input,
the same objective names the problems (neurons), and the result lands in the same HDF5 layout
(``trace`` holds the best-so-far score per generation; codes and best observed scores go to
``extras``). What scores the images is the method's ``scorer``: the generating model itself
(default), the ground-truth neurons of a simulated dataset, or a recording rig through the
closed-loop file protocol, optionally with Poisson spike noise (``noise.max_count``).

The budget counts image evaluations per element (problem x seed); a search runs
``budget // population_size`` whole generations. With a ``work_dir`` (the run folder under
``egg synth``) the state is saved after every generation and an interrupted run resumes when
started again in the same folder (``hydra.run.dir=<run folder>``); the best-so-far curves go to
``best_so_far.csv`` / ``.png`` there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from egg_cli.errors import EggError
from egg_cli.runtime import plain
from egg_cli.synthesis.adapter import ImageAdapter
from egg_cli.synthesis.base import GeneratorSpace, MethodInfo, MethodOutput, StepCallback, SynthesisMethod
from egg_cli.synthesis.blackbox.base import CodeOptimizer, element_rng
from egg_cli.synthesis.blackbox.cmaes import CMAOptimizer, SphereCMA, check_cma_settings
from egg_cli.synthesis.blackbox.curves import write_curves
from egg_cli.synthesis.blackbox.generators import CodeGenerator, build_generator
from egg_cli.synthesis.blackbox.scorers import ObjectiveScorer, PoissonScorer, Scorer
from egg_cli.synthesis.blackbox.search import render, run_search
from egg_cli.synthesis.blackbox.xdream import GeneticOptimizer, check_settings
from egg_cli.synthesis.objectives import Objective

log = logging.getLogger(__name__)

SCORERS = ("model", "ground_truth", "closed_loop")
FINALS = ("recommended", "best_observed")


class GradientFreeMethod(SynthesisMethod):
    """Shared machinery of the gradient-free methods; subclasses build one optimizer per element."""

    name = "gradient_free"
    population_size: int
    #: True when the optimizer's schedule depends on the budget (a resumed search must keep it);
    #: otherwise a finished search continues when started again with a larger budget
    scheduled = False

    def __init__(
        self,
        budget: int = 3000,
        generator: Mapping[str, Any] | None = None,
        scorer: Mapping[str, Any] | None = None,
        noise: Mapping[str, Any] | None = None,
        final: str = "recommended",
        eval_batch_size: int = 64,
        work_dir: str | None = None,
    ) -> None:
        generator = dict(plain(generator) or {"kind": "pixel"})
        scorer = dict(plain(scorer) or {"kind": "model"})
        noise = dict(plain(noise) or {})
        if int(budget) < 1:
            raise EggError(f"method.budget={budget} must be a positive number of image evaluations")
        if final not in FINALS:
            raise EggError(f"method.final={final!r} unknown; expected one of {FINALS}")
        if scorer.get("kind", "model") not in SCORERS:
            raise EggError(f"method.scorer.kind={scorer.get('kind')!r} unknown; expected one of {SCORERS}")
        if int(eval_batch_size) < 1:
            raise EggError(f"method.eval_batch_size={eval_batch_size} must be a positive integer")
        self.budget = int(budget)
        self.generator_options = generator
        self.scorer_options = scorer
        self.noise_options = noise
        self.final = final
        self.eval_batch_size = int(eval_batch_size)
        self.work_dir = None if work_dir in (None, "") else Path(str(work_dir))
        self.generator: CodeGenerator | None = None
        self._scorer: Scorer | None = None
        self._chunks = 0
        self._curves: dict[str, list[np.ndarray]] = {}
        self._labels: list[str] = []
        self._seeds: list[int] = []

    # -- what subclasses provide -------------------------------------------------------------
    def make_optimizer(self, rng: np.random.Generator, generator: CodeGenerator) -> CodeOptimizer:
        raise NotImplementedError

    def optimizer_settings(self) -> dict[str, Any]:
        raise NotImplementedError

    # -- SynthesisMethod ---------------------------------------------------------------------
    @property
    def generations(self) -> int:
        return self.budget // self.population_size

    @property
    def steps(self) -> int:
        return self.generations

    def prepare(self, objective: Objective, model_shape: Sequence[int], device: torch.device) -> GeneratorSpace:
        if self.generations < 1:
            raise EggError(
                f"method.budget={self.budget} is below one generation of {self.population_size} images; "
                "expected at least population_size evaluations"
            )
        if self.budget % self.population_size:
            log.info(
                "budget %d: %d whole generations of %d images (%d evaluations)",
                self.budget,
                self.generations,
                self.population_size,
                self.generations * self.population_size,
            )
        options = dict(self.generator_options)
        kind = options.pop("kind", "pixel")
        self.generator = build_generator(kind, model_shape, device, **options)
        return GeneratorSpace(tuple(self.generator.shape), self.generator.space)

    def info(self) -> MethodInfo:
        settings: dict[str, Any] = {
            "budget": self.budget,
            "generations": self.generations,
            "evaluations": self.generations * self.population_size,
            "final": self.final,
            **self.optimizer_settings(),
            "scorer": self.scorer_options,
            "noise": self.noise_options,
        }
        settings["generator"] = self.generator.settings() if self.generator is not None else self.generator_options
        if self._scorer is not None:
            settings["scorer_resolved"] = self._scorer.settings()
        return MethodInfo(self.name, settings)

    @torch.no_grad()
    def probe(self, objective: Objective, adapter: ImageAdapter, device: torch.device, batch: int = 1) -> None:
        """Render and score ``batch`` zero codes (no gradients: an element holds only its codes)."""
        codes = torch.zeros(batch, self.generator.code_dim, device=device)
        objective(adapter(self.generator(codes)), torch.zeros(batch, dtype=torch.long, device=device))

    def run(
        self,
        objective: Objective,
        problem: torch.Tensor,
        seeds: Sequence[int],
        adapter: ImageAdapter,
        device: torch.device,
        on_step: StepCallback | None = None,
    ) -> MethodOutput:
        if self.generator is None:
            raise RuntimeError("prepare() must run before run()")
        chunk = self._chunks
        self._chunks += 1
        scorer = self.scorer(objective, adapter, device, session="" if chunk == 0 else f"chunk{chunk:02d}")
        problem = problem.detach().cpu().long()
        seeds = [int(s) for s in seeds]
        optimizers = [self.make_optimizer(element_rng(s, int(p)), self.generator) for p, s in zip(problem.tolist(), seeds)]
        fingerprint = {
            "method": self.name,
            "optimizer": self.optimizer_settings(),
            "generator": self.generator.settings(),
            "scorer": {k: v for k, v in self.scorer_options.items() if k not in ("timeout_s", "poll_s")},
            "noise": self.noise_options,
            "problems": problem.tolist(),
            "seeds": seeds,
            "adapter": [list(adapter.source_shape), list(adapter.target_shape), adapter.norm],
        }
        if self.scheduled:
            fingerprint["budget"] = self.budget
        labels_all = objective.labels()
        labels = [labels_all[p] for p in problem.tolist()]
        state_path = None if self.work_dir is None else self.work_dir / "blackbox" / f"state_chunk{chunk:02d}.pkl"

        def on_generation(done: int, state: Any) -> None:
            if on_step is not None:
                on_step(done)
            if self.work_dir is not None:
                self._write_curves(labels, seeds, state, figure=done == self.generations)

        outcome = run_search(
            self.generator,
            optimizers,
            adapter,
            scorer,
            problem,
            seeds,
            self.generations,
            device,
            state_path=state_path,
            fingerprint=fingerprint,
            batch_size=self.eval_batch_size,
            on_generation=on_generation,
        )
        if on_step is not None and outcome.resumed_from == self.generations:
            on_step(self.generations)
        self._remember(labels, seeds, outcome)
        if self.work_dir is not None:
            self._write_all_curves()
        codes = outcome.final_code if self.final == "recommended" else outcome.best_code
        images, generated = render(self.generator, adapter, codes, device, self.eval_batch_size)
        element = np.arange(len(seeds))
        expected = scorer.expected(images, element)
        with torch.no_grad():
            scores = torch.cat(
                [
                    objective(images[i : i + self.eval_batch_size].to(device), problem[i : i + self.eval_batch_size].to(device))
                    .float()
                    .cpu()
                    for i in range(0, len(images), self.eval_batch_size)
                ]
            )
        trace = np.where(np.isfinite(outcome.best_so_far), outcome.best_so_far, np.nan)
        extras = {
            "codes": codes.astype(np.float32),
            "best_observed_codes": outcome.best_code.astype(np.float32),
            "best_observed_score": np.where(np.isfinite(outcome.best_score), outcome.best_score, np.nan).astype(np.float32),
            "final_expected_score": (np.full(len(seeds), np.nan) if expected is None else expected).astype(np.float32),
            "evaluations": outcome.evaluations[:, -1].astype(np.int64)
            if outcome.evaluations.size
            else np.zeros(len(seeds), np.int64),
        }
        keep_generated = self.generator.space != "zscored" or tuple(self.generator.shape) != tuple(adapter.target_shape)
        return MethodOutput(
            images=images,
            scores=scores,
            trace=torch.as_tensor(trace, dtype=torch.float32),
            generator_images=generated if keep_generated else None,
            extras={k: torch.as_tensor(v) for k, v in extras.items()},
        )

    # -- scorers -----------------------------------------------------------------------------
    def scorer(self, objective: Objective, adapter: ImageAdapter, device: torch.device, session: str = "") -> Scorer:
        """The scorer of ``method.scorer`` (+ ``method.noise``) for this objective."""
        options = dict(self.scorer_options)
        kind = options.pop("kind", "model")
        if kind == "closed_loop":
            from egg_cli.synthesis.blackbox.closed_loop import ClosedLoopScorer

            if self.noise_options.get("max_count") is not None:
                raise EggError("method.noise.max_count applies to model and ground_truth scorers; a rig brings its own noise")
            exchange = options.get("exchange") or (None if self.work_dir is None else self.work_dir / "exchange")
            if exchange is None:
                raise EggError("method.scorer.exchange is not set; expected the folder shared with the rig")
            self._scorer = ClosedLoopScorer(
                objective,
                exchange,
                adapter.pixel_mean,
                adapter.pixel_std,
                channels=options.get("channels"),
                timeout_s=float(options.get("timeout_s", 600)),
                poll_s=float(options.get("poll_s", 0.2)),
                session=session,
            )
            return self._scorer
        scoring = objective
        if kind == "ground_truth":
            scoring = objective.with_model(self._ground_truth(objective, options, device))
        base = ObjectiveScorer(scoring, device, self.eval_batch_size, name=kind)
        max_count = self.noise_options.get("max_count")
        if max_count is None:
            self._scorer = base
            return base
        where = {**options, **self.noise_options}
        reference = self._reference_rates(
            scoring, lambda: self._dataset_path(objective, where, "method.noise.max_count"), adapter, device
        )
        self._scorer = PoissonScorer(base, float(max_count), reference)
        return self._scorer

    def _dataset_path(self, objective: Objective, options: Mapping[str, Any], what: str) -> str:
        path = options.get("dataset") or getattr(objective.model, "dataset_path", None)
        if not path:
            raise EggError(f"{what} needs a dataset: set dataset_path=<dataset.h5> (the model records none)")
        return str(path)

    def _ground_truth(self, objective: Objective, options: Mapping[str, Any], device: torch.device) -> torch.nn.Module:
        from egg_cli.simulation import load_ground_truth

        return load_ground_truth(self._dataset_path(objective, options, "method.scorer.kind=ground_truth"), device)

    def _reference_rates(
        self, scoring: Objective, dataset_path: Callable[[], str], adapter: ImageAdapter, device: torch.device
    ) -> np.ndarray:
        """Per problem, the best natural image's rate at the synthesis contrast (noise scale)."""
        from egg_cli.data import load_dataset
        from egg_cli.synthesis.reference import natural_reference

        rates = self.noise_options.get("reference_rates")
        if rates is not None:
            return np.asarray(rates, dtype=np.float64)
        dataset = load_dataset(dataset_path())
        reference = natural_reference(scoring, np.asarray(dataset.images), adapter.norm, device, top_k=1, progress=False)
        return reference["score"][:, 0].astype(np.float64)

    # -- curves ------------------------------------------------------------------------------
    def _write_curves(self, labels: list[str], seeds: list[int], state: Any, figure: bool) -> None:
        stack = lambda xs: np.stack(xs, axis=1)
        write_curves(
            self.work_dir,
            self._labels + labels,
            self._seeds + seeds,
            *self._joined(
                stack(state.best_so_far), stack(state.generation_mean), stack(state.generation_max), stack(state.evaluations)
            ),
            figure=figure,
        )

    def _joined(self, *current: np.ndarray) -> list[np.ndarray]:
        names = ("best_so_far", "generation_mean", "generation_max", "evaluations")
        out = []
        for name, value in zip(names, current):
            previous = self._curves.get(name, [])
            if previous and previous[0].shape[1] != value.shape[1]:
                width = max(previous[0].shape[1], value.shape[1])
                pad = lambda a: np.pad(a.astype(np.float64), ((0, 0), (0, width - a.shape[1])), constant_values=np.nan)  # noqa: B023 (used in this iteration)
                previous, value = [pad(p) for p in previous], pad(value)
            out.append(np.concatenate([*previous, value]) if previous else value)
        return out

    def _remember(self, labels: list[str], seeds: list[int], outcome: Any) -> None:
        for name in ("best_so_far", "generation_mean", "generation_max", "evaluations"):
            self._curves.setdefault(name, []).append(getattr(outcome, name))
        self._labels += labels
        self._seeds += seeds

    def _write_all_curves(self) -> None:
        parts = [
            np.concatenate(self._curves[name]) for name in ("best_so_far", "generation_mean", "generation_max", "evaluations")
        ]
        write_curves(self.work_dir, self._labels, self._seeds, *parts, figure=True)


class XDream(GradientFreeMethod):
    """XDream's genetic algorithm over generator codes (``method=xdream``)."""

    name = "xdream"

    def __init__(
        self,
        budget: int = 3000,
        population_size: int = 20,
        selectivity: float = 2.0,
        heritability: float = 0.5,
        mutation_rate: float = 0.5,
        mutation_size: float = 0.5,
        n_elites: int = 2,
        clip_percentile: float | None = 95.0,
        init_std: float | None = None,
        **common: Any,
    ) -> None:
        check_settings(population_size, selectivity, heritability, mutation_rate, mutation_size, n_elites, clip_percentile)
        if init_std is not None and not init_std > 0:
            raise EggError(f"method.init_std={init_std} must be positive or null (the generator's code scale)")
        self.population_size = int(population_size)
        self.selectivity = float(selectivity)
        self.heritability = float(heritability)
        self.mutation_rate = float(mutation_rate)
        self.mutation_size = float(mutation_size)
        self.n_elites = int(n_elites)
        self.clip_percentile = None if clip_percentile is None else float(clip_percentile)
        self.init_std = None if init_std is None else float(init_std)
        super().__init__(budget=budget, **common)

    def optimizer_settings(self) -> dict[str, Any]:
        return {
            "population_size": self.population_size,
            "selectivity": self.selectivity,
            "heritability": self.heritability,
            "mutation_rate": self.mutation_rate,
            "mutation_size": self.mutation_size,
            "n_elites": self.n_elites,
            "clip_percentile": self.clip_percentile,
            "init_std": self.init_std,
        }

    def make_optimizer(self, rng: np.random.Generator, generator: CodeGenerator) -> CodeOptimizer:
        init_std = self.init_std if self.init_std is not None else generator.code_std
        return GeneticOptimizer(
            generator.code_dim,
            rng,
            self.population_size,
            self.selectivity,
            self.heritability,
            self.mutation_rate,
            self.mutation_size,
            self.n_elites,
            self.clip_percentile,
            init_std,
        )


class CMAES(GradientFreeMethod):
    """CMA-ES over generator codes (``method=cmaes``; ``variant=sphere`` for the sphere-constrained one)."""

    name = "cmaes"

    def __init__(
        self,
        budget: int = 3000,
        population_size: int = 40,
        sigma0: float = 3.0,
        variant: str = "standard",
        covariance: str = "auto",
        full_covariance_max_dim: int = 1024,
        sphere_radius: float | None = None,
        angle_start: float = 50.0,
        angle_end: float = 7.3,
        **common: Any,
    ) -> None:
        check_cma_settings(population_size, sigma0, covariance)
        if variant not in ("standard", "sphere"):
            raise EggError(f"method.variant={variant!r} unknown; expected standard or sphere")
        if sphere_radius is not None and not sphere_radius > 0:
            raise EggError(f"method.sphere_radius={sphere_radius} must be positive or null (the generator's code norm)")
        self.population_size = int(population_size)
        self.sigma0 = float(sigma0)
        self.variant = variant
        self.covariance = covariance
        self.full_covariance_max_dim = int(full_covariance_max_dim)
        self.sphere_radius = None if sphere_radius is None else float(sphere_radius)
        self.angle_start = float(angle_start)
        self.angle_end = float(angle_end)
        self.scheduled = variant == "sphere"
        super().__init__(budget=budget, **common)

    def optimizer_settings(self) -> dict[str, Any]:
        if self.variant == "sphere":
            return {
                "variant": "sphere",
                "population_size": self.population_size,
                "sphere_radius": self.sphere_radius,
                "angle_start": self.angle_start,
                "angle_end": self.angle_end,
            }
        return {
            "variant": "standard",
            "population_size": self.population_size,
            "sigma0": self.sigma0,
            "covariance": self.covariance,
            "full_covariance_max_dim": self.full_covariance_max_dim,
        }

    def make_optimizer(self, rng: np.random.Generator, generator: CodeGenerator) -> CodeOptimizer:
        if self.variant == "sphere":
            radius = self.sphere_radius if self.sphere_radius is not None else generator.sphere_radius
            return SphereCMA(
                generator.code_dim, rng, self.generations, self.population_size, radius, self.angle_start, self.angle_end
            )
        return CMAOptimizer(
            generator.code_dim, rng, self.population_size, self.sigma0, self.covariance, self.full_covariance_max_dim
        )
