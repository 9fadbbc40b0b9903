"""Generalization of synthesized images: every image scored in every evaluator, per neuron normalized.

The protocol (EGG paper, Xiao & Kreiman 2020):

1. every image of every synthesis run and every natural image of the dataset are shown to each
   evaluator at the same RMS contrast (through the synthesis adapter, :mod:`.scoring`);
2. each response is divided by that evaluator's best natural-image response for the neuron,
   so 1.0 means "as strong as the best natural image" in that evaluator;
3. per neuron, one image per method: the seed with the highest score *in the generating model*
   (``seeds="best"``, chosen without looking at any evaluator) or the mean over seeds
   (``seeds="mean"``);
4. the methods of one generator are compared on the neurons they all have (``common``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from egg_cli.errors import EggError
from egg_cli.evaluation.scoring import natural_ceiling, neuron_columns, score_raw_images
from egg_cli.evaluation.stats import compare_paired, holm
from egg_cli.simulation.ascent import fixed_norm_ascent
from egg_cli.synthesis.adapter import contrast_norm

log = logging.getLogger(__name__)

SEED_SELECTIONS = ("best", "mean")


@dataclass
class SynthesisRun:
    """The images of one synthesis run as evaluation needs them (one entry per image)."""

    path: Path
    method: str  # label of the method in tables, e.g. ga, egg, egg-spectral
    generator: str  # label of the generating model
    images_raw: np.ndarray  # (M, C, H, W) in raw pixel units (0-255 scale)
    neuron_ids: np.ndarray  # (M,) id of the neuron each image was made for
    seeds: np.ndarray  # (M,)
    scores: np.ndarray  # (M,) objective of the image in the generating model
    rms_contrast: float  # contrast the generating model saw (z-units per value)
    seconds_per_image: float | None = None
    steps: int | None = None  # optimization steps (one model forward + backward each)
    budget: int | None = None  # gradient-free methods: images evaluated (model forward passes) per image made
    dataset: str | None = None
    dataset_id: str | None = None  # population fingerprint of the generating model (None in older runs)

    def __post_init__(self) -> None:
        m = len(self.images_raw)
        for name in ("neuron_ids", "seeds", "scores"):
            if len(getattr(self, name)) != m:
                raise EggError(f"{self.path}: {name} has {len(getattr(self, name))} entries; expected one per image ({m})")
        if self.images_raw.ndim != 4:
            raise EggError(f"{self.path}: images have shape {self.images_raw.shape}; expected (M, C, H, W)")


@dataclass
class Evaluator:
    """A response model that scores images: a held-out ensemble, another architecture, the ground truth."""

    name: str
    model: nn.Module
    kind: str = "model"  # model | ground_truth


@dataclass
class Evaluation:
    """Per-image and per-neuron results of :func:`evaluate_runs`."""

    generators: list[str]
    methods: list[str]
    evaluators: list[str]
    records: list[dict] = field(default_factory=list)  # one row per image and evaluator
    # (generator, method, evaluator) -> (neuron ids, normalized activation per neuron)
    per_neuron: dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    ceilings: dict[str, dict[str, float]] = field(default_factory=dict)  # evaluator -> neuron id -> best natural
    # ground-truth evaluator -> neuron id -> its optimum at the evaluation contrast (the best image known)
    optima: dict[str, dict[str, float]] = field(default_factory=dict)
    optimum_images: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # evaluator -> neuron id -> (C, H, W)
    # (generator, method, ground-truth evaluator) -> (neuron ids, selected image's response / optimum)
    fraction_of_optimum: dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    runs: dict[tuple[str, str], list[SynthesisRun]] = field(default_factory=dict)
    seeds: str = "best"

    def values(self, generator: str, method: str, evaluator: str) -> tuple[np.ndarray, np.ndarray]:
        """(neuron ids, normalized activations) of one cell."""
        key = (generator, method, evaluator)
        if key not in self.per_neuron:
            raise EggError(f"no results for generator {generator!r}, method {method!r}, evaluator {evaluator!r}")
        return self.per_neuron[key]


def group_runs(runs: Sequence[SynthesisRun]) -> dict[tuple[str, str], list[SynthesisRun]]:
    """Runs by (generator, method); runs of one pair must not repeat a (neuron, seed) image."""
    groups: dict[tuple[str, str], list[SynthesisRun]] = {}
    for run in runs:
        groups.setdefault((run.generator, run.method), []).append(run)
    for (gen, method), members in groups.items():
        seen: dict[tuple[str, int], Path] = {}
        for run in members:
            for nid, seed in zip(run.neuron_ids, run.seeds):
                key = (str(nid), int(seed))
                if key in seen and seen[key] != run.path:
                    raise EggError(
                        f"runs {seen[key]} and {run.path} both hold neuron {nid} seed {seed} for generator {gen!r} "
                        f"and method {method!r}; label one of them differently (runs=[{{path: ..., method: ...}}])"
                    )
                seen[key] = run.path
    return groups


def common_contrast(runs: Sequence[SynthesisRun], tolerance: float = 0.01) -> float:
    """The RMS contrast all runs were made at; EggError if they differ by more than ``tolerance``."""
    values = np.array([r.rms_contrast for r in runs], dtype=np.float64)
    if not len(values):
        raise EggError("runs=[]: expected at least one synthesis run to evaluate")
    if values.max() - values.min() > tolerance * values.max():
        listing = ", ".join(f"{r.path}: {r.rms_contrast:.4g}" for r in runs)
        raise EggError(f"synthesis runs were made at different contrasts ({listing}); set contrast.rms to evaluate all at one")
    return float(np.median(values))


def select_per_neuron(
    neuron_ids: np.ndarray, seeds: np.ndarray, scores: np.ndarray, normalized: np.ndarray, how: str = "best"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One value per neuron: the seed with the best generator score, or the mean over seeds.

    Returns (neuron ids sorted as text, value per neuron, boolean mask of the images used).
    """
    if how not in SEED_SELECTIONS:
        raise EggError(f"seeds={how!r} unknown; expected one of {SEED_SELECTIONS}")
    keys = np.asarray([str(v) for v in neuron_ids])
    unique = sorted(set(keys), key=_natural_key)
    values = np.empty(len(unique))
    used = np.zeros(len(keys), dtype=bool)
    for k, nid in enumerate(unique):
        idx = np.flatnonzero(keys == nid)
        if how == "best":
            pick = idx[np.argmax(scores[idx])]
            values[k] = normalized[pick]
            used[pick] = True
        else:
            values[k] = normalized[idx].mean()
            used[idx] = True
    return np.asarray(unique), values, used


