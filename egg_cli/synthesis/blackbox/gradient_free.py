"""What XDream and CMA-ES share as egg synth methods: generator, scorer, search, curves, resume.

Both plug into :func:`egg_cli.synthesis.runner.synthesize` like GA and EGG: the generator's
space (``generator=pixel|prior|deepsim``) goes through the same adapter to the model's input,
the same objective names the problems (neurons), and the result lands in the same HDF5 layout
(``trace`` holds the best-so-far score per generation; codes and best observed scores go to
``extras``). What scores the images is the ``scorer`` group: the generating model itself
(default), the ground-truth neurons of a simulated dataset, or a recording rig through the
closed-loop file protocol, optionally with Poisson spike noise (``method.noise.max_count``).

The budget counts image evaluations per element (problem x seed); a search runs
``budget // population_size`` whole generations. With a ``work_dir`` (the run folder under
``egg synth``) the state is saved after every generation and an interrupted run resumes when
started again in the same folder (``hydra.run.dir=<run folder>``); the best-so-far curves go to
``best_so_far.csv`` / ``.png`` there (:class:`~egg_cli.synthesis.blackbox.curves.CurveWriter`).
A subclass says only which optimizer runs one element (:meth:`make_optimizer`) and its settings.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from egg_cli.errors import EggError
from egg_cli.runtime import plain
from egg_cli.synthesis.adapter import ImageAdapter
from egg_cli.synthesis.base import GeneratorSpace, MethodInfo, MethodOutput, StepCallback, SynthesisMethod
from egg_cli.synthesis.blackbox.base import CodeOptimizer, element_rng
from egg_cli.synthesis.blackbox.curves import CurveWriter
from egg_cli.synthesis.blackbox.generators import CodeGenerator
from egg_cli.synthesis.blackbox.scorers import Scorer, ScorerContext, with_noise
from egg_cli.synthesis.blackbox.search import SearchOutcome, render, run_search
from egg_cli.synthesis.objectives import Objective

log = logging.getLogger(__name__)

FINALS = ("recommended", "best_observed")
#: library defaults of ``generator`` and ``scorer`` (the CLI composes configs/generator/pixel.yaml and scorer/model.yaml)
PIXEL_GENERATOR = {"_target_": "egg_cli.synthesis.blackbox.generators.pixel_generator"}
MODEL_SCORER = {"_target_": "egg_cli.synthesis.blackbox.scorers.model_scorer"}
#: scorer settings that may change when a search resumes
RESUMABLE_SCORER_KEYS = ("timeout_s", "poll_s")


def _target_config(value: Any, key: str, group: str) -> dict[str, Any]:
    """A group entry as a plain dict with ``_target_``, or one line naming the group to choose from."""
    config = plain(value)
    if not isinstance(config, Mapping) or "_target_" not in config:
        raise EggError(f"{key}={config!r}: expected a {group} config with _target_; choose one with {group}=<name>")
    return dict(config)


class GradientFreeMethod(SynthesisMethod):
    """Search over generator codes, one optimizer per element; subclasses provide the optimizer."""

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
        if int(budget) < 1:
            raise EggError(f"method.budget={budget} must be a positive number of image evaluations")
        if final not in FINALS:
            raise EggError(f"method.final={final!r} unknown; expected one of {FINALS}")
        if int(eval_batch_size) < 1:
            raise EggError(f"method.eval_batch_size={eval_batch_size} must be a positive integer")
        self.budget = int(budget)
        self.generator_config = _target_config(
            PIXEL_GENERATOR if generator is None else generator, "method.generator", "generator"
        )
        self.scorer_config = _target_config(MODEL_SCORER if scorer is None else scorer, "method.scorer", "scorer")
        self.noise_options = dict(plain(noise) or {})
        self.final = final
        self.eval_batch_size = int(eval_batch_size)
        self.work_dir = None if work_dir in (None, "") else Path(str(work_dir))
        self.curves = None if self.work_dir is None else CurveWriter(self.work_dir)
        self.generator: CodeGenerator | None = None
        self._scorer: Scorer | None = None
        self._chunks = 0

    # -- what subclasses provide -------------------------------------------------------------
    def make_optimizer(self, rng: np.random.Generator, generator: CodeGenerator) -> CodeOptimizer:
        """The optimizer of one element, drawing from ``rng``."""
        raise NotImplementedError

    def optimizer_settings(self) -> dict[str, Any]:
        """The optimizer's settings (saved with the results and in the resume fingerprint)."""
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
        from hydra.utils import instantiate

        self.generator = instantiate(self.generator_config, shape=tuple(model_shape), device=device, _recursive_=False)
        return GeneratorSpace(tuple(self.generator.shape), self.generator.space)

    def info(self) -> MethodInfo:
        settings: dict[str, Any] = {
            "budget": self.budget,
            "generations": self.generations,
            "evaluations": self.generations * self.population_size,
            "final": self.final,
            **self.optimizer_settings(),
            "scorer": self.scorer_config,
            "noise": self.noise_options,
        }
        settings["generator"] = self.generator.settings() if self.generator is not None else self.generator_config
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
        all_labels = objective.labels()
        labels = [all_labels[p] for p in problem.tolist()]
        optimizers = [self.make_optimizer(element_rng(s, int(p)), self.generator) for p, s in zip(problem.tolist(), seeds)]
        write_curves = None if self.curves is None else self.curves.on_generation(labels, seeds, self.generations)

        def on_generation(done: int, state: Any) -> None:
            if on_step is not None:
                on_step(done)
            if write_curves is not None:
                write_curves(done, state)

        outcome = run_search(
            self.generator,
            optimizers,
            adapter,
            scorer,
            problem,
            seeds,
            self.generations,
            device,
            state_path=None if self.work_dir is None else self.work_dir / "blackbox" / f"state_chunk{chunk:02d}.pkl",
            fingerprint=self._fingerprint(problem, seeds, adapter),
            batch_size=self.eval_batch_size,
            on_generation=on_generation,
        )
        if on_step is not None and outcome.resumed_from == self.generations:
            on_step(self.generations)
        if self.curves is not None:
            self.curves.chunk_done(labels, seeds, outcome)
        return self._output(objective, problem, adapter, scorer, outcome, device)

    def scorer(self, objective: Objective, adapter: ImageAdapter, device: torch.device, session: str = "") -> Scorer:
        """The scorer of the ``scorer`` group (+ ``method.noise``) for this objective."""
        from hydra.utils import instantiate

        context = ScorerContext(objective, adapter, device, self.eval_batch_size, self.work_dir, session)
        self._scorer = with_noise(instantiate(self.scorer_config, context), self.noise_options, context)
        return self._scorer

    # -- steps of run ------------------------------------------------------------------------
    def _fingerprint(self, problem: torch.Tensor, seeds: list[int], adapter: ImageAdapter) -> dict[str, Any]:
        """The settings a saved search state must match to be resumed."""
        fingerprint = {
            "method": self.name,
            "optimizer": self.optimizer_settings(),
            "generator": self.generator.settings(),
            "scorer": {k: v for k, v in self.scorer_config.items() if k not in RESUMABLE_SCORER_KEYS},
            "noise": self.noise_options,
            "problems": problem.tolist(),
            "seeds": seeds,
            "adapter": [list(adapter.source_shape), list(adapter.target_shape), adapter.norm],
        }
        if self.scheduled:
            fingerprint["budget"] = self.budget
        return fingerprint

    def _output(
        self,
        objective: Objective,
        problem: torch.Tensor,
        adapter: ImageAdapter,
        scorer: Scorer,
        outcome: SearchOutcome,
        device: torch.device,
    ) -> MethodOutput:
        """Render the final codes and score them noise-free in the generating model."""
        codes = outcome.final_code if self.final == "recommended" else outcome.best_code
        images, generated = render(self.generator, adapter, codes, device, self.eval_batch_size)
        expected = scorer.expected(images, np.arange(len(codes)))
        step = self.eval_batch_size
        with torch.no_grad():
            scores = torch.cat(
                [
                    objective(images[i : i + step].to(device), problem[i : i + step].to(device)).float().cpu()
                    for i in range(0, len(images), step)
                ]
            )
        trace = np.where(np.isfinite(outcome.best_so_far), outcome.best_so_far, np.nan)
        extras = {
            "codes": codes.astype(np.float32),
            "best_observed_codes": outcome.best_code.astype(np.float32),
            "best_observed_score": np.where(np.isfinite(outcome.best_score), outcome.best_score, np.nan).astype(np.float32),
            "final_expected_score": (np.full(len(codes), np.nan) if expected is None else expected).astype(np.float32),
            "evaluations": outcome.evaluations[:, -1].astype(np.int64)
            if outcome.evaluations.size
            else np.zeros(len(codes), np.int64),
        }
        keep_generated = self.generator.space != "zscored" or tuple(self.generator.shape) != tuple(adapter.target_shape)
        return MethodOutput(
            images=images,
            scores=scores,
            trace=torch.as_tensor(trace, dtype=torch.float32),
            generator_images=generated if keep_generated else None,
            extras={k: torch.as_tensor(v) for k, v in extras.items()},
        )
