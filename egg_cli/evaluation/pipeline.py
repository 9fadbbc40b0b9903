"""`egg evaluate` as a library call: load runs and evaluators, score, write tables and figures."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from egg_cli.errors import EggError
from egg_cli.evaluation.evaluators import load_evaluators
from egg_cli.evaluation.figures import heatmap_figure, image_grid_figure, scatter_figure
from egg_cli.evaluation.generalization import (
    Evaluation,
    Evaluator,
    SynthesisRun,
    activation_table,
    common_contrast,
    compute_table,
    default_pairs,
    evaluate_runs,
    method_comparisons,
    optimum_table,
)
from egg_cli.evaluation.runs import load_synthesis_run
from egg_cli.evaluation.tables import wide_activation_rows
from egg_cli.io import atomic_path, save_figure, write_csv, write_json
from egg_cli.markdown import markdown_table

log = logging.getLogger(__name__)

NATURAL_TIERS = ("all", "train", "validation", "test", "final_test")


@dataclass
class EvaluationSettings:
    """Options of an evaluation (the ``egg evaluate`` config minus runs, evaluators and paths)."""

    rms_contrast: float | None = None  # None: the runs' common contrast
    seeds: str = "best"  # best | mean
    neurons: str = "common"  # common | all
    natural_tier: str = "all"
    max_natural: int | None = None  # None: every natural image of the tier
    batch_size: int = 64
    fit: str = "resize"
    reference: str | None = "ga"
    compare: list[tuple[str, str]] | None = None  # None: every method against the reference
    bootstrap: int = 1000
    seed: int = 0
    grid_neurons: int = 8
    optimum_steps: int = 200  # fixed-norm gradient ascent steps for each ground-truth neuron's optimum
    allow_mismatch: bool = False  # score with evaluators of other populations or image sizes

    def check(self) -> None:
        """Refuse unknown option values before any model is loaded."""
        from egg_cli.evaluation.generalization import SEED_SELECTIONS
        from egg_cli.synthesis.adapter import FITS

        choices = {
            "seeds": (self.seeds, SEED_SELECTIONS),
            "neurons": (self.neurons, ("common", "all")),
            "natural.tier": (self.natural_tier, NATURAL_TIERS),
            "fit": (self.fit, FITS),
        }
        for key, (value, allowed) in choices.items():
            if value not in allowed:
                raise EggError(f"{key}={value!r} unknown; expected one of {', '.join(allowed)}")
        if self.rms_contrast is not None and not self.rms_contrast > 0:
            raise EggError(f"contrast.rms={self.rms_contrast} must be positive (RMS contrast in z-units, e.g. 0.25)")
        if self.batch_size < 1 or self.bootstrap < 1 or self.optimum_steps < 1:
            raise EggError(
                f"batch_size={self.batch_size}, bootstrap={self.bootstrap} and optimum_steps={self.optimum_steps} "
                "must be positive integers"
            )
        if self.grid_neurons < 1:
            raise EggError(f"grid_neurons={self.grid_neurons}: expected a positive number of neurons per image grid")


def load_runs(specs: Sequence[Any]) -> list[SynthesisRun]:
    """Runs from config entries: a path, or ``{path: ..., method: ..., generator: ...}``."""
    if not specs:
        raise EggError("runs=[] is empty; expected egg synth run folders, e.g. runs=[outputs/synth/ga_run,outputs/synth/egg_run]")
    runs = []
    for k, spec in enumerate(specs):
        if isinstance(spec, (str, os.PathLike)):
            runs.append(load_synthesis_run(spec))
        elif isinstance(spec, Mapping):
            if "path" not in spec:
                raise EggError(
                    f"runs[{k}]={dict(spec)} has no path; expected {{path: run folder, method: label, generator: label}}"
                )
            runs.append(load_synthesis_run(spec["path"], spec.get("method"), spec.get("generator")))
        else:
            raise EggError(f"runs[{k}]={spec!r} not understood; expected a run folder or {{path, method, generator}}")
    return runs


def natural_images(
    dataset_path: str | os.PathLike, tier: str = "all", max_images: int | None = None, seed: int = 0
) -> np.ndarray:
    """Raw natural images of a dataset (all tiers or one), optionally a seeded random subset."""
    from egg_cli.data.load import load_dataset

    if tier not in NATURAL_TIERS:
        raise EggError(f"natural.tier={tier!r} unknown; expected one of {NATURAL_TIERS}")
    data = load_dataset(dataset_path)
    index = np.arange(data.n_images) if tier == "all" else data.image_indices(tier)
    if len(index) == 0:
        raise EggError(f"{dataset_path}: tier {tier!r} holds no images; expected natural images to normalize by")
    if max_images is not None and len(index) > max_images:
        if max_images < 1:
            raise EggError(f"natural.max_images={max_images} must be positive or null")
        index = np.sort(np.random.default_rng(seed).choice(index, size=max_images, replace=False))
    return np.asarray(data.images[index], dtype=np.float32)


def resolve_dataset(dataset_path: str | None, runs: Sequence[SynthesisRun], evaluators: Sequence[Evaluator] = ()) -> str:
    """The dataset of the natural images: explicit, else what the runs or evaluator models record."""
    if dataset_path:
        return str(dataset_path)
    recorded = {r.dataset for r in runs if r.dataset}
    recorded |= {str(e.model.dataset_path) for e in evaluators if getattr(e.model, "dataset_path", None)}
    if len(recorded) == 1:
        return recorded.pop()
    if not recorded:
        raise EggError(
            "dataset_path is not set and neither the runs nor the models record their dataset; "
            "set dataset_path=path/to/dataset.h5"
        )
    raise EggError(f"runs and models record different datasets ({', '.join(sorted(recorded))}); set dataset_path= to choose")


def evaluate(
    runs: Sequence[SynthesisRun],
    evaluators: Sequence[Evaluator],
    natural_raw: np.ndarray,
    out_dir: str | os.PathLike,
    settings: EvaluationSettings,
    device: torch.device | str = "cpu",
    summary_extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Score, tabulate and plot; write every output into ``out_dir``; return the summary."""
    out = Path(out_dir)
    contrast = common_contrast(runs) if settings.rms_contrast is None else float(settings.rms_contrast)
    evaluation = evaluate_runs(
        runs,
        evaluators,
        natural_raw,
        contrast,
        settings.seeds,
        settings.neurons,
        settings.batch_size,
        device,
        settings.fit,
        settings.optimum_steps,
    )
    rows = activation_table(evaluation)
    pairs = [tuple(p) for p in settings.compare] if settings.compare else default_pairs(evaluation.methods, settings.reference)
    comparisons = method_comparisons(evaluation, pairs, settings.bootstrap, settings.seed)
    compute = compute_table(evaluation, settings.reference)
    figures = write_outputs(out, evaluation, rows, comparisons, compute, pairs, settings)
    summary = {
        "rms_contrast": contrast,
        "natural_images": int(len(natural_raw)),
        "seeds": settings.seeds,
        "generators": evaluation.generators,
        "methods": evaluation.methods,
        "evaluators": {e.name: e.kind for e in evaluators},
        "runs": [
            {"path": str(r.path), "method": r.method, "generator": r.generator, "images": int(len(r.images_raw))} for r in runs
        ],
        "mean_normalized_activation": {f"{r['generator']} | {r['evaluator']} | {r['method']}": r["mean"] for r in rows},
        "comparisons": [
            {k: c[k] for k in ("generator", "evaluator", "method_a", "method_b", "n", "slope", "p_value", "p_holm")}
            for c in comparisons
        ],
        "seconds_per_image": {f"{c['generator']} | {c['method']}": c["seconds_per_image"] for c in compute},
        "fraction_of_ground_truth_optimum": {
            f"{r['generator']} | {r['evaluator']} | {r['method']}": {k: r[k] for k in ("neurons", "median", "mean", "min")}
            for r in optimum_table(evaluation)
        },
        "figures": figures,
        **dict(summary_extra or {}),
        "status": "finished",
    }
    write_json(out / "summary.json", summary)
    return summary


