"""Run a synthesis method over problems x seeds in memory-sized chunks and score the results."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from egg_cli.errors import EggError
from egg_cli.synthesis.adapter import ImageAdapter, contrast_norm
from egg_cli.synthesis.base import MethodOutput, SynthesisMethod
from egg_cli.synthesis.batching import chunk_problem_seed, plan_chunks, resolve_batch_size
from egg_cli.synthesis.objectives import Objective
from egg_cli.synthesis.results import GENERATING, SynthesisResult

log = logging.getLogger(__name__)


def build_adapter(
    model: nn.Module, source_shape: Sequence[int], source_space: str, options: Mapping[str, Any] | None = None
) -> ImageAdapter:
    """The adapter from a generator space to ``model``'s input, from ``adapter.*`` options.

    Options: ``rms_contrast`` (0.25), ``norm`` (explicit L2 norm, overrides), ``fit``
    (resize | center_crop), ``antialias``, ``pixel_range`` ([0, 255]).
    """
    options = dict(options or {})
    target = tuple(int(s) for s in model.input_shape)
    norm = contrast_norm(target, options.get("rms_contrast", 0.25), options.get("norm"))
    return ImageAdapter(
        source_shape,
        target,
        float(model.pixel_mean),
        float(model.pixel_std),
        source_space=source_space,
        norm=norm,
        fit=options.get("fit", "resize"),
        pixel_range=tuple(options.get("pixel_range", (0.0, 255.0))),
        antialias=bool(options.get("antialias", False)),
    )


def adapter_record(adapter: ImageAdapter) -> dict[str, Any]:
    """What the result file records about the adapter."""
    return {
        "source_space": adapter.source_space,
        "source_shape": list(adapter.source_shape),
        "target_shape": list(adapter.target_shape),
        "norm": adapter.norm,
        "fit": adapter.fit,
        "pixel_mean": adapter.pixel_mean,
        "pixel_std": adapter.pixel_std,
        "pixel_range": list(adapter.pixel_range),
        "antialias": adapter.antialias,
        "crop_box": list(adapter.crop_box()),
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _check_request(method: SynthesisMethod, objective: Objective, seeds: Sequence[int]) -> list[int]:
    """The seeds as integers, after checking that the method fits the objective and seeds are distinct."""
    if objective.methods is not None and method.name not in objective.methods:
        raise EggError(f"objective={objective.name} needs method in {list(objective.methods)}, got method={method.name}")
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise EggError("seeds=[]: expected at least one seed")
    if len(set(seeds)) != len(seeds):
        raise EggError(f"seeds={seeds} lists a seed twice; expected distinct seeds")
    return seeds


class _Collector:
    """Per-(problem, seed) arrays filled chunk by chunk; shaped by the first chunk's output."""

    def __init__(self, n_problems: int, n_seeds: int) -> None:
        self.shape = (n_problems, n_seeds)
        self.images: np.ndarray | None = None
        self.trace: np.ndarray | None = None
        self.generator_images: np.ndarray | None = None
        self.extras: dict[str, np.ndarray] = {}
        self.scores = np.zeros(self.shape, dtype=np.float32)
        self.seconds = np.zeros(self.shape, dtype=np.float64)
        self.chunk = np.zeros(self.shape, dtype=np.int32)

    def _allocate(self, out: MethodOutput) -> None:
        self.images = np.zeros((*self.shape, *out.images.shape[1:]), dtype=np.float32)
        self.trace = np.zeros((*self.shape, out.trace.shape[1]), dtype=np.float32)
        if out.generator_images is not None:
            self.generator_images = np.zeros((*self.shape, *out.generator_images.shape[1:]), dtype=np.float32)
        self.extras = {key: np.zeros((*self.shape, *v.shape[1:]), dtype=v.cpu().numpy().dtype) for key, v in out.extras.items()}

    def add(self, k: int, chunk: Sequence[tuple[int, int]], out: MethodOutput, elapsed: float) -> None:
        """Store chunk ``k``'s output; element ``b`` of ``out`` is (problem, seed) ``chunk[b]``."""
        if self.images is None:
            self._allocate(out)
        for b, (p, s) in enumerate(chunk):
            self.images[p, s] = out.images[b].float().cpu().numpy()
            self.scores[p, s] = float(out.scores[b])
            self.trace[p, s] = out.trace[b].numpy()
            if self.generator_images is not None:
                self.generator_images[p, s] = out.generator_images[b].float().cpu().numpy()
            for key, value in out.extras.items():
                self.extras[key][p, s] = value[b].cpu().numpy()
            self.seconds[p, s] = elapsed / len(chunk)
            self.chunk[p, s] = k