def evaluate_runs(
    runs: Sequence[SynthesisRun],
    evaluators: Sequence[Evaluator],
    natural_raw: np.ndarray,
    rms_contrast: float | None = None,
    seeds: str = "best",
    neurons: str = "common",
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    fit: str = "resize",
    optimum_steps: int = 200,
) -> Evaluation:
    """Score every run's images and the natural images in every evaluator; normalize per neuron.

    ``rms_contrast`` None takes the runs' common contrast. ``neurons="common"`` keeps, for each
    generator, only the neurons every one of its methods has; ``"all"`` keeps each run's own.
    For ground-truth evaluators each neuron's optimum at that contrast is found by fixed-norm
    gradient ascent (``optimum_steps``) and raised to any better image scored, and each selected
    image's response is also reported as a fraction of it (how much room methods have to differ).
    """
    if not evaluators:
        raise EggError("evaluators={}: expected at least one evaluator (held-out ensemble, other architecture, ground_truth)")
    names = [e.name for e in evaluators]
    if len(set(names)) != len(names):
        raise EggError(f"evaluator names {names} repeat; expected distinct names")
    if neurons not in ("common", "all"):
        raise EggError(f"neurons={neurons!r} unknown; expected common or all")
    contrast = common_contrast(runs) if rms_contrast is None else float(rms_contrast)
    groups = group_runs(runs)
    keep = _kept_neurons(groups) if neurons == "common" else None
    all_ids = sorted({str(v) for r in runs for v in r.neuron_ids}, key=_natural_key)
    id_values = {str(v): v for r in runs for v in r.neuron_ids}
    wanted = np.asarray([id_values[k] for k in all_ids])
    evaluation = Evaluation(
        generators=_ordered(g for g, _ in groups),
        methods=_ordered(m for _, m in groups),
        evaluators=names,
        runs=groups,
        seeds=seeds,
    )
    for ev in tqdm(evaluators, desc="evaluators", unit="model"):
        ev.model.eval()
        selected: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        columns = neuron_columns(np.asarray(ev.model.neuron_ids), wanted, ev.name)
        best, _ = natural_ceiling(ev.model, natural_raw, contrast, columns, batch_size, device, fit)
        if not (best > 0).all():
            bad = [all_ids[k] for k in np.flatnonzero(~(best > 0))][:6]
            raise EggError(
                f"evaluator {ev.name!r}: best natural-image response of neuron(s) {', '.join(bad)} is not positive; "
                "expected non-negative rates with a positive maximum to normalize by"
            )
        ceiling = dict(zip(all_ids, best.tolist()))
        evaluation.ceilings[ev.name] = ceiling
        for (gen, method), members in groups.items():
            ids, seeds_, scores, normalized, responses = [], [], [], [], []
            for run in members:
                cols = neuron_columns(np.asarray(ev.model.neuron_ids), run.neuron_ids, ev.name)
                resp = score_raw_images(ev.model, run.images_raw, contrast, None, batch_size, device, fit)
                resp = resp[np.arange(len(cols)), cols]
                norm = resp / np.asarray([ceiling[str(v)] for v in run.neuron_ids])
                ids.append(run.neuron_ids)
                seeds_.append(run.seeds)
                scores.append(run.scores)
                normalized.append(norm)
                responses.append(resp)
            ids_a = np.concatenate(ids)
            seeds_a = np.concatenate(seeds_)
            scores_a = np.concatenate(scores)
            norm_a = np.concatenate(normalized)
            resp_a = np.concatenate(responses)
            if keep is not None:
                mask = np.isin(np.asarray([str(v) for v in ids_a]), list(keep[gen]))
                ids_a, seeds_a, scores_a, norm_a, resp_a = ids_a[mask], seeds_a[mask], scores_a[mask], norm_a[mask], resp_a[mask]
            uid, values, used = select_per_neuron(ids_a, seeds_a, scores_a, norm_a, seeds)
            evaluation.per_neuron[(gen, method, ev.name)] = (uid, values)
            if ev.kind == "ground_truth":
                selected[(gen, method)] = select_per_neuron(ids_a, seeds_a, scores_a, resp_a, seeds)[:2]
            for k in range(len(ids_a)):
                evaluation.records.append(
                    {
                        "generator": gen,
                        "method": method,
                        "evaluator": ev.name,
                        "neuron_id": ids_a[k],
                        "seed": int(seeds_a[k]),
                        "generator_score": float(scores_a[k]),
                        "response": float(resp_a[k]),
                        "best_natural": ceiling[str(ids_a[k])],
                        "normalized": float(norm_a[k]),
                        "selected": bool(used[k]),
                    }
                )
        if ev.kind == "ground_truth":
            _record_optima(evaluation, ev, selected, wanted, all_ids, contrast, optimum_steps)
    return evaluation