def write_outputs(
    out: Path,
    evaluation: Evaluation,
    rows: list[dict],
    comparisons: list[dict],
    compute: list[dict],
    pairs: Sequence[tuple[str, str]],
    settings: EvaluationSettings,
) -> list[str]:
    """CSV and Markdown tables, the heatmap, scatter plots and image grids; returns the figure names."""
    write_csv(out / "activations.csv", evaluation.records)
    write_csv(out / "per_neuron.csv", per_neuron_rows(evaluation))
    write_csv(
        out / "best_natural.csv",
        [
            {"evaluator": ev, "neuron_id": nid, "best_natural": v}
            for ev, table in evaluation.ceilings.items()
            for nid, v in table.items()
        ],
    )
    write_csv(out / "table.csv", rows)
    write_csv(out / "comparisons.csv", comparisons)
    write_csv(out / "compute.csv", compute)
    if evaluation.fraction_of_optimum:
        write_csv(out / "optimum.csv", optimum_table(evaluation))
    figures = ["heatmap.png"]
    save_figure(heatmap_figure(evaluation, rows), out / "heatmap.png")
    for a, b in pairs:
        name = f"scatter_{_slug(a)}_vs_{_slug(b)}.png"
        save_figure(scatter_figure(evaluation, a, b, comparisons), out / name)
        figures.append(name)
    for gen in evaluation.generators:
        by_method = {m: evaluation.runs[(gen, m)] for m in evaluation.methods if (gen, m) in evaluation.runs}
        name = f"images_{_slug(gen)}.png"
        truth = next(iter(evaluation.optimum_images.items()), None)
        reference = (f"{truth[0]} optimum", truth[1]) if truth else None
        title = f"best seed per neuron, generated on {gen}"
        save_figure(image_grid_figure(by_method, settings.grid_neurons, title, reference), out / name)
        figures.append(name)
    with atomic_path(out / "table.md") as tmp:
        tmp.write_text(evaluation_markdown(evaluation, rows, comparisons, compute))
    return figures


