"""The generation loop of gradient-free search: many elements in parallel, budget, state, resume.

Each element (one problem and seed) has its own optimizer; a generation asks every optimizer
for codes, renders all codes in one batched pass (generator, then the synth adapter), scores
them in one call to the scorer, and tells each optimizer its own scores. The best-so-far score
per element is tracked by generation. After every generation the whole state (optimizers with
their random streams, the scorer's noise stream, best codes and curves) is pickled atomically,
so a search resumes from its last finished generation and continues exactly as if it had not
stopped. The state remembers a fingerprint of the settings and refuses to resume a different
search.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from egg_cli.errors import EggError
from egg_cli.io import atomic_path
from egg_cli.synthesis.adapter import ImageAdapter
from egg_cli.synthesis.blackbox.base import CodeOptimizer
from egg_cli.synthesis.blackbox.generators import CodeGenerator
from egg_cli.synthesis.blackbox.scorers import Scorer

log = logging.getLogger(__name__)

STATE_VERSION = 1


@dataclass
class SearchState:
    """Everything a search needs to continue after its last finished generation."""

    fingerprint: dict[str, Any]
    optimizers: list[CodeOptimizer]
    generation: int = 0
    best_score: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (B,) best observed score
    best_code: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # (B, D)
    best_so_far: list[np.ndarray] = field(default_factory=list)  # per generation, (B,)
    generation_mean: list[np.ndarray] = field(default_factory=list)  # per generation, (B,) mean of finite scores
    generation_max: list[np.ndarray] = field(default_factory=list)
    evaluations: list[np.ndarray] = field(default_factory=list)  # per generation, (B,) images shown so far
    scorer_state: Any = None
    version: int = STATE_VERSION


@dataclass
class SearchOutcome:
    """Results of a finished search; curves are (B, generations)."""

    best_code: np.ndarray
    best_score: np.ndarray
    final_code: np.ndarray  # the optimizers' recommendations
    best_so_far: np.ndarray
    generation_mean: np.ndarray
    generation_max: np.ndarray
    evaluations: np.ndarray
    resumed_from: int


@torch.no_grad()
def render(
    generator: CodeGenerator,
    adapter: ImageAdapter,
    codes: np.ndarray,
    device: torch.device,
    batch_size: int = 64,
    keep_generated: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Codes (N, D) -> (model-input images, generator images or None), both on the CPU."""
    model_images, generated = [], []
    for i in range(0, len(codes), batch_size):
        batch = torch.as_tensor(codes[i : i + batch_size], dtype=torch.float32, device=device)
        images = generator(batch)
        if keep_generated:
            generated.append(images.float().cpu())
        model_images.append(adapter(images).float().cpu())
    return torch.cat(model_images), torch.cat(generated) if keep_generated else None


def save_state(path: Path, state: SearchState) -> None:
    """Pickle the search state atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)


def load_state(path: Path, fingerprint: dict[str, Any]) -> SearchState:
    """Read a saved state and check that it belongs to the same search."""
    try:
        with open(path, "rb") as f:
            state = pickle.load(f)
    except Exception as err:
        raise EggError(f"search state {path} could not be read ({err}); delete it to start this search over") from err
    if not isinstance(state, SearchState) or state.version != STATE_VERSION:
        raise EggError(f"search state {path} is not a version-{STATE_VERSION} egg search state; delete it to start over")
    if state.fingerprint != fingerprint:
        saved, wanted = _flatten(state.fingerprint), _flatten(fingerprint)
        keys = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
        raise EggError(
            f"search state {path} belongs to a different search (differs in {', '.join(keys)}); "
            "expected the same settings to resume; use a new run folder for a new search"
        )
    return state


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> {"a.b": value} (for naming what differs between two fingerprints)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def run_search(
    generator: CodeGenerator,
    optimizers: Sequence[CodeOptimizer],
    adapter: ImageAdapter,
    scorer: Scorer,
    problem: torch.Tensor,
    seeds: Sequence[int],
    generations: int,
    device: torch.device,
    state_path: str | Path | None = None,
    fingerprint: dict[str, Any] | None = None,
    batch_size: int = 64,
    on_generation: Callable[[int, SearchState], None] | None = None,
) -> SearchOutcome:
    """Run ``generations`` generations of every optimizer (element b optimizes ``problem[b]``)."""
    n = len(optimizers)
    if len(problem) != n or len(seeds) != n:
        raise EggError(
            f"search got {n} optimizers, {len(problem)} problems and {len(seeds)} seeds; expected one of each per element"
        )
    fingerprint = dict(fingerprint or {})
    path = None if state_path is None else Path(state_path)
    scorer.begin(problem, seeds)
    if path is not None and path.exists():
        state = load_state(path, fingerprint)
        scorer.load_state(state.scorer_state)
        log.info("resuming %s from generation %d of %d", path, state.generation, generations)
    else:
        state = SearchState(
            fingerprint=fingerprint,
            optimizers=list(optimizers),
            best_score=np.full(n, -np.inf),
            best_code=np.zeros((n, generator.code_dim)),
        )
    resumed_from = state.generation
    shown = state.evaluations[-1].copy() if state.evaluations else np.zeros(n, dtype=np.int64)
    for generation in range(state.generation, generations):
        asks = [np.asarray(opt.ask(), dtype=np.float64) for opt in state.optimizers]
        sizes = [len(a) for a in asks]
        element = np.repeat(np.arange(n), sizes)
        codes = np.concatenate(asks)
        images, _ = render(generator, adapter, codes, device, batch_size, keep_generated=False)
        scores = np.asarray(scorer.score(images, element, generation), dtype=np.float64)
        if scores.shape != (len(codes),):
            raise EggError(f"scorer {scorer.name} returned {scores.shape} scores for {len(codes)} images; expected one per image")
        means, maxes = np.full(n, np.nan), np.full(n, np.nan)
        for b, opt in enumerate(state.optimizers):
            rows = element == b
            own = scores[rows]
            opt.tell(asks[b], own)
            finite = np.isfinite(own)
            if finite.any():
                k = int(np.argmax(np.where(finite, own, -np.inf)))
                means[b], maxes[b] = own[finite].mean(), own[k]
                if own[k] > state.best_score[b]:
                    state.best_score[b] = own[k]
                    state.best_code[b] = asks[b][k]
        shown = shown + np.asarray(sizes)
        state.best_so_far.append(state.best_score.copy())
        state.generation_mean.append(means)
        state.generation_max.append(maxes)
        state.evaluations.append(shown.copy())
        state.generation = generation + 1
        state.scorer_state = scorer.state()
        if path is not None:
            save_state(path, state)
        if on_generation is not None:
            on_generation(generation + 1, state)
    scorer.finish()
    stack = lambda xs: np.stack(xs, axis=1) if xs else np.zeros((n, 0))
    return SearchOutcome(
        best_code=state.best_code.copy(),
        best_score=state.best_score.copy(),
        final_code=np.stack([opt.recommendation() for opt in state.optimizers]),
        best_so_far=stack(state.best_so_far),
        generation_mean=stack(state.generation_mean),
        generation_max=stack(state.generation_max),
        evaluations=stack(state.evaluations).astype(np.int64),
        resumed_from=resumed_from,
    )