def _record_optima(
    evaluation: Evaluation,
    ev: Evaluator,
    selected: Mapping[tuple[str, str], tuple[np.ndarray, np.ndarray]],
    wanted: np.ndarray,
    all_ids: list[str],
    rms_contrast: float,
    steps: int,
) -> None:
    """Each neuron's ground-truth optimum and every selected image's fraction of it."""
    columns = torch.as_tensor(neuron_columns(np.asarray(ev.model.neuron_ids), wanted, ev.name))
    norm = contrast_norm(tuple(int(s) for s in ev.model.input_shape), rms_contrast=rms_contrast)
    images, rates = fixed_norm_ascent(ev.model, columns, norm, steps=steps)
    optimum = dict(zip(all_ids, rates.cpu().numpy().astype(np.float64).tolist()))
    evaluation.optimum_images[ev.name] = dict(zip(all_ids, images.cpu().numpy()))
    for _, (ids, responses) in selected.items():  # the optimum is the best image known at this contrast
        for nid, r in zip(ids, responses):
            optimum[str(nid)] = max(optimum[str(nid)], float(r))
    evaluation.optima[ev.name] = optimum
    for (gen, method), (ids, responses) in selected.items():
        fraction = np.asarray([r / optimum[str(nid)] if optimum[str(nid)] > 0 else np.nan for nid, r in zip(ids, responses)])
        evaluation.fraction_of_optimum[(gen, method, ev.name)] = (ids, fraction)


def optimum_table(evaluation: Evaluation) -> list[dict]:
    """Generator x ground-truth evaluator x method rows of the fraction of the ground-truth optimum."""
    rows = []
    for (gen, method, ev), (_, fraction) in evaluation.fraction_of_optimum.items():
        finite = fraction[np.isfinite(fraction)]
        rows.append(
            {
                "generator": gen,
                "evaluator": ev,
                "method": method,
                "neurons": int(len(finite)),
                "median": float(np.median(finite)) if len(finite) else float("nan"),
                "mean": float(np.mean(finite)) if len(finite) else float("nan"),
                "min": float(np.min(finite)) if len(finite) else float("nan"),
            }
        )
    return rows