def synthesize(
    method: SynthesisMethod,
    objective: Objective,
    seeds: Sequence[int],
    device: torch.device,
    problems: Sequence[int] | None = None,
    batch_size: int | str = "auto",
    max_batch_size: int = 256,
    adapter_options: Mapping[str, Any] | None = None,
    progress: bool = True,
    precision: torch.dtype = torch.float32,
) -> SynthesisResult:
    """Optimize one image per (problem, seed); batch elements never influence each other.

    ``problems`` selects problem indices of ``objective`` (default: all). The generating score
    of each image is the objective of the final image in ``objective.model``. ``precision``
    (fp16/bf16, from ``egg_cli.runtime.resolve_precision``) runs the networks under autocast.
    """
    model = objective.model
    seeds = _check_request(method, objective, seeds)
    problem_ids = list(range(objective.n_problems)) if problems is None else [int(p) for p in problems]
    space = method.prepare(objective, model.input_shape, device)
    adapter = build_adapter(model, space.shape, space.space, adapter_options).to(device)
    n_elements = len(problem_ids) * len(seeds)
    size = resolve_batch_size(
        batch_size, lambda b: method.probe(objective, adapter, device, b), device, n_elements, max_batch_size
    )
    chunks = plan_chunks(len(problem_ids), len(seeds), size, whole_problems=method.couples_seeds)
    collected = _Collector(len(problem_ids), len(seeds))
    bar = tqdm(
        total=n_elements * method.steps, desc=f"{method.name} {objective.name}", unit="step", disable=not progress, leave=False
    )
    for k, chunk in enumerate(chunks):
        local, chunk_seeds = chunk_problem_seed(chunk, seeds)
        problem = torch.as_tensor([problem_ids[p] for p in local.tolist()], dtype=torch.long)
        done = 0

        def on_step(step: int, n: int = len(chunk)) -> None:
            nonlocal done
            bar.update((step - done) * n)
            done = step

        _sync(device)
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=precision, enabled=precision != torch.float32):
            out = method.run(objective, problem, chunk_seeds, adapter, device, on_step=on_step)
        _sync(device)
        collected.add(k, chunk, out, time.perf_counter() - start)
    bar.close()
    labels_all = objective.labels()
    result = SynthesisResult(
        method=method.name,
        objective=objective.name,
        method_settings=method.info().settings,
        adapter=adapter_record(adapter),
        seeds=np.asarray(seeds, dtype=np.int64),
        problems={key: value[problem_ids] for key, value in objective.problem_table().items()},
        labels=[labels_all[p] for p in problem_ids],
        images=collected.images,
        scores={GENERATING: collected.scores},
        trace=collected.trace,
        seconds_per_image=collected.seconds,
        chunk=collected.chunk,
        batch_size=size,
        device=str(device),
        generator_images=collected.generator_images,
        extras=collected.extras,
    )
    check_finite(result.scores[GENERATING], result, GENERATING)
    return result


def check_finite(scores: np.ndarray, result: SynthesisResult, model_name: str) -> None:
    """Raise one line naming the first problem and seed whose score is NaN or infinite."""
    bad = np.argwhere(~np.isfinite(scores))
    if len(bad):
        p, s = bad[0]
        raise EggError(
            f"score of {result.labels[p]} seed {int(result.seeds[s])} is {scores[p, s]} in the {model_name} model "
            f"({len(bad)} of {scores.size} images); expected finite scores: check the model checkpoint and lower method.lr "
            "or method.energy_scale"
        )


@torch.no_grad()
def rescore(
    objective: Objective,
    model: nn.Module,
    result: SynthesisResult,
    device: torch.device,
    batch_size: int = 64,
    problems: Sequence[int] | None = None,
) -> np.ndarray:
    """Objective of ``result.images`` in another model (held-out member, ground truth): (P, S)."""
    other = objective.with_model(model)
    shape = tuple(int(s) for s in model.input_shape)
    if shape != tuple(result.images.shape[2:]):
        raise EggError(f"scoring model input shape {shape} differs from the synthesized images' {result.images.shape[2:]}")
    P, S = result.images.shape[:2]
    problem_ids = np.arange(P) if problems is None else np.asarray(problems)
    flat = torch.from_numpy(result.images.reshape(P * S, *shape))
    problem = torch.as_tensor(np.repeat(problem_ids, S), dtype=torch.long)
    out = []
    for i in range(0, P * S, batch_size):
        out.append(other(flat[i : i + batch_size].to(device), problem[i : i + batch_size].to(device)).float().cpu())
    return torch.cat(out).numpy().reshape(P, S)