def evaluation_markdown(evaluation: Evaluation, rows: list[dict], comparisons: list[dict], compute: list[dict]) -> str:
    """All tables of an evaluation as one Markdown document (also embedded in the demo report)."""
    wide = wide_activation_rows(rows, evaluation.evaluators)
    comp_cols = [
        "generator",
        "evaluator",
        "method_a",
        "method_b",
        "n",
        "mean_a",
        "mean_b",
        "slope",
        "slope_low",
        "slope_high",
        "fraction_b_better",
        "p_value",
        "p_holm",
    ]
    return (
        "### Normalized activation (mean ± s.e.m. over neurons; 1 = best natural image in that evaluator)\n\n"
        + markdown_table(wide, ["generator", "method", "neurons", *evaluation.evaluators])
        + "\n### Method B vs method A per neuron (slope = median of B/A ratios; Wilcoxon signed-rank, Holm-corrected)\n\n"
        + markdown_table(comparisons, comp_cols)
        + "\n### Compute per image (from the synthesis runs' timing)\n\n"
        + markdown_table(compute)
        + (
            "\n### Fraction of the ground-truth optimum (selected image's response / the neuron's optimum at this contrast)\n\n"
            + markdown_table(optimum_table(evaluation))
            if evaluation.fraction_of_optimum
            else ""
        )
    )


def per_neuron_rows(evaluation: Evaluation) -> list[dict]:
    """One row per (generator, method, evaluator, neuron) with the selected normalized activation."""
    rows = []
    for (gen, method, ev), (ids, values) in evaluation.per_neuron.items():
        rows.extend(
            {"generator": gen, "method": method, "evaluator": ev, "neuron_id": i, "normalized": float(v)}
            for i, v in zip(ids, values)
        )
    return rows


def check_populations(
    runs: Sequence[SynthesisRun],
    evaluators: Sequence[Evaluator],
    dataset: str,
    natural_shape: Sequence[int],
    allow_mismatch: bool,
) -> None:
    """Refuse evaluators of another population than a run's generating model, or of another image size."""
    from egg_cli.models.population import Population, check_image_shape, check_same_population

    for ev in evaluators:
        other = Population.of_model(ev.model, f"evaluator {ev.name!r}")
        check_image_shape(f"dataset {dataset}", natural_shape, other.name, other.image_shape, allow_mismatch)
        for run in runs:
            ids = np.unique(np.asarray(run.neuron_ids).astype(str))
            reference = Population(f"synthesis run {run.path}", ids, run.dataset_id, tuple(run.images_raw.shape[1:]))
            check_same_population(reference, other, allow_mismatch, neuron_ids=ids)


def run_evaluate(
    run_specs: Sequence[Any],
    evaluator_specs: Mapping[str, Any],
    dataset_path: str | None,
    out_dir: str | os.PathLike,
    settings: EvaluationSettings,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Everything `egg evaluate` does, from config entries (run folders, evaluator specs)."""
    settings.check()
    runs = load_runs(run_specs)
    needs_truth = any(isinstance(v, str) and v == "ground_truth" for v in evaluator_specs.values())
    dataset = resolve_dataset(dataset_path, runs) if (dataset_path or needs_truth or any(r.dataset for r in runs)) else None
    evaluators = load_evaluators(evaluator_specs, dataset, device)
    dataset = dataset or resolve_dataset(None, runs, evaluators)
    natural = natural_images(dataset, settings.natural_tier, settings.max_natural, settings.seed)
    check_populations(runs, evaluators, dataset, natural.shape[1:], settings.allow_mismatch)
    return evaluate(runs, evaluators, natural, out_dir, settings, device, {"dataset": str(dataset)})


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"