def activation_table(evaluation: Evaluation) -> list[dict]:
    """Generator x evaluator x method rows: neurons, mean, sem, median, fraction above natural."""
    rows = []
    for gen in evaluation.generators:
        for ev in evaluation.evaluators:
            for method in evaluation.methods:
                if (gen, method, ev) not in evaluation.per_neuron:
                    continue
                _, values = evaluation.values(gen, method, ev)
                n = len(values)
                rows.append(
                    {
                        "generator": gen,
                        "evaluator": ev,
                        "method": method,
                        "neurons": n,
                        "mean": float(values.mean()) if n else float("nan"),
                        "sem": float(values.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan"),
                        "median": float(np.median(values)) if n else float("nan"),
                        "fraction_above_natural": float(np.mean(values > 1.0)) if n else float("nan"),
                    }
                )
    return rows


def default_pairs(methods: Sequence[str], reference: str | None = "ga") -> list[tuple[str, str]]:
    """(A, B) pairs to compare: every method against ``reference`` if present, else all pairs."""
    if reference is not None and reference in methods:
        return [(reference, m) for m in methods if m != reference]
    return [(a, b) for i, a in enumerate(methods) for b in methods[i + 1 :]]


def method_comparisons(evaluation: Evaluation, pairs: Iterable[tuple[str, str]], n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """Paired statistics of B vs A on their shared neurons, per generator and evaluator (Holm over all rows)."""
    rows = []
    for a, b in pairs:
        for m in (a, b):
            if m not in evaluation.methods:
                raise EggError(f"compare pair ({a}, {b}): no run has method {m!r}; expected one of {evaluation.methods}")
        for gen in evaluation.generators:
            for ev in evaluation.evaluators:
                if (gen, a, ev) not in evaluation.per_neuron or (gen, b, ev) not in evaluation.per_neuron:
                    continue
                xa, ya = paired_values(evaluation, gen, ev, a, b)
                if len(xa) == 0:
                    continue
                comp = compare_paired(xa, ya, n_boot, seed)
                rows.append({"generator": gen, "evaluator": ev, "method_a": a, "method_b": b, **comp.as_dict()})
    adjusted = holm(np.asarray([r["p_value"] for r in rows])) if rows else []
    for row, p in zip(rows, adjusted):
        row["p_holm"] = float(p)
    return rows


def paired_values(evaluation: Evaluation, generator: str, evaluator: str, a: str, b: str) -> tuple[np.ndarray, np.ndarray]:
    """Normalized activations of methods ``a`` and ``b`` on the neurons both have, aligned."""
    ids_a, va = evaluation.values(generator, a, evaluator)
    ids_b, vb = evaluation.values(generator, b, evaluator)
    shared = [i for i in ids_a if i in set(ids_b)]
    pos_a = {v: k for k, v in enumerate(ids_a)}
    pos_b = {v: k for k, v in enumerate(ids_b)}
    return np.asarray([va[pos_a[i]] for i in shared]), np.asarray([vb[pos_b[i]] for i in shared])


def compute_table(evaluation: Evaluation, reference: str | None = "ga") -> list[dict]:
    """Compute per image of each (generator, method), from the synthesis runs' own timing."""
    rows = []
    for (gen, method), members in evaluation.runs.items():
        times = [r.seconds_per_image for r in members if r.seconds_per_image is not None]
        n_images = sum(len(r.images_raw) for r in members)
        weighted = sum(r.seconds_per_image * len(r.images_raw) for r in members if r.seconds_per_image is not None) / max(
            1, sum(len(r.images_raw) for r in members if r.seconds_per_image is not None)
        )
        steps = sorted({r.steps for r in members if r.steps is not None})
        budget = sorted({r.budget for r in members if r.budget is not None})
        rows.append(
            {
                "generator": gen,
                "method": method,
                "images": n_images,
                "seconds_per_image": float(weighted) if times else float("nan"),
                "steps": ",".join(str(s) for s in steps),
                "budget": ",".join(str(b) for b in budget),
            }
        )
    for row in rows:
        ref = next((r for r in rows if r["generator"] == row["generator"] and r["method"] == reference), None)
        ok = ref is not None and np.isfinite(ref["seconds_per_image"]) and ref["seconds_per_image"] > 0
        row[f"time_vs_{reference}"] = row["seconds_per_image"] / ref["seconds_per_image"] if ok else float("nan")
    return rows


def _kept_neurons(groups: Mapping[tuple[str, str], list[SynthesisRun]]) -> dict[str, set[str]]:
    """Per generator, the neuron ids every one of its methods has."""
    kept: dict[str, set[str]] = {}
    for (gen, _method), members in groups.items():
        ids = {str(v) for r in members for v in r.neuron_ids}
        kept[gen] = ids if gen not in kept else kept[gen] & ids
    for gen, ids in kept.items():
        every = {str(v) for (g, _), members in groups.items() if g == gen for r in members for v in r.neuron_ids}
        if not ids:
            raise EggError(f"the methods of generator {gen!r} share no neuron; set neurons=all or synthesize the same neurons")
        if len(ids) < len(every):
            log.warning("generator %s: %d of %d neurons are shared by all methods; comparing on those", gen, len(ids), len(every))
    return kept


def _ordered(items: Iterable[str]) -> list[str]:
    out: list[str] = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


def _natural_key(text: str) -> tuple:
    return (0, int(text), "") if text.lstrip("-").isdigit() else (1, 0, text)
